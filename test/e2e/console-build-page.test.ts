/**
 * What people expect from a build page, end to end (Debian's Chromium through playwright-core, a real
 * `kiln serve` and runner on PostgreSQL and RabbitMQ): readable `/<owner>/<namespace>/builds/<n>`
 * addresses, line ranges in the URL, the log viewer's search options, raw log and folded commands,
 * Pin/Unpin, start and finish times, and the submit page's validation as you type.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

type Submitted = { submitBuild: { __typename: string; build?: { id: string; number: number } } };
type Times = {
  build: {
    status: string;
    pinned: boolean;
    createdAt: string;
    startedAt: string | null;
    finishedAt: string | null;
    stages: { jobs: { name: string; startedAt: string | null; finishedAt: string | null }[] }[];
  };
};

/** A manifest of one stage and one job, for the os driver. */
const oneJob = (name: string, commands: string[]) =>
  `driver: {type: os}\nstages: [s]\njobs:\n  - stage: s\n    name: ${name}\n    commands:\n${commands
    .map((c) => `      - ${JSON.stringify(c)}`)
    .join('\n')}\n`;

describe.runIf(ready)('the build page', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  let first: { id: string; number: number };
  let second: { id: string; number: number };

  beforeAll(async () => {
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack(), launchChromium()]);
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    await context.addInitScript((token) => {
      // about:blank and blob: pages may not use localStorage.
      try {
        localStorage.setItem('kiln.token', token);
      } catch {}
    }, stack.token);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));

    const made = await stack.gql<{ createNamespace: { __typename: string } }>(
      `mutation ($input: CreateNamespaceInput!) { createNamespace(input: $input) { __typename } }`,
      { input: { path: 'pages', visibility: 'PRIVATE' } },
    );
    expect(made.createNamespace.__typename).toBe('CreateNamespaceSuccess');
    first = await submit(
      oneJob('steps', ['echo first output', 'printf "a1\\na2\\na3\\n"', 'echo "error: code 42"']),
      { namespace: 'pages', comment: 'the first' },
    );
    second = await submit(oneJob('other', ['echo second build']), {
      namespace: 'pages',
      comment: 'the second',
    });
    expect([first.number, second.number]).toEqual([1, 2]);
    for (const b of [first, second]) {
      for (let i = 0; i < 120; i++) {
        if ((await times(b.id)).build.finishedAt) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    await page.screenshot({ path: screenshotPath(`failed-${name}`) }).catch(() => {});
  });

  async function submit(manifest: string, extra: Record<string, unknown> = {}) {
    const data = await stack.gql<Submitted>(
      `mutation ($input: SubmitBuildInput!) { submitBuild(input: $input) {
        __typename ... on SubmitBuildSuccess { build { id number } } } }`,
      { input: { manifest, ...extra } },
    );
    if (!data.submitBuild.build) throw new Error(`refused: ${JSON.stringify(data)}`);
    return data.submitBuild.build;
  }

  const times = (id: string) =>
    stack.gql<Times>(
      `query ($id: ID!) { build(id: $id) { status pinned createdAt startedAt finishedAt
        stages { jobs { name startedAt finishedAt } } } }`,
      { id },
    );

  const readable = (n: number) => `${stack.url}/admin/pages/builds/${n}`;
  const lines = (p: Page = page) => p.locator('.log-line .log-text').allTextContents();
  const targets = () => page.locator('.log-line.log-target .log-num').allTextContents();
  /** The line number the log shows for the line whose text is `text`. */
  const numberOf = async (text: string) => {
    const row = page.locator('.log-line', { has: page.locator('.log-text', { hasText: text }) }).first();
    return Number(await row.locator('.log-num').textContent());
  };
  async function openFirst(hash = '') {
    await page.goto('about:blank');
    await page.goto(`${readable(1)}${hash}`);
    await expect.poll(() => lines(), { timeout: 15_000 }).toContain('error: code 42');
  }

  it('opens a build at /<owner>/<namespace>/builds/<number>, and old /builds/<id> links still work', async () => {
    await page.goto(readable(2));
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@pages #2');
    await expect.poll(() => lines(), { timeout: 15_000 }).toContain('second build');
    await page.goto(readable(1));
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@pages #1');
    await expect.poll(() => lines(), { timeout: 15_000 }).toContain('first output');
    expect(await lines()).not.toContain('second build');
    await page.goto(`${stack.url}/builds/${encodeURIComponent(first.id)}`);
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@pages #1');
    await page.goto(readable(99));
    await expect.poll(() => page.locator('.empty').textContent()).toContain('No such build');

    // The list links to the readable address.
    await page.goto(`${stack.url}/builds`);
    const link = page.locator(`.build-row[data-build-number="1"] .build-link`);
    await expect.poll(() => link.getAttribute('href')).toBe('/admin/pages/builds/1');
    await link.click();
    await page.waitForURL(/\/admin\/pages\/builds\/1$/);
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@pages #1');
    expect(pageErrors).toEqual([]);
  });

  it('shows when each build and job started and finished, as the API says', async () => {
    const api = (await times(first.id)).build;
    expect(api.startedAt && api.finishedAt).toBeTruthy();
    await openFirst();
    const started = page.getByTestId('started-at');
    const finished = page.getByTestId('finished-at');
    expect(await started.getAttribute('datetime')).toBe(api.startedAt);
    expect(await finished.getAttribute('datetime')).toBe(api.finishedAt);
    expect(await started.textContent()).toMatch(/ago|now|second/);
    // Absolute on hover: the title names the year.
    expect(await started.getAttribute('title')).toContain(String(new Date(api.startedAt!).getFullYear()));
    const job = api.stages[0]!.jobs[0]!;
    const jobRow = page.locator('[data-job="steps"]');
    expect(await jobRow.getByTestId('job-started-at').getAttribute('datetime')).toBe(job.startedAt);
    expect(await jobRow.getByTestId('job-finished-at').getAttribute('datetime')).toBe(job.finishedAt);
    expect(await jobRow.getByTestId('job-finished-at').textContent()).toMatch(/^\d+(\.\d)?s$|^\d+m \d+s$/);
    await page.screenshot({ path: screenshotPath('build-page-times') });

    await page.goto(`${stack.url}/builds`);
    const row = page.locator(`.build-row[data-build-number="1"]`);
    await expect.poll(() => row.getByTestId('started-at').getAttribute('datetime')).toBe(api.startedAt);
    expect(await row.getByTestId('finished-at').getAttribute('datetime')).toBe(api.finishedAt);
    expect(await row.getByTestId('build-times').textContent()).toMatch(/^started .+ran .+/);
    await page.screenshot({ path: screenshotPath('builds-list-times') });
  });

  it('highlights exactly the lines of #L3-L5, and shift-click on a line number makes a range', async () => {
    await openFirst('#L3-L5');
    await expect.poll(targets).toEqual(['3', '4', '5']);
    const start = await numberOf('first output');
    const end = await numberOf('a3');
    await page.locator('.log-line .log-num', { hasText: new RegExp(`^${start}$`) }).click();
    await expect.poll(() => page.url()).toMatch(new RegExp(`#steps-L${start}$`));
    await expect.poll(targets).toEqual([String(start)]);
    await page
      .locator('.log-line .log-num', { hasText: new RegExp(`^${end}$`) })
      .click({ modifiers: ['Shift'] });
    await expect.poll(() => page.url()).toMatch(new RegExp(`#steps-L${start}-L${end}$`));
    const expected = Array.from({ length: end - start + 1 }, (_, i) => String(start + i));
    await expect.poll(targets).toEqual(expected);
    // The range survives a reload.
    await page.reload();
    await expect.poll(targets, { timeout: 15_000 }).toEqual(expected);
  });

  it('focuses the log search on /, and finds with a regular expression what plain text does not', async () => {
    await openFirst();
    await page.locator('h1').click();
    await page.keyboard.press('/');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('log-search-input');
    expect(await page.getByLabel('Search the log').inputValue()).toBe('');

    await page.keyboard.type('code \\d+');
    const count = page.getByTestId('search-count');
    await expect.poll(() => count.textContent()).toBe('0/0');
    await page.getByRole('button', { name: 'Regular expression' }).click();
    // The command's `$ echo "error: code 42"` line and its output.
    await expect.poll(() => count.textContent()).toBe('0/2');
    await page.getByLabel('Search the log').press('Enter');
    await expect.poll(() => page.locator('.log-line.log-current mark').textContent()).toBe('code 42');
    // Match case: an upper-case pattern no longer matches the lower-case line.
    await page.getByLabel('Search the log').fill('CODE \\d+');
    await expect.poll(() => count.textContent()).toMatch(/^\d\/2$/);
    await page.getByRole('button', { name: 'Match case' }).click();
    await expect.poll(() => count.textContent()).toBe('0/0');
    await page.getByLabel('Search the log').fill('(');
    await expect.poll(() => count.textContent()).toBe('invalid pattern');
  });

  it('folds a command’s output away on its $ line', async () => {
    await openFirst();
    const printf = page.locator('.log-line', { has: page.locator('.log-text', { hasText: /^\$ printf/ }) });
    await printf.locator('.log-fold').click();
    await expect.poll(() => lines()).not.toContain('a2');
    const now = await lines();
    expect(now).not.toContain('a1');
    expect(now).not.toContain('a3');
    expect(now).toContain('first output');
    expect(now).toContain('error: code 42');
    expect(await printf.getByTestId('folded-note').textContent()).toBe('… 3 lines hidden');
    await page.screenshot({ path: screenshotPath('log-viewer-folded') });
    await printf.locator('.log-fold').click();
    await expect.poll(() => lines()).toContain('a2');
  });

  it('links the raw log, which the server answers as plain text', async () => {
    await openFirst();
    const link = page.getByTestId('raw-log');
    const href = await link.getAttribute('href');
    expect(href).toBe(`/builds/${encodeURIComponent(first.id)}/raw`);
    const res = await fetch(`${stack.url}${href}`, { headers: { authorization: `Bearer ${stack.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text.split('\n')).toEqual(
      expect.arrayContaining(['first output', 'a1', 'a2', 'a3', 'error: code 42']),
    );
    // Clicking it opens the same text in a new tab (this console signed in with a token, no cookie).
    const [popup] = await Promise.all([page.waitForEvent('popup'), link.click()]);
    await expect
      .poll(() => popup.textContent('body').catch(() => ''), { timeout: 10_000 })
      .toContain('error: code 42');
    expect(await popup.textContent('body')).toBe(text);
    await popup.close();
  });

  it('pins and unpins a build, as the API’s pinned says', async () => {
    await openFirst();
    const pin = page.getByTestId('pin');
    await expect.poll(() => pin.textContent()).toBe('Pin');
    expect((await times(first.id)).build.pinned).toBe(false);
    await pin.click();
    await expect.poll(() => pin.textContent()).toBe('Unpin');
    expect(await pin.getAttribute('aria-pressed')).toBe('true');
    await expect.poll(async () => (await times(first.id)).build.pinned).toBe(true);
    await page.reload();
    await expect.poll(() => pin.textContent(), { timeout: 15_000 }).toBe('Unpin');
    await pin.click();
    await expect.poll(() => pin.textContent()).toBe('Pin');
    await expect.poll(async () => (await times(first.id)).build.pinned).toBe(false);
  });

  it('checks the manifest as it is typed and shows the API’s problems', async () => {
    const invalid =
      'driver: {type: os}\nstages: [s]\njobs:\n  - stage: nope\n    name: x\n    commands: [echo hi]\n';
    const { validateManifest: problems } = await stack.gql<{
      validateManifest: { path: string; line: number | null; column: number | null; message: string }[];
    }>(`query ($m: String!) { validateManifest(manifest: $m) { path line column message } }`, { m: invalid });
    expect(problems.length).toBeGreaterThan(0);
    await page.goto(`${stack.url}/builds/new`);
    const editor = page.locator('textarea#manifest');
    await editor.fill(invalid);
    const live = page.getByTestId('live-problems');
    await expect.poll(() => live.textContent().catch(() => '')).toContain(problems[0]!.message);
    for (const p of problems) expect(await live.textContent()).toContain(p.message);
    const n = problems.length;
    expect(await page.getByTestId('problem-count').textContent()).toBe(
      `${n} ${n === 1 ? 'problem' : 'problems'}`,
    );
    expect(await page.getByRole('button', { name: 'Submit build' }).isDisabled()).toBe(false);
    const located = problems.find((p) => p.line !== null);
    if (located) {
      await live.locator('.problem', { hasText: located.message }).first().click();
      const caretLine = await editor.evaluate(
        (el: HTMLTextAreaElement) => el.value.slice(0, el.selectionStart).split('\n').length,
      );
      expect(caretLine).toBe(located.line);
    }
    await page.screenshot({ path: screenshotPath('submit-live-problems') });
    await editor.fill(invalid.replace('stage: nope', 'stage: s'));
    await expect.poll(() => page.getByTestId('problem-count').textContent()).toBe('No problems found');
    expect(await live.count()).toBe(0);
  });

  it('looks right in dark mode too', async () => {
    const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' });
    await dark.addInitScript((token) => {
      // about:blank and blob: pages may not use localStorage.
      try {
        localStorage.setItem('kiln.token', token);
      } catch {}
    }, stack.token);
    const p = await dark.newPage();
    try {
      await p.goto(`${stack.url}/builds`);
      await expect.poll(() => p.locator('.build-row [data-testid="started-at"]').count()).toBe(2);
      await p.screenshot({ path: screenshotPath('builds-list-times-dark') });
      await p.goto(`${readable(1)}#L3-L5`);
      await expect.poll(() => lines(p), { timeout: 15_000 }).toContain('error: code 42');
      await p.screenshot({ path: screenshotPath('build-page-times-dark') });
      await p
        .locator('.log-line', { has: p.locator('.log-text', { hasText: /^\$ printf/ }) })
        .locator('.log-fold')
        .click();
      await p.screenshot({ path: screenshotPath('log-viewer-folded-dark') });
    } finally {
      await dark.close();
    }
    expect(pageErrors).toEqual([]);
  });
});

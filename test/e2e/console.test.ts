/**
 * The console end to end: Debian's Chromium, driven by playwright-core, against a real `kiln serve`
 * (PostgreSQL, RabbitMQ) and a real `kiln runner`. Jobs wait for gate files in a folder the test shares
 * with the runner's os driver, so "while it runs" is a state the test controls, not a race.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import {
  ensureConsoleBuilt,
  launchChromium,
  type Stack,
  schemaHas,
  screenshotPath,
  startProxy,
  startStack,
} from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

type Submitted = { submitBuild: { __typename: string; build?: { id: string; number: number } } };

describe.runIf(ready)('the web console against a real serve and runner', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack(), launchChromium()]);
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Fail a step in seconds, with its name, rather than the whole test at its timeout.
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    await page.screenshot({ path: screenshotPath(`failed-${name}`) }).catch(() => {});
    console.error(
      `page at ${page.url()} says: ${await page
        .locator('body')
        .textContent()
        .catch(() => '?')}`,
    );
  });

  const gate = (name: string) => path.join(stack.shared, name);
  const open = (name: string) => writeFileSync(gate(name), '');
  /** A shell line that waits for the test to create the gate file. */
  const waitFor = (name: string) => `until [ -f ${gate(name)} ]; do sleep 0.05; done`;

  async function submit(manifest: string, extra: Record<string, unknown> = {}) {
    const data = await stack.gql<Submitted>(
      `mutation ($input: SubmitBuildInput!) { submitBuild(input: $input) {
        __typename ... on SubmitBuildSuccess { build { id number } } } }`,
      { input: { manifest, ...extra } },
    );
    if (!data.submitBuild.build) throw new Error(`refused: ${JSON.stringify(data)}`);
    return data.submitBuild.build;
  }

  const heading = () => page.locator('h1').textContent();
  const buildStatus = () => page.locator('h1 .badge').getAttribute('data-status');

  it('asks for a token, signs in with the admin token and shows the empty builds list', async () => {
    await page.goto(`${stack.url}/builds`);
    await page.waitForURL(/\/sign-in\?next=%2Fbuilds$/);
    await page.getByLabel('API token', { exact: true }).fill('not-a-token-at-all');
    await page.getByRole('button', { name: 'Sign in with token' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('does not accept this token');
    await page.getByLabel('API token', { exact: true }).fill(stack.token);
    await page.getByRole('button', { name: 'Sign in with token' }).click();
    await page.waitForURL(/\/builds$/);
    await expect.poll(() => page.locator('.empty-title').textContent()).toBe('No builds yet');
  });

  it('shows the problems of a refused manifest at their lines and moves the caret to one', async () => {
    await page.getByRole('link', { name: 'New build' }).first().click();
    await page.waitForURL(/\/builds\/new$/);
    const manifest = [
      'driver:',
      '  type: os',
      'stages: [test]',
      'jobs:',
      '  - stage: tset',
      '    commands: [echo hi]',
      '',
    ].join('\n');
    await page.getByLabel('Manifest (YAML)').fill(manifest);
    await page.getByRole('button', { name: 'Submit build' }).click();
    const problem = page.locator('.problems .problem').first();
    await expect.poll(() => problem.textContent()).toContain('jobs[0].stage');
    expect(await problem.locator('.problem-loc').textContent()).toBe('5:12');
    expect(await problem.locator('.problem-message').textContent()).toContain('not in stages');
    // The gutter marks line 5, and only line 5.
    expect(await page.locator('.editor-num-problem').allTextContents()).toEqual(['5']);
    await problem.click();
    const caret = await page
      .getByLabel('Manifest (YAML)')
      .evaluate((el: HTMLTextAreaElement) => [document.activeElement === el, el.selectionStart]);
    expect(caret).toEqual([true, manifest.indexOf('tset')]);
    await page.screenshot({ path: screenshotPath('manifest-problems') });
  });

  let passedId = '';

  it('submits a manifest, shows its log live while it runs, and turns PASSED', async () => {
    const manifest = [
      'driver:',
      '  type: os',
      'stages: [greet]',
      'jobs:',
      '  - stage: greet',
      '    name: hello',
      '    commands:',
      '      - echo "first line"',
      `      - printf '\\033[32mgreen text\\033[0m\\n'`,
      `      - ${waitFor('live-go')}`,
      '      - echo "after the gate"',
      '',
    ].join('\n');
    await page.getByLabel('Manifest (YAML)').fill(manifest);
    await page.getByLabel('Comment', { exact: true }).fill('live log');
    await page.getByLabel(/^Tags/).fill('e2e, live');
    await page.getByRole('button', { name: 'Submit build' }).click();
    await page.waitForURL(/\/builds\/(?!new$)[^/]+$/);
    passedId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);

    // The job is blocked on its gate: what the page shows now came live.
    const log = page.getByTestId('log-viewport');
    // Each command is echoed (`$ …`) before its output: look at whole lines.
    const lines = () => page.locator('.log-line .log-text').allTextContents();
    await expect.poll(lines, { timeout: 30_000 }).toContain('green text');
    await expect.poll(buildStatus, { timeout: 5_000 }).toBe('RUNNING');
    expect(await lines()).not.toContain('after the gate');
    expect(await page.locator('.log-line .a-f2').first().textContent()).toBe('green text');
    expect(await log.textContent()).not.toContain('\x1b');
    expect(await page.locator('.log-state').textContent()).toBe('Live');
    await page.screenshot({ path: screenshotPath('live-log') });

    open('live-go');
    await expect.poll(lines, { timeout: 30_000 }).toContain('after the gate');
    await expect.poll(buildStatus, { timeout: 30_000 }).toBe('PASSED');
    await expect.poll(() => page.locator('.log-state').textContent()).toBe('Complete');
    expect(await heading()).toContain('Passed');
    expect(await page.locator('[data-job="hello"] .badge').getAttribute('data-status')).toBe('PASSED');
    expect(await page.locator('.facts').textContent()).toContain('live log');
  });

  it('opens a #<job>-L<n> link on its line, highlighted and scrolled into view', async () => {
    await page.goto('about:blank');
    await page.goto(`${stack.url}/builds/${encodeURIComponent(passedId)}#hello-L4`);
    const target = page.locator('.log-line.log-target');
    await expect.poll(() => target.locator('.log-num').textContent(), { timeout: 15_000 }).toBe('4');
    expect(await target.locator('.log-text').textContent()).toBe('green text');
    const [box, viewport] = await Promise.all([
      target.boundingBox(),
      page.getByTestId('log-viewport').boundingBox(),
    ]);
    expect(box!.y).toBeGreaterThanOrEqual(viewport!.y);
    expect(box!.y + box!.height).toBeLessThanOrEqual(viewport!.y + viewport!.height);
    // Clicking another line number makes that line the shareable one.
    await page.locator('.log-line .log-num', { hasText: /^1$/ }).click();
    await expect.poll(() => page.url()).toMatch(/#hello-L1$/);
    await expect.poll(() => page.locator('.log-line.log-target .log-num').textContent()).toBe('1');
  });

  it('kills a running build from its page', async () => {
    const build = await submit(
      'driver:\n  type: os\nstages: [wait]\njobs:\n  - stage: wait\n    name: sleeper\n    commands:\n      - echo sleeping\n      - sleep 60\n',
    );
    await page.goto(`${stack.url}/builds/${encodeURIComponent(build.id)}`);
    await expect
      .poll(() => page.getByTestId('log-viewport').textContent(), { timeout: 30_000 })
      .toContain('sleeping');
    // Lines go out before the runner's start is stored: the status follows within milliseconds.
    await expect.poll(buildStatus, { timeout: 10_000 }).toBe('RUNNING');
    // Kill asks first, as revoking a token does.
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Kill' }).click();
    await expect.poll(buildStatus, { timeout: 30_000 }).toBe('KILLED');
    expect(await page.getByRole('button', { name: 'Kill' }).count()).toBe(0);
    expect(await page.locator('[data-job="sleeper"] .badge').getAttribute('data-status')).toBe('KILLED');
  });

  it('updates the builds list live as builds start and finish, and filters by status and tag', async () => {
    await page.goto(`${stack.url}/builds`);
    await expect.poll(() => page.locator('.build-row').count()).toBe(2);
    const build = await submit(
      `driver:\n  type: os\nstages: [s]\njobs:\n  - stage: s\n    name: gated\n    commands:\n      - ${waitFor('list-go')}\n`,
      { comment: 'appears live', tags: ['nightly'] },
    );
    const row = page.locator(`.build-row[data-build-number="${build.number}"]`);
    await expect.poll(() => row.count(), { timeout: 20_000 }).toBe(1);
    await expect
      .poll(() => row.locator('.badge').getAttribute('data-status'), { timeout: 20_000 })
      .toBe('RUNNING');
    await page.screenshot({ path: screenshotPath('builds-list') });
    open('list-go');
    await expect
      .poll(() => row.locator('.badge').getAttribute('data-status'), { timeout: 20_000 })
      .toBe('PASSED');

    await page.locator('#filter-status').selectOption('KILLED');
    await page.waitForURL(/status=KILLED/);
    await expect
      .poll(() => page.locator('.build-row .badge').allTextContents())
      .toEqual([expect.stringContaining('Killed')]);
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await row.getByRole('button', { name: 'nightly' }).click();
    await page.waitForURL(/tag=nightly/);
    await expect.poll(() => page.locator('.build-row').count()).toBe(1);
    expect(await page.locator('.build-row .build-comment').textContent()).toBe('appears live');
    await page.getByLabel('Tag', { exact: true }).fill('no-such-tag');
    await page.getByLabel('Tag', { exact: true }).press('Enter');
    await expect.poll(() => page.locator('.empty-title').textContent()).toBe('No builds match these filters');
  });

  it('resumes the log after a dropped connection from its last cursor, losing and repeating nothing', async () => {
    const proxy = await startProxy(stack.url);
    const sent: { after: unknown }[] = [];
    const p = await context.newPage();
    try {
      p.on('websocket', (ws) =>
        ws.on('framesent', ({ payload }) => {
          const m = JSON.parse(String(payload)) as {
            type: string;
            payload?: { variables?: { after?: unknown } };
          };
          if (m.type === 'subscribe' && m.payload?.variables && 'after' in m.payload.variables)
            sent.push({ after: m.payload.variables.after });
        }),
      );
      const build = await submit(
        [
          'driver:',
          '  type: os',
          'stages: [count]',
          'jobs:',
          '  - stage: count',
          '    name: counter',
          '    commands:',
          '      - for i in $(seq 1 300); do echo "n $i"; done',
          `      - ${waitFor('resume-go')}`,
          '      - for i in $(seq 301 600); do echo "n $i"; done',
          '',
        ].join('\n'),
      );
      await p.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
      await p.goto(`${proxy.url}/builds/${encodeURIComponent(build.id)}`);
      await expect
        .poll(() => p.getByTestId('line-count').textContent(), { timeout: 30_000 })
        .toMatch(/^30\d lines$/);
      expect(proxy.drop()).toBeGreaterThan(0);
      // The rest of the log is written while the console is cut off.
      open('resume-go');
      await expect.poll(() => p.locator('.log-state').textContent(), { timeout: 30_000 }).toBe('Complete');
      await expect
        .poll(() => p.locator('h1 .badge').getAttribute('data-status'), { timeout: 30_000 })
        .toBe('PASSED');

      // The resubscription asked for what came after the last chunk it had, not for the whole log.
      expect(sent.length).toBeGreaterThanOrEqual(2);
      expect(sent[0]!.after).toBeNull();
      expect(typeof sent.at(-1)!.after).toBe('string');

      const [download] = await Promise.all([
        p.waitForEvent('download'),
        p.getByRole('button', { name: 'Download' }).click(),
      ]);
      const file = await download.path();
      expect(existsSync(file)).toBe(true);
      const counted = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /^n \d+$/.test(l));
      expect(counted).toEqual(Array.from({ length: 600 }, (_, i) => `n ${i + 1}`));
    } finally {
      await p.close();
      await proxy.close();
    }
  });

  it('fits a 375 px wide screen without sideways scrolling', async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 } });
    phone.setDefaultTimeout(10_000);
    try {
      await phone.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
      const p = await phone.newPage();
      for (const where of ['/builds', `/builds/${encodeURIComponent(passedId)}`, '/builds/new']) {
        await p.goto(`${stack.url}${where}`);
        await p.waitForSelector('h1');
        await p.waitForTimeout(300);
        expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
      }
      await p.goto(`${stack.url}/builds/${encodeURIComponent(passedId)}`);
      await expect.poll(() => p.getByTestId('log-viewport').textContent()).toContain('after the gate');
      await p.screenshot({ path: screenshotPath('build-page-375px'), fullPage: true });
    } finally {
      await phone.close();
    }
  });
});

const accounts = schemaHas('signUp') && schemaHas('logIn') && schemaHas('createToken');
if (!accounts)
  console.warn('skipping the console accounts tests: signUp/logIn/createToken are not in schema.graphql');

describe.runIf(ready && accounts)('accounts in the web console', () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack(), launchChromium()]);
    page = await browser.newPage();
    page.setDefaultTimeout(10_000);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('lets a person sign up, log in and create a token that is shown once', async () => {
    await page.goto(`${stack.url}/sign-up`);
    await page.getByLabel('Username', { exact: true }).fill('ada');
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await page.getByLabel('Password again', { exact: true }).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.waitForURL(/\/builds$/, { timeout: 15_000 }).catch(async (err) => {
      throw new Error(
        `no builds page after signing up; the page says: ${await page.locator('main').textContent()}`,
        {
          cause: err,
        },
      );
    });
    await expect.poll(() => page.locator('.viewer').textContent()).toContain('ada');

    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByLabel('Name', { exact: true }).fill('deploy bot');
    await page.getByLabel('build:write').check();
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = await (async () => {
      await expect.poll(() => page.getByTestId('new-token').count()).toBe(1);
      return (await page.getByTestId('new-token').textContent())!;
    })();
    const res = await fetch(`${stack.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: '{ viewer { username } }' }),
    });
    expect(((await res.json()) as { data: { viewer: { username: string } } }).data.viewer.username).toBe(
      'ada',
    );

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.getByLabel('Username', { exact: true }).fill('ada');
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Could not log in');
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/builds$/).catch(async (err) => {
      throw new Error(
        `no builds page after logging in; the page says: ${await page.locator('main').textContent()}`,
        {
          cause: err,
        },
      );
    });
  });
});

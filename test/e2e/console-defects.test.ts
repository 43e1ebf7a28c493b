/**
 * The console defects of one issue, end to end (Debian's Chromium through playwright-core, a real
 * `kiln serve` on PostgreSQL and RabbitMQ, a real runner): one build's log never shows another's
 * sections; a build is named `namespace #number`; a public build opens signed out; Kill asks first
 * and the jobs it never started read SKIPPED; the smaller slips of the issue; and a 40,000-line
 * manifest in the editor.
 */
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeRemote } from '../testkit/forge.ts';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

type Submitted = { submitBuild: { __typename: string; build?: { id: string; number: number } } };

/** A manifest of one stage and one job, for the os driver. */
const oneJob = (name: string, commands: string[]) =>
  `driver: {type: os}\nstages: [s]\njobs:\n  - stage: s\n    name: ${name}\n    commands:\n${commands
    .map((c) => `      - ${JSON.stringify(c)}`)
    .join('\n')}\n`;

describe.runIf(ready)('the console defects of the issue', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack(), launchChromium()]);
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    await context.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
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

  const buildUrl = (id: string) => `${stack.url}/builds/${encodeURIComponent(id)}`;
  const buildStatus = (p: Page = page) => p.locator('h1 .badge').getAttribute('data-status');
  const sections = (p: Page = page) =>
    p.locator('.log-header').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.section));
  const lines = (p: Page = page) => p.locator('.log-line .log-text').allTextContents();

  /** A page of its own, signed out. */
  async function anonymous<T>(fn: (p: Page) => Promise<T>): Promise<T> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    ctx.setDefaultTimeout(10_000);
    const p = await ctx.newPage();
    try {
      return await fn(p);
    } catch (err) {
      await p.screenshot({ path: screenshotPath('failed-anonymous') }).catch(() => {});
      throw err;
    } finally {
      await ctx.close();
    }
  }

  it('says namespace: in the namespaces empty state as code, without literal backticks', async () => {
    await page.goto(`${stack.url}/namespaces`);
    const empty = page.locator('.empty');
    await expect.poll(() => empty.first().textContent()).toContain('No namespaces yet');
    expect(await empty.first().textContent()).not.toContain('`');
    expect(await empty.first().locator('code').textContent()).toBe('namespace:');
  });

  it('shows only the open build’s log after Rerun, and after Back and Forward', async () => {
    const first = await submit(oneJob('env', ['echo "env of $KILN_BUILD_NUMBER"']));
    await page.goto(buildUrl(first.id));
    await expect.poll(() => buildStatus(), { timeout: 30_000 }).toBe('PASSED');
    await expect.poll(() => page.locator('.log-state').textContent()).toBe('Complete');
    /** The `env of N` lines the page shows, and the number of the build it shows. */
    const shown = async () => ({
      number: Number(/#(\d+)/.exec((await page.locator('h1').textContent())!)?.[1]),
      envs: (await lines()).filter((l) => /^env of \d+$/.test(l)),
      sections: await sections(),
    });
    expect(await shown()).toEqual({
      number: first.number,
      envs: [`env of ${first.number}`],
      sections: ['env'],
    });

    const ids = [first.id];
    for (let i = 0; i < 2; i++) {
      await page.getByRole('button', { name: 'Rerun' }).click();
      await page.waitForURL((url) => !ids.includes(decodeURIComponent(url.pathname.split('/').pop()!)));
      ids.push(decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!));
      await expect.poll(() => buildStatus(), { timeout: 30_000 }).toBe('PASSED');
      await expect.poll(() => page.locator('.log-state').textContent()).toBe('Complete');
      const now = await shown();
      // One section, this build's: none left over from the build the page showed before.
      expect(now).toEqual({ number: now.number, envs: [`env of ${now.number}`], sections: ['env'] });
      expect(now.number).not.toBe(first.number);
    }
    await page.screenshot({ path: screenshotPath('defects-rerun-log') });

    for (const [move, id] of [
      [() => page.goBack(), ids[1]!],
      [() => page.goForward(), ids[2]!],
      [() => page.goBack(), ids[1]!],
    ] as const) {
      await move();
      await page.waitForURL((url) => decodeURIComponent(url.pathname.split('/').pop()!) === id);
      await expect.poll(() => page.locator('.log-state').textContent()).toBe('Complete');
      await expect.poll(async () => (await shown()).sections).toEqual(['env']);
      const now = await shown();
      expect(now.envs).toEqual([`env of ${now.number}`]);
    }
  });

  let publicBuild = { id: '', number: 0 };
  let privateBuild = { id: '', number: 0 };

  it('names builds namespace #number in the list and on the build page, and submits to a chosen namespace', async () => {
    for (const [ns, visibility] of [
      ['alpha', 'PUBLIC'],
      ['beta', 'PRIVATE'],
    ]) {
      const made = await stack.gql<{ createNamespace: { __typename: string } }>(
        `mutation ($input: CreateNamespaceInput!) { createNamespace(input: $input) { __typename } }`,
        { input: { path: ns, visibility } },
      );
      expect(made.createNamespace.__typename).toBe('CreateNamespaceSuccess');
    }
    publicBuild = await submit(oneJob('hello', ['echo hello from alpha']), { namespace: 'alpha' });
    privateBuild = await submit(oneJob('hello', ['echo hello from beta']), { namespace: 'beta' });
    // Numbers count per namespace: both are #1.
    expect([publicBuild.number, privateBuild.number]).toEqual([1, 1]);

    await page.goto(`${stack.url}/builds`);
    const names = () => page.locator('.build-row .build-number').allTextContents();
    await expect.poll(names).toEqual(expect.arrayContaining(['admin@alpha #1', 'admin@beta #1']));
    // Builds in no namespace count per submitter.
    expect((await names()).filter((n) => /^admin #\d+$/.test(n)).length).toBeGreaterThan(0);
    await page.screenshot({ path: screenshotPath('defects-builds-namespaces') });

    await page.goto(buildUrl(publicBuild.id));
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@alpha #1');
    expect(await page.locator('.breadcrumb [aria-current="page"]').textContent()).toBe('admin@alpha #1');

    await page.goto(`${stack.url}/builds/new`);
    const choices = () =>
      page
        .locator('#namespace-choices option')
        .evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
    await expect.poll(choices).toEqual(expect.arrayContaining(['alpha', 'beta']));
    await page.getByLabel('Manifest (YAML)').fill(oneJob('chosen', ['echo chosen']));
    await page.getByLabel('Namespace', { exact: true }).fill('beta');
    await page.getByRole('button', { name: 'Submit build' }).click();
    await page.waitForURL(/\/builds\/(?!new$)[^/]+$/);
    await expect.poll(() => page.getByTestId('build-name').textContent()).toBe('admin@beta #2');
  });

  it('shows a build of a PUBLIC namespace, with its log, to someone signed out, and offers a sign-in for a private one', async () => {
    await anonymous(async (p) => {
      await p.goto(buildUrl(publicBuild.id));
      await expect.poll(() => lines(p), { timeout: 15_000 }).toContain('hello from alpha');
      expect(new URL(p.url()).pathname).toBe(`/builds/${encodeURIComponent(publicBuild.id)}`);
      expect(await p.getByTestId('build-name').textContent()).toBe('admin@alpha #1');
      expect(await buildStatus(p)).toBe('PASSED');
      // Nothing may be done to it signed out; signing in is offered.
      expect(await p.getByRole('button', { name: 'Rerun' }).count()).toBe(0);
      expect(await p.locator('.topbar').getByRole('link', { name: 'Sign in' }).count()).toBe(1);
      await p.screenshot({ path: screenshotPath('defects-public-build-signed-out') });

      await p.goto(buildUrl(privateBuild.id));
      await expect.poll(() => p.locator('.empty-title').textContent()).toBe('No such build');
      expect(await p.locator('.empty').getByRole('link', { name: 'Sign in' }).count()).toBe(1);
      expect(await p.getByText('hello from beta').count()).toBe(0);
    });
  });

  it('asks before killing, says who killed the build, and shows the jobs it never started SKIPPED', async () => {
    const build = await submit(
      [
        'driver: {type: os}',
        'stages: [wait, after]',
        'jobs:',
        '  - {stage: wait, name: sleeper, commands: [echo sleeping, sleep 60]}',
        '  - {stage: after, name: later, commands: [echo never]}',
        '',
      ].join('\n'),
    );
    await page.goto(buildUrl(build.id));
    await expect.poll(() => lines(), { timeout: 30_000 }).toContain('sleeping');
    await expect.poll(() => buildStatus(), { timeout: 10_000 }).toBe('RUNNING');

    let asked = '';
    page.once('dialog', (dialog) => {
      asked = dialog.message();
      void dialog.dismiss();
    });
    await page.getByRole('button', { name: 'Kill' }).click();
    await expect.poll(() => asked).toContain('Kill');
    // Said no: the build runs on.
    await page.waitForTimeout(1_000);
    const still = await stack.gql<{ build: { status: string } }>(
      'query ($id: ID!) { build(id: $id) { status } }',
      {
        id: build.id,
      },
    );
    expect(still.build.status).toBe('RUNNING');
    expect(await buildStatus()).toBe('RUNNING');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Kill' }).click();
    await expect.poll(() => buildStatus(), { timeout: 30_000 }).toBe('KILLED');
    await expect
      .poll(() => page.locator('[data-job="later"] .badge').getAttribute('data-status'), { timeout: 10_000 })
      .toBe('SKIPPED');
    expect(await page.locator('[data-job="sleeper"] .badge').getAttribute('data-status')).toBe('KILLED');
    // A job that never started has no duration to show.
    expect((await page.locator('[data-job="later"] > .muted').textContent())!.trim()).toBe('');
    await expect.poll(() => page.locator('.facts').textContent()).toContain('killed by admin');
    await page.screenshot({ path: screenshotPath('defects-killed') });
  });

  it('hides a new token’s secret once that token is revoked', async () => {
    await page.goto(`${stack.url}/tokens`);
    await page.getByLabel('Name', { exact: true }).fill('short-lived');
    await page.getByRole('button', { name: 'Create token' }).click();
    await expect.poll(() => page.getByTestId('new-token').count()).toBe(1);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Revoke short-lived' }).click();
    await expect.poll(() => page.locator('[data-token="short-lived"]').count()).toBe(0);
    expect(await page.getByTestId('new-token').count()).toBe(0);

    // Its form's button is as wide as its words, like every other form's.
    const [button, form] = await Promise.all([
      page.getByRole('button', { name: 'Create token' }).boundingBox(),
      page.locator('form.card').first().boundingBox(),
    ]);
    expect(button!.width).toBeLessThan(form!.width / 2);
  });

  it('shows one sign-in form’s error at a time, names the real token file, and sizes its buttons to their words', async () => {
    await anonymous(async (p) => {
      await p.goto(`${stack.url}/sign-in`);
      await p.getByLabel('API token', { exact: true }).fill('not-a-token');
      await p.getByRole('button', { name: 'Sign in with token' }).click();
      await expect
        .poll(() => p.getByRole('alert').allTextContents())
        .toEqual([expect.stringContaining('does not accept this token')]);
      await p.getByLabel('Username', { exact: true }).fill('nobody');
      await p.getByLabel('Password', { exact: true }).fill('wrong password');
      await p.getByRole('button', { name: 'Log in' }).click();
      await expect
        .poll(() => p.getByRole('alert').allTextContents())
        .toEqual([expect.stringContaining('Could not log in')]);
      await p.getByRole('button', { name: 'Sign in with token' }).click();
      await expect
        .poll(() => p.getByRole('alert').allTextContents())
        .toEqual([expect.stringContaining('Could not sign in')]);

      const hint = p.locator('p', { hasText: 'kiln start' });
      await expect.poll(() => hint.textContent()).toContain(path.join(stack.dataDir, 'bootstrap-token'));
      expect(await hint.textContent()).not.toContain('.kiln/bootstrap-token');

      for (const name of ['Log in', 'Sign in with token']) {
        const button = await p.getByRole('button', { name }).boundingBox();
        const form = await p.getByRole('button', { name }).locator('xpath=ancestor::form').boundingBox();
        expect(button!.width, name).toBeLessThan(form!.width / 2);
      }
      await p.screenshot({ path: screenshotPath('defects-sign-in') });
    });
  });

  it('puts the Masked checkbox beside its label', async () => {
    await page.goto(`${stack.url}/variables`);
    const box = page.getByLabel(/^Masked/);
    await expect.poll(() => box.count()).toBe(1);
    const geometry = await box.evaluate((input) => {
      const label = input.closest('label')!;
      const text = [...label.childNodes].find((n) => n.nodeType === 3 && n.textContent!.trim() !== '')!;
      const range = document.createRange();
      range.selectNodeContents(text);
      const t = range.getClientRects()[0]!;
      const b = input.getBoundingClientRect();
      return {
        boxRight: b.right,
        boxMiddle: (b.top + b.bottom) / 2,
        textLeft: t.left,
        textTop: t.top,
        textBottom: t.bottom,
      };
    });
    expect(geometry.boxRight).toBeLessThanOrEqual(geometry.textLeft);
    expect(geometry.boxMiddle).toBeGreaterThan(geometry.textTop);
    expect(geometry.boxMiddle).toBeLessThan(geometry.textBottom);
    await page.screenshot({ path: screenshotPath('defects-masked') });
  });

  it('says "1 line", shows a build’s cause where it has no comment, and numbers setup jobs from 1', async () => {
    const remote = await makeRemote(path.join(stack.shared, 'lib'));
    await remote.commit({ README: 'lib\n' }, 'the lib');
    const one = await submit(oneJob('quiet', ['true']));
    await page.goto(buildUrl(one.id));
    await expect.poll(() => page.locator('.log-state').textContent(), { timeout: 30_000 }).toBe('Complete');
    expect(await page.getByTestId('line-count').textContent()).toBe('1 line');
    await expect.poll(() => page.locator('[data-section="quiet"]').textContent()).toContain('1 line');

    const cloned = await submit(
      [
        'driver: {type: os}',
        `sources: ["${remote.url} => lib"]`,
        'stages: [test]',
        'jobs:',
        '  - {stage: test, commands: [ls lib]}',
        '',
      ].join('\n'),
    );
    await page.goto(buildUrl(cloned.id));
    await expect.poll(() => buildStatus(), { timeout: 30_000 }).toBe('PASSED');
    const jobs = await page
      .locator('.job')
      .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.job));
    expect(jobs).toEqual(['clone.1', 'test.1']);

    await page.goto(`${stack.url}/builds`);
    const row = page
      .locator(`.build-row[data-build-number="${one.number}"]`)
      .filter({ hasText: `admin #${one.number}` });
    await expect.poll(() => row.locator('.build-comment').textContent()).toBe('manual by admin');
    expect(await page.locator('.build-comment', { hasText: 'No comment' }).count()).toBe(0);
  });

  it('keeps white on blue (and other colours on a background) readable in light and dark', async () => {
    const build = await submit(
      oneJob('colours', [
        "printf '\\033[37;44mwhite on blue\\033[0m\\n'",
        "printf '\\033[97;44mbright white on blue\\033[0m\\n'",
        "printf '\\033[30;43mblack on yellow\\033[0m\\n'",
        "printf '\\033[44mdefault on blue\\033[0m\\n'",
      ]),
    );
    for (const scheme of ['light', 'dark'] as const) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: scheme });
      ctx.setDefaultTimeout(10_000);
      await ctx.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
      const p = await ctx.newPage();
      try {
        await p.goto(buildUrl(build.id));
        await expect.poll(() => lines(p), { timeout: 30_000 }).toContain('default on blue');
        const ratios = await p.evaluate(() => {
          const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
          const lum = ([r = 0, g = 0, b = 0]: number[]) => {
            const f = (v: number) => {
              const c = v / 255;
              return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          return [...document.querySelectorAll('.log-text span')]
            .filter((el) => getComputedStyle(el).backgroundColor !== 'rgba(0, 0, 0, 0)')
            .map((el) => {
              const s = getComputedStyle(el);
              const [a, b] = [lum(rgb(s.color)), lum(rgb(s.backgroundColor))];
              return { text: el.textContent, ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
            });
        });
        expect(ratios.map((r) => r.text).sort()).toEqual(
          ['black on yellow', 'bright white on blue', 'default on blue', 'white on blue'].sort(),
        );
        for (const r of ratios) expect(r.ratio, `${scheme}: ${r.text}`).toBeGreaterThanOrEqual(4.5);
        await p.screenshot({ path: screenshotPath(`defects-ansi-backgrounds-${scheme}`) });
      } finally {
        await ctx.close();
      }
    }
  });

  it('keeps the editor’s gutter to a screenful of numbers for a 40,000-line manifest, and warns of the 256 KiB limit', async () => {
    await page.goto(`${stack.url}/builds/new`);
    const editor = page.getByLabel('Manifest (YAML)');
    const big = ['driver: {type: os}', 'stages: [s]', 'jobs:', '  - {stage: s, commands: [true]}']
      .concat(Array.from({ length: 40_000 - 4 }, (_, i) => `# padding line ${i + 5} of the manifest`))
      .join('\n');
    // As a paste does: the whole text in one input event.
    await editor.evaluate((el: HTMLTextAreaElement, text) => {
      el.value = text;
      el.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertFromPaste' }));
    }, big);
    const numbers = () => page.locator('.editor-num').allTextContents();
    await expect.poll(async () => (await numbers()).length).toBeGreaterThan(10);
    expect((await numbers()).length).toBeLessThanOrEqual(100);
    expect((await numbers())[0]).toBe('1');

    await editor.evaluate((el) => {
      el.scrollTop = el.scrollHeight;
      el.dispatchEvent(new Event('scroll'));
    });
    await expect.poll(async () => (await numbers()).at(-1)).toBe('40000');
    expect((await numbers()).length).toBeLessThanOrEqual(100);
    expect(await page.locator('.editor-gutter').getAttribute('data-lines')).toBe('40000');
    // The last number sits beside the last line: both at the bottom of the editor.
    const [last, area] = await Promise.all([
      page.locator('.editor-num[data-line="40000"]').boundingBox(),
      editor.boundingBox(),
    ]);
    expect(last!.y + last!.height).toBeLessThanOrEqual(area!.y + area!.height + 1);
    expect(last!.y).toBeGreaterThan(area!.y + area!.height - 60);

    // Over the API's limit: said before sending, and the button waits.
    await expect.poll(() => page.getByTestId('manifest-too-big').textContent()).toContain('256.0 KiB');
    expect(await page.getByRole('button', { name: 'Submit build' }).isDisabled()).toBe(true);
    await page.screenshot({ path: screenshotPath('defects-manifest-40000-lines') });

    await editor.fill(oneJob('small', ['true']));
    await expect.poll(() => page.getByTestId('manifest-too-big').count()).toBe(0);
    expect(await page.getByTestId('manifest-size').textContent()).toMatch(/ of 256\.0 KiB$/);
    expect(await page.getByRole('button', { name: 'Submit build' }).isDisabled()).toBe(false);
    expect(pageErrors).toEqual([]);
  });

  it('shows builds with their namespaces in dark mode too', async () => {
    const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' });
    await dark.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
    const p = await dark.newPage();
    try {
      await p.goto(`${stack.url}/builds`);
      await expect
        .poll(() => p.locator('.build-row .build-number').allTextContents())
        .toContain('admin@alpha #1');
      await p.screenshot({ path: screenshotPath('defects-builds-namespaces-dark') });
      await p.goto(buildUrl(publicBuild.id));
      await expect.poll(() => lines(p), { timeout: 15_000 }).toContain('hello from alpha');
      await p.screenshot({ path: screenshotPath('defects-build-namespace-dark') });
    } finally {
      await dark.close();
    }
  });
});

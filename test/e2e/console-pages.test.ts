/**
 * The console's account pages end to end (Debian's Chromium through playwright-core, a real `kiln
 * serve` on PostgreSQL and RabbitMQ, a real runner): runners, namespaces with a collaborator who
 * accepts, masked variables, and a revoked token.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

describe.runIf(ready)('the console pages for runners, namespaces, variables and tokens', () => {
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
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('dialog', (dialog) => void dialog.accept());
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

  async function signIn(p: Page, token: string) {
    await p.goto(`${stack.url}/sign-in`);
    await p.getByLabel('API token', { exact: true }).fill(token);
    await p.getByRole('button', { name: 'Sign in with token' }).click();
    await p.waitForURL(/\/builds$/);
  }

  async function graphql(token: string, query: string, variables: Record<string, unknown> = {}) {
    const res = await fetch(`${stack.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as {
      data?: Record<string, unknown>;
      errors?: { extensions?: { code?: string } }[];
    };
  }

  it('shows the runner online on the runners page', async () => {
    await signIn(page, stack.token);
    await page.getByRole('link', { name: 'Runners' }).click();
    await page.waitForURL(/\/runners$/);
    const runner = page.locator('[data-runner="e2e"]');
    await expect.poll(() => runner.locator('.badge').textContent(), { timeout: 15_000 }).toBe('online');
    expect(await runner.textContent()).toContain('queues default');
    await page.screenshot({ path: screenshotPath('runners') });
  });

  it('creates a namespace and invites a collaborator, who accepts', async () => {
    const signUp = await graphql(
      stack.token,
      'mutation { signUp(input: { username: "bob", password: "password-bob" }) { __typename } }',
    );
    expect(signUp.data?.signUp).toEqual({ __typename: 'SignUpSuccess' });
    const login = await graphql(
      stack.token,
      'mutation { logIn(input: { username: "bob", password: "password-bob" }) { ... on LogInSuccess { token } } }',
    );
    const bobToken = (login.data!.logIn as { token: string }).token;

    await page.getByRole('link', { name: 'Namespaces' }).click();
    await expect.poll(() => page.locator('.empty-title').first().textContent()).toBe('No namespaces yet');
    await page.getByLabel('Path').fill('team');
    await page.getByRole('button', { name: 'Create namespace' }).click();
    await page.waitForURL(/\/namespaces\/[^/]+\/team$/);
    await expect.poll(() => page.locator('h1').textContent()).toMatch(/@team$/);
    await page.getByLabel('Invite by username').fill('bob');
    await page.getByRole('button', { name: 'Invite', exact: true }).click();
    // Other panels of the page (badge, schedules) have status lines of their own.
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Invited bob' }).count()).toBe(1);
    await expect.poll(() => page.getByTestId('pending-invites').textContent()).toContain('bob');

    const bob = await context.browser()!.newContext({ viewport: { width: 375, height: 800 } });
    bob.setDefaultTimeout(10_000);
    const bobPage = await bob.newPage();
    try {
      await signIn(bobPage, bobToken);
      await bobPage.goto(`${stack.url}/namespaces`);
      const invite = bobPage.getByRole('list', { name: 'Invites' }).getByRole('listitem');
      await expect.poll(() => invite.textContent()).toContain('@team');
      await bobPage.screenshot({ path: screenshotPath('namespaces-invite-375') });
      await bobPage.getByRole('button', { name: 'Accept' }).click();
      await expect
        .poll(() => bobPage.getByRole('list', { name: 'Namespaces' }).textContent())
        .toMatch(/@team/);
      expect(await bobPage.getByRole('list', { name: 'Invites' }).count()).toBe(0);
    } catch (err) {
      await bobPage.screenshot({ path: screenshotPath('failed-bob') });
      throw err;
    } finally {
      await bob.close();
    }
    await page.reload();
    await expect.poll(() => page.getByRole('list', { name: 'Collaborators' }).textContent()).toContain('bob');
    await page.screenshot({ path: screenshotPath('namespace') });
  });

  it('adds a masked variable whose value the page never shows', async () => {
    const secret = 'hunter2-very-secret';
    await page.getByLabel('Key', { exact: true }).fill('DEPLOY_TOKEN');
    await page.getByLabel('Value', { exact: true }).fill(secret);
    expect(await page.getByLabel(/^Masked/).isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Add variable' }).click();
    const row = page.locator('[data-variable="DEPLOY_TOKEN"]');
    await expect.poll(() => row.textContent()).toContain('masked');
    await page.reload();
    await expect.poll(() => row.textContent()).toContain('masked');
    expect(await page.content()).not.toContain(secret);
    await page.screenshot({ path: screenshotPath('variables') });
  });

  it('creates a token, revokes it, and the API refuses it from then on', async () => {
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByLabel('Name', { exact: true }).fill('deploy bot');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = (await page.getByTestId('new-token').textContent())!;
    expect((await graphql(secret, '{ viewer { username } }')).data?.viewer).toBeTruthy();
    const row = page.locator('[data-token="deploy bot"]');
    await expect.poll(() => row.textContent()).toContain('build:read');
    await row.getByRole('button', { name: 'Revoke deploy bot' }).click();
    await expect.poll(() => row.count()).toBe(0);
    const refused = await graphql(secret, '{ viewer { username } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await page.screenshot({ path: screenshotPath('tokens') });
    expect(pageErrors).toEqual([]);
  });

  it('sets a password and the artifact cleanup limit on the account page', async () => {
    await page.getByTitle('Your account').click();
    await page.waitForURL(/\/account$/);
    const keep = page.getByLabel('Keep (MiB)');
    await expect.poll(() => keep.inputValue()).toBe('1024');
    await keep.fill('256');
    await page.getByRole('button', { name: 'Save limit' }).click();
    await expect.poll(() => page.getByText('Limit saved.').count()).toBe(1);
    const viewer = await graphql(stack.token, '{ viewer { artifactCleanupBytes } }');
    expect(viewer.data?.viewer).toEqual({ artifactCleanupBytes: 256 * 1024 ** 2 });

    // The bootstrap admin has no password yet: its token may set one without the current one.
    await page.getByLabel('New password', { exact: true }).fill('password-admin');
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect.poll(() => page.getByText('Password changed.').count()).toBe(1);
    const login = await graphql(
      stack.token,
      'mutation { logIn(input: { username: "admin", password: "password-admin" }) { __typename } }',
    );
    expect(login.data?.logIn).toEqual({ __typename: 'LogInSuccess' });
    await page.screenshot({ path: screenshotPath('account') });
  });

  it('reads as well in dark mode: text stands out from its background on every page', async () => {
    const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' });
    const p = await dark.newPage();
    await signIn(p, stack.token);
    const submitted = await graphql(
      stack.token,
      `mutation ($m: String!) { submitBuild(input: { manifest: $m }) { ... on SubmitBuildSuccess { build { id } } } }`,
      {
        m: 'driver: {type: os}\nstages: [s]\njobs:\n  - {stage: s, name: dark, commands: [echo in the dark, "false"]}\n',
      },
    );
    const id = (submitted.data!.submitBuild as { build: { id: string } }).build.id;
    const pages: [string, string][] = [
      ['builds', '/builds'],
      ['build', `/builds/${encodeURIComponent(id)}`],
      ['runners', '/runners'],
      ['tokens', '/tokens'],
      ['account', '/account'],
    ];
    for (const [name, route] of pages) {
      await p.goto(`${stack.url}${route}`);
      if (name === 'build')
        await expect.poll(() => p.getByTestId('log-viewport').textContent()).toContain('in the dark');
      await p.waitForLoadState('networkidle');
      // The lowest contrast between a visible text element's colour and the background behind it.
      const worst = await p.evaluate(() => {
        const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).slice(0, 4).map(Number);
        const lum = ([r = 0, g = 0, b = 0]: number[]) => {
          const f = (v: number) => {
            const c = v / 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        const background = (el: Element | null): number[] => {
          for (let e = el; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length < 4 || c[3]! > 0.5) return c;
          }
          return rgb(getComputedStyle(document.documentElement).backgroundColor);
        };
        let min = { ratio: 21, text: '' };
        for (const el of document.querySelectorAll('body *')) {
          const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent!.trim() !== '');
          const box = el.getBoundingClientRect();
          if (!own || box.width === 0 || box.height === 0) continue;
          const style = getComputedStyle(el);
          if (style.visibility === 'hidden' || Number(style.opacity) < 0.5) continue;
          const [a, b] = [lum(rgb(style.color)), lum(background(el))];
          const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
          if (ratio < min.ratio)
            min = { ratio, text: `${el.tagName}.${el.className}: ${el.textContent!.trim().slice(0, 30)}` };
        }
        return min;
      });
      await p.screenshot({ path: screenshotPath(`dark-${name}`) });
      // WCAG AA for large text and UI labels; body text sits far above it.
      expect(worst.ratio, `${name}: ${worst.text}`).toBeGreaterThanOrEqual(3);
    }
    await dark.close();
  });
});

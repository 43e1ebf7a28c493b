/**
 * The console's repositories end to end (Debian's Chromium through playwright-core, a real `kiln
 * serve` on PostgreSQL and RabbitMQ, a real runner): connecting a bare repository made here (file://),
 * the webhook URL and secret shown once, a GitHub push signed with the secret read off the page and
 * posted to the URL read off the page, its event and build, a replay, Build now, settings, and the
 * build's cause on its page and in the builds list.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deliverSigned, giteaPush, githubPush, makeRemote, type Remote } from '../testkit/forge.ts';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

/** Polls for what the server has to do first (a lazy page, a mutation, a webhook's work). */
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 10_000 });

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - {stage: s, name: hello, commands: [cat hello.txt]}
`;

describe.runIf(ready)('the console pages for repositories and forge events', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let dir: string;
  let remote: Remote;
  let sha: string;
  const pageErrors: string[] = [];
  /** What the page showed once, right after connecting. */
  let webhookUrl = '';
  let secret = '';
  let repositoryPage = '';
  const delivery = crypto.randomUUID();
  /** A stand-in for Gitea's API: what Kiln sent it (hooks installed, commit statuses). */
  let forge: Server;
  let forgeUrl = '';
  const forgeCalls: {
    method: string;
    path: string;
    authorization?: string;
    body: Record<string, unknown>;
  }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-console-repos-'));
    remote = await makeRemote(dir);
    sha = await remote.commit(
      { '.kiln.yml': MANIFEST, 'hello.txt': 'hello from the pushed commit\n' },
      'Teach the engine to count\n\nA body that the cause line leaves out.',
    );
    forge = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on('end', () => {
        forgeCalls.push({
          method: req.method ?? '',
          path: req.url ?? '',
          authorization: req.headers.authorization,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        });
        // A new hook gets an id, as Gitea gives one.
        const answer = req.method === 'POST' && req.url?.endsWith('/hooks') ? '{"id":77}' : '{}';
        res.writeHead(201, { 'content-type': 'application/json' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => forge.listen(0, '127.0.0.1', resolve));
    forgeUrl = `http://127.0.0.1:${(forge.address() as AddressInfo).port}`;
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack(), launchChromium()]);
    await stack.gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.url });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));
    page.on('dialog', (dialog) => void dialog.accept());
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    forge?.closeAllConnections();
    forge?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    await page.screenshot({ path: screenshotPath(`failed-${name}`), fullPage: true }).catch(() => {});
  });

  const field = (name: string) =>
    page.locator(`form[aria-label="Connect a repository"] [data-field="${name}"]`);
  const fieldError = (name: string) => field(name).locator('.field-error');
  const eventRows = () => page.locator(`[data-delivery="${delivery}"]`);

  it('shows an InputError next to the field its path names', async () => {
    await page.goto(`${stack.url}/sign-in`);
    await page.getByLabel('API token', { exact: true }).fill(stack.token);
    await page.getByRole('button', { name: 'Sign in with token' }).click();
    await page.waitForURL(/\/builds$/);
    await page.goto(`${stack.url}/namespaces/admin/team`);
    await page.getByRole('link', { name: 'Repositories', exact: true }).click();
    await page.waitForURL(/\/namespaces\/admin\/team#repositories$/);
    await eventually(() => page.locator('.empty-title').first().textContent()).toBe('No repositories yet');
    await page.getByRole('button', { name: 'Connect a repository' }).click();

    await page.getByLabel('Clone URL').fill(remote.url);
    await page.getByLabel('Poll interval (seconds)').fill('3');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await eventually(() => fieldError('pollInterval').textContent()).toContain('polled at most every 10 s');
    expect(await page.getByLabel('Poll interval (seconds)').getAttribute('aria-invalid')).toBe('true');
    expect(await fieldError('cloneUrl').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('repository-input-error') });

    await page.getByLabel('Poll interval (seconds)').fill('');
    await page.getByLabel('Clone URL').fill('ftp://example.com/engine.git');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await eventually(() => fieldError('cloneUrl').textContent()).toContain('ftp:// is not a protocol');
    expect(await fieldError('pollInterval').count()).toBe(0);
    expect(await page.getByLabel('Clone URL').getAttribute('aria-invalid')).toBe('true');
  });

  it('connects a repository and shows its webhook URL and secret once, with GitHub instructions', async () => {
    await page.getByLabel('Clone URL').fill(remote.url);
    await page.getByLabel('Forge', { exact: true }).selectOption('GITHUB');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    const created = page.getByTestId('created-repository');
    await eventually(() => created.textContent()).toContain('Connected origin');
    webhookUrl = (await page.getByTestId('webhook-url').textContent())!;
    secret = (await page.getByTestId('webhook-secret').textContent())!;
    expect(webhookUrl).toMatch(new RegExp(`^${stack.url}/hooks/github/`));
    expect(secret).toMatch(/^[0-9a-f]{48}$/);
    expect(await created.textContent()).toContain('it will not be shown again');
    const instructions = (await page.getByTestId('webhook-instructions').textContent())!;
    for (const words of [
      'Settings → Webhooks → Add webhook',
      'Payload URL',
      'application/json',
      'Pull requests',
    ])
      expect(instructions).toContain(words);
    expect(instructions).not.toContain('Merge request events');

    await page.getByRole('button', { name: 'Copy webhook secret' }).click();
    await eventually(() => page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await page.screenshot({ path: screenshotPath('repository-connected'), fullPage: true });

    const row = page.locator('[data-repository="origin"]');
    await eventually(() => row.textContent()).toContain(remote.url);
    const text = (await row.textContent())!;
    for (const words of ['GitHub', 'default branch main', 'webhooks only', 'webhook added by hand'])
      expect(text).toContain(words);

    await page.reload();
    await eventually(() => row.textContent()).toContain(remote.url);
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    expect(await page.content()).not.toContain(secret);
  });

  it('lists a signed push as a verified event with the build it started, and replays it', async () => {
    await page.locator('[data-repository="origin"]').getByRole('link', { name: 'origin' }).click();
    await page.waitForURL(/\/repositories\/[^/]+$/);
    repositoryPage = page.url();
    await eventually(() => page.locator('h1').textContent()).toContain('origin');
    // The webhook URL stays on the repository's page; the secret does not.
    await page.locator('summary', { hasText: 'Webhook' }).click();
    expect(await page.getByTestId('webhook-url').textContent()).toBe(webhookUrl);
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);

    const push = githubPush(sha, 'refs/heads/main', 'Teach the engine to count\n\nA body.');
    const head = push.head_commit as Record<string, unknown>;
    head.author = { name: 'Ada Lovelace', email: 'ada@example.com', username: 'ada' };
    // GitHub's compare view is what a push's cause links to.
    push.compare = `https://github.example/ada/engine/commit/${sha}`;
    const sent = await deliverSigned(webhookUrl, 'github', 'push', push, secret, delivery);
    expect(sent.status).toBe(202);
    const refused = await deliverSigned(webhookUrl, 'github', 'push', push, 'not-the-secret');
    expect(refused.status).toBe(401);

    // No reload: the page looks again by itself.
    await expect.poll(() => eventRows().count(), { timeout: 20_000 }).toBe(1);
    const row = eventRows().first();
    await expect.poll(() => row.textContent(), { timeout: 20_000 }).toContain('started 1 build');
    expect(await row.textContent()).toContain('push');
    expect(await row.textContent()).toContain('verified');
    expect(await row.textContent()).toContain(delivery);
    const buildLink = row.getByRole('link', { name: /^#\d+$/ });
    expect(await buildLink.count()).toBe(1);
    const firstBuild = (await buildLink.getAttribute('href'))!;
    expect(firstBuild).toMatch(/^\/builds\/.+/);

    const refusedRow = page.locator('.event', { hasText: 'refused' });
    await eventually(() => refusedRow.count()).toBe(1);
    expect(await refusedRow.textContent()).toContain('bad signature');
    expect(await refusedRow.getByRole('button', { name: /^Replay/ }).count()).toBe(0);

    await row.getByRole('button', { name: /^Replay/ }).click();
    await eventually(() => eventRows().count()).toBe(2);
    // Newest first: the replay, with a build of its own.
    const replay = eventRows().first();
    await eventually(() => replay.textContent()).toContain('a replay of');
    await eventually(() => replay.textContent()).toContain('started 1 build');
    const replayBuild = await replay.getByRole('link', { name: /^#\d+$/ }).getAttribute('href');
    expect(replayBuild).not.toBe(firstBuild);
    expect(
      await eventRows()
        .nth(1)
        .getByRole('link', { name: /^#\d+$/ })
        .getAttribute('href'),
    ).toBe(firstBuild);
    await expect
      .poll(
        () => page.getByRole('list', { name: 'Builds of the repository' }).getByRole('listitem').count(),
        {
          timeout: 15_000,
        },
      )
      .toBe(2);
    await page.screenshot({ path: screenshotPath('repository-events'), fullPage: true });
  });

  it("shows the build's cause on its page and in the builds list", async () => {
    await eventRows()
      .nth(1)
      .getByRole('link', { name: /^#\d+$/ })
      .click();
    await page.waitForURL(/\/builds\/[^/]+$/);
    const cause = page.getByTestId('build-cause');
    await eventually(() => cause.textContent()).toContain('push');
    expect(await page.getByTestId('cause-ref').textContent()).toBe('main');
    expect(await page.getByTestId('cause-sha').textContent()).toBe(sha.slice(0, 7));
    expect(await cause.getByRole('link', { name: sha.slice(0, 7) }).getAttribute('href')).toBe(
      `https://github.example/ada/engine/commit/${sha}`,
    );
    expect(await page.getByTestId('cause-author').textContent()).toBe('Ada Lovelace');
    expect(await page.getByTestId('cause-message').textContent()).toBe('Teach the engine to count');
    expect(await page.getByTestId('cause-repository').textContent()).toBe('origin');
    await expect
      .poll(() => page.getByTestId('log-viewport').textContent(), { timeout: 30_000 })
      .toContain('hello from the pushed commit');
    await page.screenshot({ path: screenshotPath('build-cause') });

    await page.getByRole('link', { name: 'Builds', exact: true }).first().click();
    await page.waitForURL(/\/builds$/);
    const rows = page.getByRole('list', { name: 'Builds' }).locator('.build-cause');
    await expect
      .poll(() => rows.allTextContents(), { timeout: 10_000 })
      .toEqual([`push main@${sha.slice(0, 7)}`, `push main@${sha.slice(0, 7)}`]);
  });

  it('builds a branch now, refuses one the remote lacks, changes the settings and deletes it', async () => {
    await page.goto(repositoryPage);
    const buildNow = page.getByRole('form', { name: 'Build now' });
    await buildNow.getByLabel('Branch or tag (optional)').fill('no-such-branch');
    await buildNow.getByRole('button', { name: 'Build now' }).click();
    await expect
      .poll(() => buildNow.locator('[data-field="ref"] .field-error').textContent(), { timeout: 10_000 })
      .toContain('no branch or tag no-such-branch');
    await buildNow.getByLabel('Branch or tag (optional)').fill('');
    await buildNow.getByRole('button', { name: 'Build now' }).click();
    await eventually(() => page.getByTestId('build-now-outcome').textContent()).toContain('started 1 build');
    await expect
      .poll(
        () => page.getByRole('list', { name: 'Builds of the repository' }).getByRole('listitem').count(),
        {
          timeout: 15_000,
        },
      )
      .toBe(3);
    expect(
      await page
        .getByRole('list', { name: 'Builds of the repository' })
        .getByRole('listitem')
        .first()
        .textContent(),
    ).toContain(`manual main@${sha.slice(0, 7)}`);

    await page.getByRole('button', { name: 'Edit' }).click();
    const settings = page.getByRole('form', { name: 'Settings of origin' });
    expect(await settings.getByLabel('Clone URL').inputValue()).toBe(remote.url);
    await settings.getByLabel('Poll interval (seconds)').fill('30');
    await settings.getByLabel('Never build branches').fill('wip/** tmp');
    await settings.getByLabel(/Build every commit of a push/).check();
    await settings.getByRole('button', { name: 'Save' }).click();
    await eventually(() => page.locator('.facts').textContent()).toContain('polled every 30 s');
    expect(await page.locator('.facts').textContent()).toContain('not wip/**, tmp');
    expect(await page.locator('.facts').textContent()).toContain('every commit');
    const stored = await stack.gql<{
      node: { pollInterval: number; excludeBranches: string[]; buildEveryCommit: boolean };
    }>(
      'query ($id: ID!) { node(id: $id) { ... on Repository { pollInterval excludeBranches buildEveryCommit } } }',
      { id: decodeURIComponent(repositoryPage.split('/').pop()!) },
    );
    expect(stored.node).toEqual({
      pollInterval: 30,
      excludeBranches: ['wip/**', 'tmp'],
      buildEveryCommit: true,
    });
    await page.screenshot({ path: screenshotPath('repository'), fullPage: true });

    await page.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/\/namespaces\/admin\/team(#repositories)?$/);
    await eventually(() => page.locator('.empty-title').first().textContent()).toBe('No repositories yet');
    expect(pageErrors).toEqual([]);
  });

  it('says when Kiln installed the hook with the forge token, and shows the status it reported', async () => {
    await page.getByRole('button', { name: 'Connect a repository' }).click();
    await page.getByLabel('Clone URL').fill(remote.url);
    await page.getByLabel('Name (optional)').fill('app');
    await page.getByLabel('Forge', { exact: true }).selectOption('GITEA');
    await page.getByLabel('Forge API URL').fill(forgeUrl);
    await page.getByLabel('Forge repository').fill('acme/app');
    expect(await page.getByLabel('Forge token').getAttribute('type')).toBe('password');
    await page.getByLabel('Forge token').fill('gitea-token');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    const created = page.getByTestId('created-repository');
    await eventually(() => created.textContent()).toContain('Connected app');
    expect(await page.getByTestId('hook-installed').textContent()).toContain(
      'Kiln installed this webhook on Gitea',
    );
    expect(await page.getByTestId('webhook-instructions').count()).toBe(0);
    const hookSecret = (await page.getByTestId('webhook-secret').textContent())!;
    const hookUrl = (await page.getByTestId('webhook-url').textContent())!;
    const installed = forgeCalls.find((c) => c.method === 'POST' && c.path === '/repos/acme/app/hooks');
    expect(installed).toMatchObject({
      authorization: 'token gitea-token',
      body: { config: { url: hookUrl, secret: hookSecret } },
    });
    expect(await page.locator('[data-repository="app"]').textContent()).toContain(
      'webhook installed by Kiln',
    );

    const sent = await deliverSigned(hookUrl, 'gitea', 'push', giteaPush(sha), hookSecret);
    expect(sent.status).toBe(202);
    const final = () =>
      forgeCalls.find(
        (c) =>
          c.path === `/repos/acme/app/statuses/${sha}` && (c.body as { state?: string }).state === 'success',
      );
    await expect.poll(final, { timeout: 30_000, interval: 200 }).toBeTruthy();
    await page.locator('[data-repository="app"]').getByRole('link', { name: 'app' }).click();
    const row = page.locator('.event', { hasText: 'started 1 build' });
    await expect.poll(() => row.count(), { timeout: 20_000 }).toBe(1);
    await row.getByRole('link', { name: /^#\d+$/ }).click();
    await page.waitForURL(/\/builds\/[^/]+$/);
    await expect
      .poll(() => page.getByTestId('forge-status').textContent(), { timeout: 10_000 })
      .toContain('reported success to gitea');
    expect(await page.getByTestId('cause-repository').textContent()).toBe('app');
    await page.screenshot({ path: screenshotPath('build-cause-forge-status') });
    expect(pageErrors).toEqual([]);
  });
});

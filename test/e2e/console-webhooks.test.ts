/**
 * The console's outgoing webhooks and status badge end to end (Debian's Chromium through
 * playwright-core, a real `kiln serve` on PostgreSQL and RabbitMQ with KILN_ALLOW_PRIVATE_URLS=true, a
 * real runner, and an HTTP receiver on 127.0.0.1 in this test): the subscription editor checked by the
 * API as one types, the signing secret shown once and verified by the `standardwebhooks` package
 * against what the receiver got, the deliveries with their HTTP status, a refused delivery sent again
 * with Redeliver, Pause/Resume, Edit, Delete; the viewer's own webhooks; the badge's image, snippets
 * and token regeneration, and the CCTray feed's URL.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

/** Polls for what the server has to do first (a lazy page, a debounced check, a mutation). */
const eventually = <T>(fn: () => T | Promise<T>, timeout = 10_000) => expect.poll(fn, { timeout });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - {stage: s, name: hello, commands: [echo hello]}
`;

/** What the test's webhook selects: one POST per build of team that passes. */
const DOCUMENT = `subscription {
  buildsUpdated(namespace: "team", status: PASSED) {
    number
    status
    namespace { path }
  }
}`;

/** The form's first example, as the console inserts it. */
const EVERY_BUILD = `subscription {
  buildsUpdated {
    number
    status
    namespace { path }
  }
}
`;

interface Received {
  at: number;
  headers: Record<string, string>;
  body: string;
  answered: number;
}

/** An HTTP receiver on 127.0.0.1 that answers `status` (settable) and keeps every POST it got. */
async function startReceiver() {
  const received: Received[] = [];
  const state = { status: 200 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = state.status;
      received.push({
        at: Date.now(),
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]),
        ),
        body: Buffer.concat(chunks).toString('utf8'),
        answered,
      });
      res.writeHead(answered, { 'content-type': 'text/plain' }).end(answered < 300 ? 'ok' : 'broken');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A delivery's global id (the console's `data-delivery`) from its webhook-id header (its own id). */
const deliveryId = (webhookId: string) => Buffer.from(`WebhookDelivery:${webhookId}`).toString('base64');

type BuildsUpdated = {
  data: { buildsUpdated: { number: number; status: string; namespace: { path: string } } };
};

describe.runIf(ready)('the console pages for webhooks and badges', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let secret = '';
  let webhookPath = '';
  const dialogs: string[] = [];
  const pageErrors: string[] = [];

  const problemOf = async (subscription: string) =>
    (
      await stack.gql<{ webhookSubscriptionProblem: string | null }>(
        'query ($s: String!) { webhookSubscriptionProblem(subscription: $s) }',
        { s: subscription },
      )
    ).webhookSubscriptionProblem;

  const teamWebhooks = async () =>
    (
      await stack.gql<{
        namespace: { webhooks: { id: string; url: string; subscription: string; active: boolean }[] };
      }>('query { namespace(path: "team") { webhooks { id url subscription active } } }')
    ).namespace.webhooks;

  const submitBuild = async () =>
    (
      await stack.gql<{ submitBuild: { build: { id: string; number: number } } }>(
        `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) {
          ... on SubmitBuildSuccess { build { id number } } } }`,
        { m: MANIFEST },
      )
    ).submitBuild.build;

  /** The POSTs the receiver got about build `n`. */
  const postsAbout = (n: number) =>
    receiver.received.filter((r) => (JSON.parse(r.body) as BuildsUpdated).data?.buildsUpdated?.number === n);

  const badgeToken = async () =>
    (
      await stack.gql<{ namespace: { badgeToken: string | null } }>(
        'query { namespace(path: "team") { badgeToken } }',
      )
    ).namespace.badgeToken;

  beforeAll(async () => {
    receiver = await startReceiver();
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack({ allowPrivateUrls: true }), launchChromium()]);
    await stack.gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await receiver?.close();
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    await page.screenshot({ path: screenshotPath(`failed-${name}`), fullPage: true }).catch(() => {});
  });

  const form = (name = 'New webhook') => page.getByRole('form', { name });
  const field = (name: string, formName?: string) => form(formName).locator(`[data-field="${name}"]`);
  const fieldError = (name: string, formName?: string) => field(name, formName).locator('.field-error');
  const editor = (formName?: string) => form(formName).getByLabel('Subscription', { exact: true });
  const submitButton = (label = 'Create', formName?: string) =>
    form(formName).getByRole('button', { name: label, exact: true });
  const row = (url: string) => page.locator(`#webhooks [data-webhook="${url}"]`);
  const deliveries = () => page.locator('#deliveries li.delivery');

  it('refuses what the API refuses as the subscription is typed, and creates the webhook once it takes it', async () => {
    await page.goto(`${stack.url}/sign-in`);
    await page.getByLabel('API token', { exact: true }).fill(stack.token);
    await page.getByRole('button', { name: 'Sign in with token' }).click();
    await page.waitForURL(/\/builds$/);
    await page.goto(`${stack.url}/namespaces/admin/team`);
    await page.getByRole('main').getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.waitForURL(/\/namespaces\/admin\/team#webhooks$/);
    await eventually(() => page.locator('#webhooks .empty-title').textContent()).toBe('No webhooks yet');
    await page.getByRole('button', { name: 'New webhook' }).click();

    // Nothing typed: nothing to create, and no error yet.
    expect(await submitButton().isDisabled()).toBe(true);
    expect(await fieldError('subscription').count()).toBe(0);

    await form().getByLabel('Payload URL', { exact: true }).fill(receiver.url);
    const query = 'query { viewer { id } }';
    await editor().fill(query);
    const notASubscription = await problemOf(query);
    expect(notASubscription).toContain('a webhook runs a subscription');
    await eventually(() => fieldError('subscription').textContent()).toBe(notASubscription);
    expect(await editor().getAttribute('aria-invalid')).toBe('true');
    expect(await submitButton().isDisabled()).toBe(true);

    const unknownField = 'subscription { buildsUpdated { nope } }';
    await editor().fill(unknownField);
    const refused = await problemOf(unknownField);
    expect(refused).toContain('nope');
    await eventually(() => fieldError('subscription').textContent()).toBe(refused);
    expect(await submitButton().isDisabled()).toBe(true);
    await page.screenshot({ path: screenshotPath('webhook-editor-problem'), fullPage: true });

    // An example replaces the text, and the API takes it.
    await form().getByRole('button', { name: "Every build's status" }).click();
    expect(await editor().inputValue()).toBe(EVERY_BUILD);
    expect(await problemOf(EVERY_BUILD)).toBeNull();
    await eventually(() => submitButton().isEnabled()).toBe(true);
    expect(await fieldError('subscription').count()).toBe(0);
    expect(await editor().getAttribute('aria-invalid')).toBeNull();

    await editor().fill(DOCUMENT);
    expect(await problemOf(DOCUMENT)).toBeNull();
    await eventually(() => form().getByTestId('subscription-check').textContent()).toContain(
      'The API takes this document',
    );
    await eventually(() => submitButton().isEnabled()).toBe(true);
    await submitButton().click();

    const created = page.getByTestId('created-webhook');
    await eventually(() => created.count()).toBe(1);
    expect(await form().count()).toBe(0);
    expect(await created.textContent()).toContain(`Created the webhook to ${receiver.url}`);
    expect(await created.textContent()).toContain('it will not be shown again');
    expect(await created.textContent()).toContain('new Webhook(secret).verify(');
    secret = (await page.getByTestId('webhook-secret').textContent())!;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    await page.screenshot({ path: screenshotPath('webhook-created'), fullPage: true });

    const stored = await teamWebhooks();
    expect(stored).toEqual([
      expect.objectContaining({ url: receiver.url, subscription: DOCUMENT, active: true }),
    ]);
    const listed = row(receiver.url);
    await eventually(() => listed.count()).toBe(1);
    expect(await listed.getByTestId('webhook-state').textContent()).toBe('active');
    expect(await listed.getByTestId('no-deliveries').textContent()).toBe('nothing sent yet');
    webhookPath = `/webhooks/${encodeURIComponent(stored[0]!.id)}`;
  });

  it('shows the secret once: hidden for good once dismissed or the page is left', async () => {
    await page.getByRole('button', { name: 'Done, hide the secret' }).click();
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    await page.reload();
    await eventually(() => row(receiver.url).count()).toBe(1);
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    expect(await page.content()).not.toContain(secret);
  });

  it("posts a passed build's selected shape, signed so that standardwebhooks verifies it with the page's secret, and lists it delivered", async () => {
    // The leading serve starts a new webhook's subscription at its next round (every 2 s).
    await sleep(3_000);
    const build = await submitBuild();
    await eventually(() => postsAbout(build.number).length, 60_000).toBe(1);
    const [post] = postsAbout(build.number);
    expect(post!.answered).toBe(200);
    expect(JSON.parse(post!.body)).toEqual({
      data: { buildsUpdated: { number: build.number, status: 'PASSED', namespace: { path: 'team' } } },
    });
    expect(new Webhook(secret).verify(post!.body, post!.headers)).toEqual(JSON.parse(post!.body));
    // The check means something: another secret, or another body, is refused.
    const other = `whsec_${randomBytes(24).toString('base64')}`;
    expect(() => new Webhook(other).verify(post!.body, post!.headers)).toThrow();
    expect(() => new Webhook(secret).verify(post!.body.replace('PASSED', 'FAILED'), post!.headers)).toThrow();

    await page.goto(`${stack.url}/namespaces/admin/team#webhooks`);
    const listed = row(receiver.url);
    await eventually(() => listed.getByTestId('delivery-state').textContent()).toBe('delivered');
    expect(await listed.getByTestId('delivery-status').textContent()).toBe('HTTP 200');
    await listed.getByRole('link', { name: receiver.url }).click();
    await page.waitForURL((u) => u.pathname === webhookPath);
    await eventually(() => deliveries().count()).toBe(1);
    const d = deliveries().first();
    expect(await d.getAttribute('data-delivery')).toBe(deliveryId(post!.headers['webhook-id']!));
    expect(await d.getByTestId('delivery-state').textContent()).toBe('delivered');
    expect(await d.getByTestId('delivery-status').textContent()).toBe('HTTP 200');
    expect(await d.getByTestId('delivery-attempts').textContent()).toBe('1 attempt');
    expect(await d.getByTestId('delivery-error').count()).toBe(0);
    // The payload, pretty-printed, behind a disclosure.
    const payload = d.getByTestId('delivery-payload');
    expect(await payload.isVisible()).toBe(false);
    await d.getByText('Payload', { exact: true }).click();
    expect(await payload.isVisible()).toBe(true);
    const text = (await payload.textContent())!;
    expect(text).toBe(JSON.stringify(JSON.parse(post!.body), null, 2));
    expect(await page.getByTestId('webhook-subscription').textContent()).toBe(DOCUMENT);
    await page.screenshot({ path: screenshotPath('webhook-deliveries'), fullPage: true });
  }, 90_000);

  it('lists a delivery the receiver refuses as retrying with its status, and Redeliver sends it again at once', async () => {
    receiver.state.status = 500;
    const build = await submitBuild();
    // Two refused attempts (the second 5 s after the first): the next one is 10 s away.
    await eventually(() => postsAbout(build.number).length, 60_000).toBe(2);
    const [first, second] = postsAbout(build.number);
    expect(first!.answered).toBe(500);
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    const id = first!.headers['webhook-id']!;
    const d = page.locator(`#deliveries li.delivery[data-delivery="${deliveryId(id)}"]`);
    await eventually(() => d.getByTestId('delivery-attempts').textContent()).toBe('2 attempts');
    expect(await deliveries().first().getAttribute('data-delivery')).toBe(deliveryId(id));
    expect(await d.getAttribute('data-state')).toBe('pending');
    expect(await d.getByTestId('delivery-state').textContent()).toBe('retrying');
    expect(await d.getByTestId('delivery-status').textContent()).toBe('HTTP 500');
    expect(await d.getByTestId('delivery-error').textContent()).toContain('the receiver answered 500');
    const nextAt = Date.parse(
      (await d.getByTestId('next-attempt').locator('time').getAttribute('datetime'))!,
    );
    expect(nextAt).toBeGreaterThan(second!.at + 5_000);
    await page.screenshot({ path: screenshotPath('webhook-delivery-refused'), fullPage: true });

    receiver.state.status = 200;
    const clicked = Date.now();
    await d.getByRole('button', { name: /^Redeliver/ }).click();
    await eventually(() => postsAbout(build.number).length).toBe(3);
    const third = postsAbout(build.number)[2]!;
    // Sent because of the click, well before the retry it was waiting for.
    expect(third.at).toBeGreaterThanOrEqual(clicked);
    expect(third.at).toBeLessThan(nextAt - 1_000);
    expect(third.answered).toBe(200);
    expect(third.headers['webhook-id']).toBe(id);
    expect(new Webhook(secret).verify(third.body, third.headers)).toEqual({
      data: { buildsUpdated: { number: build.number, status: 'PASSED', namespace: { path: 'team' } } },
    });
    await eventually(() => d.getByTestId('delivery-state').textContent()).toBe('delivered');
    expect(await d.getByTestId('delivery-status').textContent()).toBe('HTTP 200');
    expect(await d.getByTestId('delivery-attempts').textContent()).toBe('3 attempts');
    expect(await d.getByTestId('next-attempt').count()).toBe(0);
    expect(await d.getByTestId('delivery-error').count()).toBe(0);
    expect(await deliveries().count()).toBe(2);
    await page.screenshot({ path: screenshotPath('webhook-redelivered'), fullPage: true });
  }, 90_000);

  it('pauses and resumes, edits the subscription with the same check, and deletes after a confirmation', async () => {
    const head = page.locator('.page-head');
    await page.getByRole('button', { name: `Pause the webhook to ${receiver.url}` }).click();
    await eventually(() => head.getByTestId('webhook-state').textContent()).toBe('paused');
    expect((await teamWebhooks())[0]!.active).toBe(false);
    await page.goto(`${stack.url}/namespaces/admin/team#webhooks`);
    await eventually(() => row(receiver.url).getByTestId('webhook-state').textContent()).toBe('paused');
    await row(receiver.url)
      .getByRole('button', { name: `Resume the webhook to ${receiver.url}` })
      .click();
    await eventually(() => row(receiver.url).getByTestId('webhook-state').textContent()).toBe('active');
    expect((await teamWebhooks())[0]!.active).toBe(true);

    await page.goto(`${stack.url}${webhookPath}`);
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const edit = 'Settings of the webhook';
    expect(await editor(edit).inputValue()).toBe(DOCUMENT);
    await editor(edit).fill('subscription { buildsUpdated(status: NOPE) { number } }');
    await eventually(() => fieldError('subscription', edit).count()).toBe(1);
    expect(await submitButton('Save', edit).isDisabled()).toBe(true);
    await form(edit).getByRole('button', { name: 'Failed builds' }).click();
    const failed = await editor(edit).inputValue();
    expect(failed).toContain('buildsUpdated(status: FAILED)');
    await eventually(() => submitButton('Save', edit).isEnabled()).toBe(true);
    await submitButton('Save', edit).click();
    await eventually(() => page.getByTestId('webhook-subscription').textContent()).toBe(failed);
    expect((await teamWebhooks())[0]!.subscription).toBe(failed);

    dialogs.length = 0;
    await page.getByRole('button', { name: `Delete the webhook to ${receiver.url}` }).click();
    await page.waitForURL(/\/namespaces\/admin\/team#webhooks$/);
    expect(dialogs).toEqual([expect.stringContaining(`Delete the webhook to ${receiver.url}?`)]);
    await eventually(() => page.locator('#webhooks .empty-title').textContent()).toBe('No webhooks yet');
    expect(await teamWebhooks()).toEqual([]);
  });

  it("creates one of the viewer's own webhooks on /webhooks", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.waitForURL(/\/webhooks$/);
    await eventually(() => page.getByRole('heading', { name: 'Your webhooks' }).count()).toBe(1);
    await eventually(() => page.locator('#webhooks .empty-title').textContent()).toBe('No webhooks yet');
    await page.getByRole('button', { name: 'New webhook' }).click();
    const own = `${receiver.url}/own`;
    await form().getByLabel('Payload URL', { exact: true }).fill(own);
    await form().getByRole('button', { name: 'Failed builds' }).click();
    await eventually(() => submitButton().isEnabled()).toBe(true);
    await submitButton().click();
    await eventually(() => page.getByTestId('webhook-secret').textContent()).toMatch(/^whsec_/);
    await eventually(() => row(own).count()).toBe(1);
    const mine = await stack.gql<{
      viewer: { webhooks: { url: string; namespace: null | { path: string } }[] };
    }>('query { viewer { webhooks { url namespace { path } } } }');
    expect(mine.viewer.webhooks).toEqual([{ url: own, namespace: null }]);
    expect(await teamWebhooks()).toEqual([]);
  });

  it('shows the badge of a private namespace with its token, and Regenerate breaks the old URL', async () => {
    await page.goto(`${stack.url}/namespaces/admin/team`);
    const panel = page.locator('#badge');
    const img = panel.getByTestId('badge-image');
    await eventually(() => img.count()).toBe(1);
    const token = await badgeToken();
    expect(token).toMatch(/^kiln_badge_/);
    const url = `${stack.url}/badges/admin/team.svg?token=${token}`;
    expect(await img.getAttribute('src')).toBe(url);
    await eventually(() =>
      img.evaluate((el) => (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth),
    ).toBeGreaterThan(0);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(await res.text()).toContain('passed');
    expect((await fetch(`${stack.url}/badges/admin/team.svg`)).status).toBe(404);
    expect(await panel.getByTestId('badge-markdown').textContent()).toBe(`![build](${url})`);
    expect(await panel.getByTestId('badge-html').textContent()).toBe(`<img src="${url}" alt="build status">`);

    const cctray = (await panel.getByTestId('cctray-url').textContent())!;
    expect(cctray).toBe(`${stack.url}/cctray.xml`);
    const feed = await fetch(cctray, {
      headers: { authorization: `Basic ${Buffer.from(`monitor:${stack.token}`).toString('base64')}` },
    });
    expect(feed.status).toBe(200);
    expect(await feed.text()).toContain('name="admin/team"');
    expect(await panel.textContent()).toContain('Basic auth');
    await panel.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('namespace-badge'), fullPage: true });

    dialogs.length = 0;
    await panel.getByRole('button', { name: 'Regenerate token' }).click();
    expect(dialogs).toEqual([expect.stringContaining('new badge token for admin@team')]);
    await eventually(() => panel.getByTestId('badge-regenerated').count()).toBe(1);
    const renewed = await badgeToken();
    expect(renewed).toMatch(/^kiln_badge_/);
    expect(renewed).not.toBe(token);
    const newUrl = `${stack.url}/badges/admin/team.svg?token=${renewed}`;
    await eventually(() => panel.getByTestId('badge-markdown').textContent()).toBe(`![build](${newUrl})`);
    expect(await img.getAttribute('src')).toBe(newUrl);
    expect((await fetch(url)).status).toBe(404);
    expect((await fetch(newUrl)).status).toBe(200);
    await eventually(() =>
      img.evaluate((el) => (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth),
    ).toBeGreaterThan(0);
  });

  it('fits a 375 px wide screen: the badge snippets, the webhooks, their form and a webhook page', async () => {
    const own = await stack.gql<{ viewer: { webhooks: { id: string }[] } }>(
      'query { viewer { webhooks { id } } }',
    );
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 } });
    phone.setDefaultTimeout(10_000);
    try {
      await phone.addInitScript((token) => localStorage.setItem('kiln.token', token), stack.token);
      const p = await phone.newPage();
      const fits = async () =>
        expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
      await p.goto(`${stack.url}/namespaces/admin/team`);
      await p.getByTestId('badge-markdown').waitFor();
      await fits();
      await p.goto(`${stack.url}/webhooks`);
      await p.locator('#webhooks li.webhook-item').first().waitFor();
      await fits();
      await p.getByRole('button', { name: 'New webhook' }).click();
      await p.getByRole('form', { name: 'New webhook' }).waitFor();
      await fits();
      await p.goto(`${stack.url}/webhooks/${encodeURIComponent(own.viewer.webhooks[0]!.id)}`);
      await p.getByRole('heading', { name: 'Recent deliveries' }).waitFor();
      await fits();
      await p.screenshot({ path: screenshotPath('webhook-page-375px'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('drops the token from the snippet once the namespace is public', async () => {
    await page.getByLabel('Who may see it').selectOption('PUBLIC');
    const panel = page.locator('#badge');
    const url = `${stack.url}/badges/admin/team.svg`;
    await eventually(() => panel.getByTestId('badge-markdown').textContent()).toBe(`![build](${url})`);
    expect(await panel.getByRole('button', { name: 'Regenerate token' }).count()).toBe(0);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
  });

  it('raised no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});

/**
 * Outgoing webhooks against a local HTTP receiver: a stored subscription's results arrive in exactly
 * the shape it selects, signed so that the `standardwebhooks` library accepts them; a receiver that
 * is down gets them once it is back (same webhook-id on every attempt); two serve apps on one
 * database send each delivery once; private URLs, bad documents and namespaces outside the tree are
 * refused or never seen; a creator who lost access stops the webhook.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';
import { isPrivateAddress } from './send.ts';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands: [echo hi]
`;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver that records what it is sent; `down` makes it answer 503. */
async function startReceiver() {
  const received: Received[] = [];
  let down = false;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      if (down) {
        res.writeHead(503).end('down');
        return;
      }
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    setDown(value: boolean) {
      down = value;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe.runIf(available('postgres'))('outgoing webhooks', () => {
  let a: TestApp;
  let b: TestApp;
  let alice: string;
  let bob: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  const gql = async (t: TestApp, query: string, variables: Record<string, unknown> = {}, as = alice) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) {
    __typename ... on CreateWebhookSuccess { secret webhook { id active } }
    ... on InputError { message path } } }`;

  async function create(t: TestApp, input: Record<string, unknown>, as = alice) {
    return (await gql(t, CREATE, { input }, as)).createWebhook as {
      __typename: string;
      secret: string;
      webhook: { id: string };
      message?: string;
      path?: string;
    };
  }

  async function submit(namespace: string, as = alice) {
    const data = await gql(
      a,
      `mutation ($m: String!, $ns: String) { submitBuild(input: { manifest: $m, namespace: $ns }) {
        ... on SubmitBuildSuccess { build { id number } } } }`,
      { m: MANIFEST, ns: namespace },
      as,
    );
    return (data.submitBuild as { build: { id: string; number: number } }).build;
  }

  async function deliveries(id: string) {
    const data = await gql(
      a,
      `query ($id: ID!) { node(id: $id) { ... on Webhook { active problem deliveries(first: 100) { edges { node {
        id payload state responseStatus attempts } } } } } }`,
      { id },
    );
    const node = data.node as {
      active: boolean;
      problem: string | null;
      deliveries: {
        edges: {
          node: {
            id: string;
            payload: string;
            state: string;
            responseStatus: number | null;
            attempts: number;
          };
        }[];
      };
    };
    return { ...node, list: node.deliveries.edges.map((e) => e.node) };
  }

  beforeAll(async () => {
    receiver = await startReceiver();
    a = await startTestApp({ allowPrivateUrls: true });
    b = await startTestApp({ db: a.db, prefix: a.prefix, allowPrivateUrls: true });
    alice = await signUpAndLogIn(a, 'alice');
    bob = await signUpAndLogIn(a, 'bob');
    await gql(a, 'mutation { createNamespace(input: { path: "team" }) { __typename } }');
    await gql(a, 'mutation { createNamespace(input: { path: "other" }) { __typename } }');
    // Both apps run their jobs: one leads the subscriptions, both send.
    await a.listen();
    await b.listen();
  }, 60_000);

  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await receiver?.close();
  });

  it('refuses private URLs (without KILN_ALLOW_PRIVATE_URLS) and documents that are not one subscription', async () => {
    const strict = await startTestApp({ db: a.db, prefix: a.prefix });
    try {
      for (const url of [
        'http://127.0.0.1:9/x',
        'http://localhost:9/x',
        'http://[::1]/x',
        'http://10.1.2.3/x',
        'http://169.254.169.254/latest',
      ]) {
        const r = await create(strict, {
          namespace: 'team',
          url,
          subscription: 'subscription { buildsUpdated { number } }',
        });
        expect(r, url).toMatchObject({ __typename: 'InputError', path: 'input.url' });
        expect(r.message).toMatch(/loopback, link-local or private address/);
      }
    } finally {
      await strict.stop();
    }
    const refused = async (subscription: string) => {
      const r = await create(a, { namespace: 'team', url: receiver.url, subscription });
      expect(r.__typename).toBe('InputError');
      expect(r.path).toBe('input.subscription');
      return r.message!;
    };
    expect(await refused('query { viewer { id } }')).toMatch(/a webhook runs a subscription/);
    expect(await refused('subscription { nope }')).toMatch(/Cannot query field "nope"/);
    expect(await refused('subscription ($id: ID!) { buildUpdated(buildId: $id) { number } }')).toMatch(
      /variables/,
    );
    expect(
      await refused('subscription A { buildsUpdated { number } } subscription B { buildsUpdated { id } }'),
    ).toMatch(/exactly one operation/);
    const check = async (subscription: string) =>
      (
        await gql(a, 'query ($s: String!) { webhookSubscriptionProblem(subscription: $s) }', {
          s: subscription,
        })
      ).webhookSubscriptionProblem;
    expect(await check('subscription { buildsUpdated { number } }')).toBeNull();
    expect(await check('query { viewer { id } }')).toMatch(/a webhook runs a subscription/);
    expect(isPrivateAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isPrivateAddress('93.184.216.34')).toBe(false);
  });

  it('posts exactly the selected shape, signed as Standard Webhooks sign, once with two apps, for its namespace only', async () => {
    const created = await create(a, {
      namespace: 'team',
      url: receiver.url,
      subscription: 'subscription { buildsUpdated { number status } }',
    });
    expect(created.__typename).toBe('CreateWebhookSuccess');
    expect(created.secret).toMatch(/^whsec_/);
    // The leading app starts the subscription at its next tick (every 2 s).
    await new Promise((r) => setTimeout(r, 2_500));
    await submit('other');
    const build = await submit('team');
    const verifier = new StandardWebhook(created.secret);
    const mine = await waitFor('the QUEUED update of the build', async () => {
      const found = receiver.received.filter(
        (r) => JSON.parse(r.body).data?.buildsUpdated?.number === build.number,
      );
      return found.length > 0 ? found : null;
    });
    const first = mine[0]!;
    expect(JSON.parse(first.body)).toEqual({
      data: { buildsUpdated: { number: build.number, status: 'QUEUED' } },
    });
    // The standard's own verifier accepts it; a changed body is refused.
    const headers = {
      'webhook-id': String(first.headers['webhook-id']),
      'webhook-timestamp': String(first.headers['webhook-timestamp']),
      'webhook-signature': String(first.headers['webhook-signature']),
    };
    expect(verifier.verify(first.body, headers)).toEqual(JSON.parse(first.body));
    expect(() => verifier.verify(first.body.replace('QUEUED', 'PASSED'), headers)).toThrow();
    // Two apps send: each delivery arrives once.
    await new Promise((r) => setTimeout(r, 1_500));
    const ids = receiver.received.map((r) => String(r.headers['webhook-id']));
    expect(new Set(ids).size).toBe(ids.length);
    // Nothing of the other namespace: every build it posted is team's.
    const stored = await deliveries(created.webhook.id);
    expect(stored.list.every((d) => d.state === 'delivered' && d.responseStatus === 204)).toBe(true);
    expect(stored.list.length).toBe(receiver.received.length);
    await gql(a, 'mutation ($id: ID!) { deleteWebhook(input: { id: $id }) { __typename } }', {
      id: created.webhook.id,
    });
    receiver.received.length = 0;
  }, 30_000);

  it('keeps retrying while the receiver is down, with the same webhook-id, and delivers once it is back', async () => {
    const created = await create(a, {
      namespace: 'team',
      url: receiver.url,
      subscription: 'subscription { buildsUpdated(status: QUEUED) { number } }',
    });
    await new Promise((r) => setTimeout(r, 2_500));
    receiver.setDown(true);
    const build = await submit('team');
    const pending = await waitFor('a failed attempt', async () => {
      const d = (await deliveries(created.webhook.id)).list.find((x) => x.attempts >= 1);
      return d && d.state === 'pending' && d.responseStatus === 503 ? d : null;
    });
    receiver.setDown(false);
    // The first retry comes within 30 s (5 s after the first attempt).
    const arrived = await waitFor(
      'the delivery once the receiver is back',
      async () =>
        receiver.received.find((r) => r.headers['webhook-id'] === decodeGlobalID(pending.id).id) ?? null,
      { timeoutMs: 30_000 },
    );
    expect(JSON.parse(arrived.body)).toEqual({ data: { buildsUpdated: { number: build.number } } });
    const done = (await deliveries(created.webhook.id)).list.find((d) => d.id === pending.id)!;
    expect(done).toMatchObject({ state: 'delivered', responseStatus: 204 });
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    // Redelivery sends it again, with the same id.
    const before = receiver.received.length;
    await gql(a, 'mutation ($id: ID!) { redeliverWebhookDelivery(input: { id: $id }) { __typename } }', {
      id: pending.id,
    });
    const again = await waitFor(
      'the redelivery',
      async () =>
        receiver.received
          .slice(before)
          .find((r) => r.headers['webhook-id'] === decodeGlobalID(pending.id).id) ?? null,
    );
    expect(again.body).toBe(arrived.body);
    await gql(a, 'mutation ($id: ID!) { deleteWebhook(input: { id: $id }) { __typename } }', {
      id: created.webhook.id,
    });
  }, 60_000);

  it('stops the webhook of a creator who lost access to the namespace, and says why', async () => {
    await gql(a, 'mutation { inviteCollaborator(input: { path: "team", username: "bob" }) { __typename } }');
    const invites = await gql(a, '{ viewer { invites { id } } }', {}, bob);
    const [invite] = (invites.viewer as { invites: { id: string }[] }).invites;
    await gql(a, `mutation { acceptInvite(input: { id: "${invite!.id}" }) { __typename } }`, {}, bob);
    const created = await create(
      a,
      {
        namespace: 'alice@team',
        url: receiver.url,
        subscription: 'subscription { buildsUpdated { number } }',
      },
      bob,
    );
    expect(created.__typename).toBe('CreateWebhookSuccess');
    await new Promise((r) => setTimeout(r, 2_500));
    await gql(a, 'mutation { removeCollaborator(input: { path: "team", username: "bob" }) { __typename } }');
    await submit('team');
    const stopped = await waitFor('the webhook to stop', async () => {
      const s = await gql(a, 'query ($id: ID!) { node(id: $id) { ... on Webhook { active problem } } }', {
        id: created.webhook.id,
      });
      const node = s.node as { active: boolean; problem: string | null };
      return node.active ? null : node;
    });
    expect(stopped.problem).toBe('stopped: bob may no longer read namespace team');
  }, 30_000);
});

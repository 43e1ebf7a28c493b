import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

type RunnerItem = { name: string; queues: string[]; running: number; online: boolean; concurrency: number };

const beat = (runner: string, at: Date, running: string[] = []) => ({
  type: 'runner.heartbeat' as const,
  runner,
  queues: ['default', 'big'],
  concurrency: 2,
  running: running.map((buildId) => ({ buildId, attempt: 1 })),
  at: at.toISOString(),
});

describe.runIf(available('postgres'))('runners and runnersUpdated', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
    await t.listen(); // starts the ingester
  });

  afterAll(async () => {
    await t?.stop();
  });

  async function runners(token: string | null = t.token) {
    return t.gql<{ runners: RunnerItem[] }>(
      '{ runners { name queues concurrency running online lastSeenAt } }',
      {},
      token,
    );
  }

  it('lists the runners heard of, online when heard from within 30 seconds', async () => {
    await t.orm.em.fork().execute(
      `insert into runners (name, queues, concurrency, running, first_seen_at, last_seen_at)
         values ('gone', '["default"]', 1, '[]', now() - interval '1 hour', now() - interval '1 minute')`,
    );
    await t.broker.publish('event', [beat('alive', new Date(), ['11111111-1111-1111-1111-111111111111'])]);
    const list = await waitFor('the heartbeat of "alive" to be stored', async () => {
      const found = (await runners()).data!.runners;
      return found.some((r) => r.name === 'alive') && found;
    });
    expect(list.map((r) => [r.name, r.online, r.running, r.queues])).toEqual([
      ['alive', true, 1, ['default', 'big']],
      ['gone', false, 0, ['default']],
    ]);
  });

  it('sends the list at once, then again when a heartbeat arrives', async () => {
    const sub = collect<{ runnersUpdated: RunnerItem[] }>(
      t.ws(),
      'subscription { runnersUpdated { name online running } }',
      {},
      (items) => items.some((i) => i.runnersUpdated.some((r) => r.name === 'fresh' && r.online)),
    );
    await waitFor('the first list', () => sub.items.length > 0 || sub.errors.length > 0);
    expect(sub.items[0]!.runnersUpdated.map((r) => r.name)).not.toContain('fresh');
    await t.broker.publish('event', [beat('fresh', new Date())]);
    await sub.done;
    expect(sub.errors).toEqual([]);
    expect(sub.items.at(-1)!.runnersUpdated.find((r) => r.name === 'fresh')).toEqual({
      name: 'fresh',
      online: true,
      running: 0,
    });
  });

  it('refuses anonymous callers and tokens without runner:read, and lets a session see them', async () => {
    expect((await runners(null)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const session = await signUpAndLogIn(t, 'someone');
    expect((await runners(session)).data?.runners.length).toBeGreaterThan(0);
    const made = await t.gql<{ createToken: { token: string } }>(
      'mutation { createToken(input: { name: "builds", scopes: ["build:read"] }) { ... on CreateTokenSuccess { token } } }',
      {},
      session,
    );
    expect((await runners(made.data!.createToken.token)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

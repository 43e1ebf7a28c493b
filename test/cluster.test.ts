/**
 * The distributed deployment, for real: two `kiln serve` replicas and two `kiln runner` processes on
 * PostgreSQL and RabbitMQ. Builds are submitted to one replica and watched on the other.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { deleteTopology } from '../runner/broker/amqp/topology.ts';
import { createTestDatabase, type TestDatabase } from './testkit/db.ts';
import { isRunning } from './testkit/pids.ts';
import { type KilnProcess, spawnKiln, startServe } from './testkit/processes.ts';
import { AMQP_URL, available } from './testkit/services.ts';
import { waitFor } from './testkit/wait.ts';

const ready = available('postgres') && available('rabbitmq');

type BuildView = {
  id: string;
  number: number;
  status: string;
  attempt: number;
  tags: string[];
  reason: string | null;
  stages: { name: string; jobs: { name: string; status: string; exitCode: number | null }[] }[];
};
const BUILD_FIELDS = 'id number status attempt tags reason stages { name jobs { name status exitCode } }';

describe.runIf(ready)('two serve replicas and two runners on PostgreSQL and RabbitMQ', () => {
  const token = `kiln_${randomBytes(16).toString('hex')}`;
  const prefix = `test-${randomBytes(4).toString('hex')}`;
  let db: TestDatabase;
  let work: string;
  let serveA: KilnProcess & { url: string };
  let serveB: KilnProcess & { url: string };
  const runners: KilnProcess[] = [];
  const clients: Client[] = [];
  let env: Record<string, string>;

  function startRunner(name: string) {
    const runner = spawnKiln(name, ['runner'], {
      ...env,
      KILN_RUNNER_NAME: name,
      KILN_RUNNER_CONCURRENCY: '1',
    });
    runners.push(runner);
    return runner;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-cluster-'));
    env = {
      KILN_DATABASE_URL: db.url,
      KILN_AMQP_URL: AMQP_URL,
      KILN_BROKER_PREFIX: prefix,
      KILN_BOOTSTRAP_TOKEN: token,
      KILN_DATA_DIR: path.join(work, 'data'),
      KILN_DELIVERY_LIMIT: '4',
    };
    serveA = await startServe('serve-a', env);
    serveB = await startServe('serve-b', env);
    const [r1, r2] = [startRunner('runner-1'), startRunner('runner-2')];
    await Promise.all([r1, r2].map((r) => r.waitFor((l) => l.msg === 'runner started')));
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) await c.dispose();
    await Promise.all([...runners, serveA, serveB].filter(Boolean).map((p) => p.stop(5_000)));
    await deleteTopology(AMQP_URL, prefix, ['default']).catch(() => {});
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function gql<T>(base: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  }

  async function submit(manifest: string): Promise<BuildView> {
    const data = await gql<{ submitBuild: { __typename: string; build?: BuildView; problems?: unknown } }>(
      serveA.url,
      `mutation ($m: String!) { submitBuild(input: { manifest: $m }) {
        __typename ... on SubmitBuildSuccess { build { ${BUILD_FIELDS} } } ... on ManifestError { problems { path message } } } }`,
      { m: manifest },
    );
    if (!data.submitBuild.build) throw new Error(`submit refused: ${JSON.stringify(data.submitBuild)}`);
    return data.submitBuild.build;
  }

  function ws(base: string): Client {
    const client = createClient({
      url: `${base.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
    });
    clients.push(client);
    return client;
  }

  /** The log through a buildLog subscription on `base`, until it completes (or `stopWhen`). */
  function watchLog(
    base: string,
    buildId: string,
    after: string | null = null,
    stopWhen?: (lines: string[]) => boolean,
  ) {
    const chunks: { cursor: string; lines: string[] }[] = [];
    const lines: string[] = [];
    let unsubscribe = () => {};
    const done = new Promise<void>((resolve, reject) => {
      unsubscribe = ws(base).subscribe<{ buildLog: { cursor: string; lines: string[] } }>(
        {
          query:
            'subscription ($id: ID!, $after: String) { buildLog(buildId: $id, after: $after) { cursor lines } }',
          variables: { id: buildId, after },
        },
        {
          next: (v) => {
            if (v.errors) reject(new Error(JSON.stringify(v.errors)));
            const c = v.data!.buildLog;
            chunks.push(c);
            lines.push(...c.lines);
            if (stopWhen?.(lines)) {
              unsubscribe();
              resolve();
            }
          },
          error: reject,
          complete: resolve,
        },
      );
    });
    return { chunks, lines, done };
  }

  function waitForFinal(id: string, timeoutMs = 60_000): Promise<BuildView> {
    let status = '';
    return waitFor(
      () => `build ${id} to finish (it is still ${status})`,
      async () => {
        const { build } = await gql<{ build: BuildView }>(
          serveB.url,
          `query ($id: ID!) { build(id: $id) { ${BUILD_FIELDS} } }`,
          { id },
        );
        status = build.status;
        return !['QUEUED', 'RUNNING'].includes(build.status) && build;
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  const jobStatuses = (b: BuildView) => b.stages.flatMap((s) => s.jobs.map((j) => `${j.name}:${j.status}`));

  it('runs a passing build and streams its whole log to a subscriber on the other replica', async () => {
    const build = await submit(`driver: {type: os}
stages: [make, check]
jobs:
  - stage: make
    name: write
    commands: ['for i in $(seq 1 500); do echo "line $i"; done', 'echo shared > file.txt']
  - stage: check
    name: read
    commands: ['cat file.txt']
`);
    const log = watchLog(serveB.url, build.id);
    await log.done;
    const final = await waitForFinal(build.id);
    expect(final.status).toBe('PASSED');
    expect(jobStatuses(final)).toEqual(['write:PASSED', 'read:PASSED']);
    const numbered = log.lines.filter((l) => l.startsWith('line '));
    expect(numbered).toEqual(Array.from({ length: 500 }, (_, i) => `line ${i + 1}`));
    expect(log.lines).toContain('shared');
  });

  it('fails a build at the first failing job and skips the rest', async () => {
    const build = await submit(`driver: {type: os}
stages: [one, two]
jobs:
  - {stage: one, name: ok, commands: ['true']}
  - {stage: one, name: broken, commands: ['echo about to fail', 'exit 3', 'echo never']}
  - {stage: two, name: later, commands: ['echo never either']}
`);
    const final = await waitForFinal(build.id);
    expect(final.status).toBe('FAILED');
    expect(jobStatuses(final)).toEqual(['ok:PASSED', 'broken:FAILED', 'later:SKIPPED']);
    expect(final.stages[0]!.jobs[1]!.exitCode).toBe(3);
  });

  it('passes with failures when the failing stage is allowed to fail', async () => {
    const build = await submit(`driver: {type: os}
stages: [lint, build]
allow_failures: [lint]
jobs:
  - {stage: lint, name: lint, commands: ['exit 1']}
  - {stage: build, name: build, commands: ['echo built']}
`);
    const final = await waitForFinal(build.id);
    expect(final.status).toBe('PASSED_WITH_FAILURES');
    expect(jobStatuses(final)).toEqual(['lint:FAILED', 'build:PASSED']);
  });

  it('kills a running build through the other replica, process tree and all', async () => {
    const pidFile = path.join(work, `kill-${randomBytes(3).toString('hex')}.pid`);
    const build = await submit(`driver: {type: os}
stages: [s]
jobs:
  - {stage: s, name: sleeper, commands: ['sleep 300 & echo $! > ${pidFile}; echo started; wait']}
  - {stage: s, name: after, commands: ['echo never']}
`);
    const log = watchLog(serveB.url, build.id, null, (lines) => lines.includes('started'));
    await log.done;
    const killed = await gql<{ killBuild: { build: { status: string } } }>(
      serveB.url,
      'mutation ($id: ID!) { killBuild(input: { buildId: $id }) { ... on KillBuildSuccess { build { status } } } }',
      { id: build.id },
    );
    expect(['RUNNING', 'KILLED']).toContain(killed.killBuild.build.status);
    const final = await waitForFinal(build.id, 15_000);
    expect(final.status).toBe('KILLED');
    expect(jobStatuses(final)).toEqual(['sleeper:KILLED', 'after:SKIPPED']);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(isRunning(pid)).toBe(false);
  });

  it('times a build out when it runs past its timeout', async () => {
    const build = await submit(`driver: {type: os}
timeout: 2s
stages: [s]
jobs:
  - {stage: s, name: slow, commands: ['sleep 60']}
`);
    const final = await waitForFinal(build.id, 30_000);
    expect(final.status).toBe('TIMED_OUT');
    expect(jobStatuses(final)).toEqual(['slow:TIMED_OUT']);
  });

  it('resumes a log from a cursor on the other replica with no gap and no repeat', async () => {
    const build = await submit(`driver: {type: os}
stages: [s]
jobs:
  - {stage: s, name: talk, commands: ['for i in $(seq 1 30); do echo "n $i"; sleep 0.05; done']}
`);
    const first = watchLog(serveA.url, build.id, null, (lines) => lines.some((l) => l === 'n 10'));
    await first.done;
    const second = watchLog(serveB.url, build.id, first.chunks.at(-1)!.cursor);
    await second.done;
    const all = [...first.lines, ...second.lines].filter((l) => l.startsWith('n '));
    expect(all).toEqual(Array.from({ length: 30 }, (_, i) => `n ${i + 1}`));
  });

  it('finishes a build on the other runner when its runner is SIGKILLed mid-build', async () => {
    const marker = path.join(work, `attempt-${randomBytes(3).toString('hex')}`);
    // The first attempt leaves a marker and waits; the second finds it and finishes.
    const build = await submit(`driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: once
    commands:
      - 'if [ -e ${marker} ]; then echo second attempt; else echo $$ > ${marker}; echo first attempt; sleep 300; fi'
`);
    const takenBy = await Promise.race(
      runners.map((r) =>
        r.waitFor((l) => l.msg === 'build taken' && l.number === build.number, 30_000).then(() => r),
      ),
    );
    const orphan = await waitFor('the first attempt to write its pid', () =>
      existsSync(marker) ? readFileSync(marker, 'utf8').trim() : '',
    );
    takenBy.child.kill('SIGKILL');
    await takenBy.exited;
    // A SIGKILLed runner cannot stop its job: end the first attempt's process group here.
    try {
      const stat = readFileSync(`/proc/${orphan}/stat`, 'utf8');
      const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      process.kill(-group, 'SIGKILL');
    } catch {}
    const final = await waitForFinal(build.id, 60_000);
    expect(final.status).toBe('PASSED');
    expect(final.attempt).toBe(2);
    expect(final.tags).toContain('orphaned');
    // Keep two runners for the tests that follow.
    startRunner('runner-3');
  });
});

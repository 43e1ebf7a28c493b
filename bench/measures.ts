/**
 * The measurements, each against a started deployment through its public API (GraphQL over HTTP
 * and graphql-ws), timed from this process.
 */
import { decodeGlobalID } from '@pothos/plugin-relay';
import type { KilnClient } from './client.ts';
import type { Deployment } from './deployments.ts';
import { nsTextToMs, sleep, wallMs, within } from './stats.ts';

const manifest = (command: string) => `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: bench
    commands:
      - '${command.replaceAll("'", "''")}'
`;

export const ECHO_MANIFEST = manifest('echo hi');

/** Prints its own CLOCK_REALTIME timestamp (ns) every 20 ms, `count` times. */
export const ticksScript = (count: number) =>
  `i=0; while [ $i -lt ${count} ]; do date +%s%N; sleep 0.02; i=$((i+1)); done`;

const isTimestamp = (line: string) => /^\d{19}$/.test(line);

/**
 * (a) From just before sending submitBuild to the first chunk of its buildLog, subscribed right
 * after the submit returned. Sequential; each build is watched to its end before the next.
 */
export async function dispatchLatency(
  client: KilnClient,
  count: number,
  warmup = 5,
  manifestText = ECHO_MANIFEST,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = performance.now();
    const id = await client.submit(manifestText);
    let firstAt = 0;
    let first!: () => void;
    const gotFirst = new Promise<void>((resolve) => {
      first = resolve;
    });
    const watch = client.watchLog(id, () => {
      if (firstAt === 0) {
        firstAt = performance.now();
        first();
      }
    });
    await within(Promise.race([gotFirst, watch.done]), 30_000, `first log line of build ${id}`);
    await within(watch.done, 30_000, `end of the log of build ${id}`);
    if (firstAt === 0) throw new Error(`build ${id} ended without a log line`);
    if (i >= warmup) samples.push(firstAt - t0);
  }
  return samples;
}

/** (b) Receive time − print time (ms) of every timestamp line a job prints, seen by a subscriber. */
export async function logLatency(client: KilnClient, lines: number): Promise<number[]> {
  const id = await client.submit(manifest(ticksScript(lines)));
  const samples: number[] = [];
  const watch = client.watchLog(id, (chunk) => {
    const now = wallMs();
    for (const line of chunk) if (isTimestamp(line)) samples.push(now - nsTextToMs(line));
  });
  await within(watch.done, 120_000, 'log latency build');
  if (samples.length !== lines) throw new Error(`log latency: got ${samples.length} of ${lines} lines`);
  return samples;
}

export interface ThroughputResult {
  /** Submit → every line received and the build PASSED. */
  seconds: number;
  lines: number;
  /** Runner's `build finished` → every line in log_chunks (0 when already stored). */
  storeLagMs: number;
  /** Submit → every line in log_chunks. */
  storedSeconds: number;
  rows: number;
}

/** (c) A job printing `count` lines (`seq 1 count`), received in full by a subscriber, then stored. */
export async function logThroughput(
  client: KilnClient,
  deployment: Deployment,
  count: number,
): Promise<ThroughputResult> {
  const submittedAt = Date.now();
  const t0 = performance.now();
  const id = await client.submit(manifest(`seq 1 ${count}`));
  let received = 0;
  let numbered = 0;
  let last = '';
  const watch = client.watchLog(id, (chunk) => {
    received += chunk.length;
    for (const line of chunk) if (!line.startsWith('$ ')) numbered++;
    last = chunk.at(-1) ?? last;
  });
  await within(watch.done, 300_000, 'log throughput build');
  const seconds = (performance.now() - t0) / 1000;
  const { build } = await client.gql<{ build: { status: string } }>(
    'query ($id: ID!) { build(id: $id) { status } }',
    { id },
  );
  if (build.status !== 'PASSED') throw new Error(`log throughput build ended ${build.status}`);
  if (numbered !== count || last !== String(count)) {
    throw new Error(`log throughput: received ${numbered} lines, the last "${last}"`);
  }
  const localId = decodeGlobalID(id).id;
  const finished = await deployment.runner.waitFor(
    (l) => l.msg === 'build finished' && l.buildId === localId,
    30_000,
  );
  const finishedAt = Number(finished.time);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const stored = await deployment.storedLog(localId);
    if (stored.lines >= received) {
      const storedAt = Date.now();
      if (stored.lines !== received) throw new Error(`stored ${stored.lines} lines, received ${received}`);
      return {
        seconds,
        lines: count,
        storeLagMs: Math.max(0, storedAt - finishedAt),
        storedSeconds: (storedAt - submittedAt) / 1000,
        rows: stored.rows,
      };
    }
    if (Date.now() > deadline) throw new Error(`only ${stored.lines} of ${received} lines stored`);
    await sleep(20);
  }
}

export interface ConcurrentResult {
  seconds: number;
  latencies: number[];
}

/** `total` calls of `call` from `clients` concurrent loops; wall time and each call's latency (ms). */
export async function concurrently(
  total: number,
  clients: number,
  call: () => Promise<unknown>,
): Promise<ConcurrentResult> {
  let started = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (started < total) {
        started++;
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, latencies };
}

/** (d) `total` trivial submits from `clients` concurrent HTTP clients. */
export function submitThroughput(client: KilnClient, total: number, clients: number) {
  return concurrently(total, clients, () => client.submit(ECHO_MANIFEST));
}

/** (d) baseline: the same number of `{ __typename }` queries, the same way. */
export function typenameThroughput(client: KilnClient, total: number, clients: number) {
  return concurrently(total, clients, () => client.gql('{ __typename }'));
}

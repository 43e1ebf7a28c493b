/**
 * The load measures, each against a started deployment and next to a raw baseline from the same run
 * (load-baselines.ts):
 *
 * - (g) many `buildLog` subscribers on one build printing numbered timestamp lines;
 * - (h) a deep queue of small builds drained by several runners started after it filled
 *   (distributed only);
 * - (i) submits at a fixed rate (open loop) for a while.
 *
 * Each waits until the deployment has no queued or running build first, so what an earlier measure
 * left behind does not run beside it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { KilnProcess } from '../test/testkit/processes.ts';
import type { KilnClient } from './client.ts';
import { type Deployment, LOAD_QUEUE, rssMiB } from './deployments.ts';
import {
  type DrainResult,
  drainBaseline,
  type FanoutResult,
  fanoutBaseline,
  numberedTicksScript,
  openMany,
  sumTallies,
  Tally,
  watchRss,
} from './load-baselines.ts';
import { concurrently, ECHO_MANIFEST } from './measures.ts';
import { fmt, percentile, sleep, within } from './stats.ts';

/** The README's paragraph on the load measures, below the other baselines. */
export const LOAD_NOTES = `Load: (g) 1,000 graphql-ws connections with one \`buildLog\` subscription each (as many
people each watching the build in a console tab of their own: a socket and a credentials check each,
the worst case for serve), on one build that, once every subscription has had its first chunk, prints
500 numbered \`date +%s%N\` lines 20 ms apart; line latency is receive − print over every line of
every subscriber, and a subscriber that misses or repeats a line fails the run. Baseline: as many plain
\`ws\` connections to a trivial \`ws\` server (bare node, a process of its own:
bench/ws-fanout-server.mjs) that runs the same script and sends each chunk of its output to every
connection as a graphql-ws \`next\`; its RSS beside serve's, before, at the peak and 15 s after
the connections closed. (h) 10,000 \`echo hi\` builds submitted (10 clients) to a queue no runner takes,
then 4 \`kiln runner\` processes started on it, \`KILN_RUNNER_CONCURRENCY=2\` each; drain = builds
÷ (first startedAt → last finishedAt); queue → start is the API's createdAt → startedAt, so it
includes filling the queue and starting the runners. Baseline: 10,000 messages published with
confirms to a RabbitMQ quorum queue, then 4 amqplib consumers (a connection each, prefetch 2, in the
bench process) spawning \`/bin/sh -c 'echo hi'\` per message and acking when it exits; queue →
start is publish → delivery. Distributed only: the one runner of \`kiln start\` lives in its process,
on an in-process broker no other runner reaches. (i) 100 \`submitBuild\`s a second for 60 s, each
sent when due whether or not the earlier ones have answered (open loop) and timed from when it was
due, while the runner runs the builds; an error is a call that failed, or had no answer a minute
after the last was due. Baseline: the same schedule of \`{ __typename }\` queries to the same server
just before, its RSS figures serve's during that run.`;

export interface LoadSizes {
  /** (g) subscribers, one graphql-ws connection each, and the lines the build prints. */
  subscribers: number;
  lines: number;
  /** (h) builds queued before the runners start. */
  queued: number;
  /** (i) submits a second, for this many seconds. */
  rate: number;
  rateSeconds: number;
}

export const LOAD_SIZES: { quick: LoadSizes; full: LoadSizes } = {
  quick: { subscribers: 100, lines: 200, queued: 1_000, rate: 100, rateSeconds: 15 },
  full: { subscribers: 1_000, lines: 500, queued: 10_000, rate: 100, rateSeconds: 60 },
};

/** (h): runners started after the queue filled, and the builds each runs at once. */
const DRAIN_RUNNERS = 4;
const DRAIN_CONCURRENCY = 2;
/**
 * (g): how long after the subscribers left their server's RSS is read again: serve's idle collector
 * (api/jobs/idle-collector.ts) looks every 5 s at the 5 s before, so it has had two looks by then.
 */
const SETTLE_MS = 15_000;

export interface LoadContext {
  client: KilnClient;
  deployment: Deployment;
  sizes: LoadSizes;
  add(row: { measure: string; figure: number; baseline: number; unit: string }): void;
  log(message: string): void;
  /** A wrong result (a lost line, a failed build): printed loudly, and the run exits 1. */
  fail(message: string): void;
}

const loadManifest = (commands: string[], queue?: string) =>
  [
    'driver: {type: os}',
    ...(queue ? [`queue: ${queue}`] : []),
    'stages: [s]',
    'jobs:',
    '  - stage: s',
    '    name: bench',
    '    commands:',
    ...commands.map((c) => `      - '${c.replaceAll("'", "''")}'`),
  ].join('\n');

const IDLE = `{ queued: builds(status: QUEUED, first: 1) { edges { node { id } } }
  running: builds(status: RUNNING, first: 1) { edges { node { id } } } }`;

/** Waits until no build is queued or running (what earlier measures submitted has run). */
async function waitIdle(ctx: LoadContext, what: string): Promise<void> {
  const t0 = performance.now();
  type Edges = { edges: unknown[] };
  for (;;) {
    const { queued, running } = await ctx.client.gql<{ queued: Edges; running: Edges }>(IDLE);
    if (queued.edges.length === 0 && running.edges.length === 0) break;
    if (performance.now() - t0 > 600_000) throw new Error(`${what}: builds still queued after 10 minutes`);
    await sleep(500);
  }
  const waited = performance.now() - t0;
  if (waited > 1_000) ctx.log(`${what}: waited ${fmt(waited / 1000)} s for earlier builds to finish`);
}

const api = (ctx: LoadContext) => ctx.deployment.processes[0]!;

function connectSubscriber(url: string, token: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client: Client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: false,
      retryAttempts: 0,
      on: { connected: () => resolve(client) },
      onNonLazyError: reject,
    });
  });
}

/** A subscription's error as words: an Error's message, a socket's close code and reason, or the JSON. */
function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  const close = error as { code?: unknown; reason?: unknown };
  if (typeof close.code === 'number')
    return `the socket closed: ${close.code} ${String(close.reason ?? '')}`.trim();
  return JSON.stringify(error);
}

const BUILD_LOG = 'subscription ($id: ID!) { buildLog(buildId: $id) { lines } }';

/**
 * (g) Kiln: `subscribers` graphql-ws connections, one `buildLog` subscription each, on one build
 * that waits for a gate file (so that every subscription is live, its first `$` line received,
 * before the first numbered line) and then prints the numbered ticks.
 */
async function fanoutKiln(ctx: LoadContext): Promise<FanoutResult> {
  const { subscribers, lines } = ctx.sizes;
  const gateDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-gate-'));
  const gate = path.join(gateDir, 'go');
  const beforeRss = await rssMiB(api(ctx).pid);
  const clients = await openMany(subscribers, () =>
    connectSubscriber(ctx.deployment.url, ctx.deployment.token),
  );
  try {
    const rss = watchRss(api(ctx).pid);
    const id = await ctx.client.submit(
      loadManifest([`while [ ! -e ${gate} ]; do sleep 0.01; done`, numberedTicksScript(lines)]),
    );
    const tallies = clients.map(() => new Tally(lines));
    const latencies: number[] = [];
    const printed: number[] = [];
    const errors: string[] = [];
    const firsts: Promise<void>[] = [];
    const done = clients.map(
      (client, i) =>
        new Promise<void>((resolve) => {
          let first!: () => void;
          firsts.push(
            new Promise<void>((r) => {
              first = r;
            }),
          );
          client.subscribe<{ buildLog: { lines: string[] } }>(
            { query: BUILD_LOG, variables: { id } },
            {
              next: (value) => {
                if (value.data) tallies[i]!.take(value.data.buildLog.lines, latencies, printed);
                else errors.push(JSON.stringify(value.errors));
                first();
              },
              error: (error) => {
                errors.push(describeError(error));
                first();
                resolve();
              },
              complete: () => {
                first();
                resolve();
              },
            },
          );
        }),
    );
    await within(Promise.all(firsts), 60_000, `(g) a first chunk on each of ${subscribers} subscriptions`);
    await writeFile(gate, '');
    await within(
      Promise.all(done),
      120_000 + lines * 100,
      `(g) every subscription of build ${id} to complete`,
    );
    const stored = await ctx.deployment.storedLog(decodeGlobalID(id).id);
    ctx.log(`(g) the build's log: ${stored.lines} lines in ${stored.rows} chunks`);
    await Promise.all(clients.map((c) => c.dispose()));
    clients.length = 0;
    const { peak } = await rss.stop();
    await sleep(SETTLE_MS);
    return {
      ...sumTallies(tallies, latencies, printed, errors),
      beforeRss,
      peakRss: peak,
      afterRss: await rssMiB(api(ctx).pid),
    };
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await rm(gateDir, { recursive: true, force: true });
  }
}

function checkFanout(ctx: LoadContext, who: string, r: FanoutResult): void {
  if (r.incomplete === 0 && r.repeated === 0 && r.errors.length === 0) return;
  ctx.fail(
    `(g) ${who}: ${r.incomplete} of ${ctx.sizes.subscribers} subscribers lacked lines (${r.missing} lines ` +
      `missing in all), ${r.repeated} lines repeated, ${r.errors.length} subscriptions failed` +
      (r.errors.length > 0 ? ` (first: ${r.errors[0]})` : ''),
  );
}

export async function measureSubscribers(ctx: LoadContext): Promise<void> {
  const { subscribers, lines } = ctx.sizes;
  await waitIdle(ctx, '(g)');
  const role = api(ctx).role;
  ctx.log(`(g) ${subscribers} subscribers on one build printing ${lines} lines`);
  const kiln = await fanoutKiln(ctx);
  const raw = await fanoutBaseline(subscribers, lines, SETTLE_MS);
  checkFanout(ctx, 'Kiln', kiln);
  checkFanout(ctx, 'raw baseline', raw);
  const n = subscribers.toLocaleString('en-US');
  ctx.add({
    measure: `(g) ${n} subscribers: line latency p99`,
    figure: percentile(kiln.latencies, 0.99),
    baseline: percentile(raw.latencies, 0.99),
    unit: 'ms',
  });
  ctx.add({
    measure: '(g) last line printed → every subscriber has every line',
    figure: kiln.lastLineToAllMs,
    baseline: raw.lastLineToAllMs,
    unit: 'ms',
  });
  ctx.add({
    measure: '(g) lines lost or repeated (all subscribers)',
    figure: kiln.missing + kiln.repeated,
    baseline: raw.missing + raw.repeated,
    unit: 'lines',
  });
  ctx.add({
    measure: `(g) RSS before they came, ${role}`,
    figure: kiln.beforeRss,
    baseline: raw.beforeRss,
    unit: 'MiB',
  });
  ctx.add({ measure: `(g) RSS peak, ${role}`, figure: kiln.peakRss, baseline: raw.peakRss, unit: 'MiB' });
  ctx.add({
    measure: `(g) RSS ${SETTLE_MS / 1000} s after they left, ${role}`,
    figure: kiln.afterRss,
    baseline: raw.afterRss,
    unit: 'MiB',
  });
}

interface BuildTimes {
  status: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Builds per query when reading them back by id (the schema allows 200 fields side by side). */
const BY_ID_BATCH = 30;

/**
 * The builds `ids`, read one by one (aliases, BY_ID_BATCH a query). Not through `builds(tag:)`: its
 * pages skip a build created in the same millisecond as the last one of the page before (the cursor
 * keeps milliseconds, created_at microseconds).
 */
async function buildsById(client: KilnClient, ids: string[]): Promise<BuildTimes[]> {
  const all: BuildTimes[] = [];
  for (let i = 0; i < ids.length; i += BY_ID_BATCH) {
    const batch = ids.slice(i, i + BY_ID_BATCH);
    const fields = batch.map((_, j) => `b${j}: build(id: $b${j}) { status createdAt startedAt finishedAt }`);
    const query = `query (${batch.map((_, j) => `$b${j}: ID!`).join(', ')}) { ${fields.join(' ')} }`;
    const data = await client.gql<Record<string, BuildTimes | null>>(
      query,
      Object.fromEntries(batch.map((id, j) => [`b${j}`, id])),
    );
    for (const [j, id] of batch.entries()) {
      const build = data[`b${j}`];
      if (!build) throw new Error(`build ${id} is gone`);
      all.push(build);
    }
  }
  return all;
}

const finishedCount = (runners: KilnProcess[]) =>
  runners.reduce(
    (sum, r) => sum + r.lines.filter((l) => typeof l === 'object' && l.msg === 'build finished').length,
    0,
  );

/** (h) Kiln: `queued` builds on a queue no runner takes, then DRAIN_RUNNERS runners that take it. */
async function drainKiln(
  ctx: LoadContext,
  addRunner: NonNullable<Deployment['addRunner']>,
): Promise<DrainResult> {
  const { queued } = ctx.sizes;
  const manifest = loadManifest(['echo hi'], LOAD_QUEUE);
  const ids: string[] = [];
  const fill = await concurrently(queued, 10, async () => ids.push(await ctx.client.submit(manifest)));
  ctx.log(`(h) ${queued} builds queued in ${fmt(fill.seconds)} s; starting ${DRAIN_RUNNERS} runners`);
  const spawnedAt = performance.now();
  const runners = Array.from({ length: DRAIN_RUNNERS }, (_, i) =>
    addRunner(`bench-load-${i + 1}`, {
      KILN_RUNNER_QUEUES: LOAD_QUEUE,
      KILN_RUNNER_CONCURRENCY: String(DRAIN_CONCURRENCY),
    }),
  );
  try {
    await Promise.all(runners.map((r) => r.waitFor((l) => l.msg === 'runner started', 60_000)));
    ctx.log(`(h) runners up ${fmt((performance.now() - spawnedAt) / 1000)} s after they were spawned`);
    const deadline = performance.now() + 120_000 + queued * 200;
    while (finishedCount(runners) < queued) {
      if (performance.now() > deadline)
        throw new Error(`(h) only ${finishedCount(runners)} of ${queued} builds finished`);
      await sleep(500);
    }
  } finally {
    await Promise.all(runners.map((r) => r.stop(5_000)));
  }
  let builds = await buildsById(ctx.client, ids);
  for (let i = 0; i < 20 && builds.some((b) => !b.finishedAt); i++) {
    // The runners have said `build finished`; the api stores it a moment later.
    await sleep(500);
    builds = await buildsById(ctx.client, ids);
  }
  const notPassed = builds.filter((b) => b.status !== 'PASSED');
  if (notPassed.length > 0) {
    ctx.fail(
      `(h) ${notPassed.length} of ${queued} builds did not pass ` +
        `(${[...new Set(notPassed.map((b) => b.status))].join(', ')})`,
    );
  }
  const started = builds.filter((b) => b.startedAt && b.finishedAt);
  const ms = (t: string | null) => Date.parse(t!);
  const firstStart = Math.min(...started.map((b) => ms(b.startedAt)));
  const lastFinish = Math.max(...started.map((b) => ms(b.finishedAt)));
  return {
    queueToStart: started.map((b) => ms(b.startedAt) - ms(b.createdAt)),
    drainSeconds: (lastFinish - firstStart) / 1000,
    fillSeconds: fill.seconds,
  };
}

export async function measureDrain(ctx: LoadContext): Promise<void> {
  const { addRunner } = ctx.deployment;
  if (!addRunner) {
    ctx.log(
      '(h) skipped: the one runner of `kiln start` is in its process, on a broker no other runner reaches',
    );
    return;
  }
  const { queued } = ctx.sizes;
  await waitIdle(ctx, '(h)');
  const kiln = await drainKiln(ctx, addRunner);
  const raw = await drainBaseline(queued, DRAIN_RUNNERS, DRAIN_CONCURRENCY);
  ctx.log(
    `(h) filling: Kiln ${fmt(queued / kiln.fillSeconds)} submits/s, raw ${fmt(queued / raw.fillSeconds)} publishes/s`,
  );
  const n = queued.toLocaleString('en-US');
  ctx.add({
    measure: `(h) ${n} queued builds, ${DRAIN_RUNNERS} runners × ${DRAIN_CONCURRENCY}: drain (first start → last end)`,
    figure: queued / kiln.drainSeconds,
    baseline: queued / raw.drainSeconds,
    unit: 'builds/s',
  });
  ctx.add({
    measure: '(h) queue → start p50 (createdAt → startedAt)',
    figure: percentile(kiln.queueToStart, 0.5),
    baseline: percentile(raw.queueToStart, 0.5),
    unit: 'ms',
  });
  ctx.add({
    measure: '(h) queue → start p99',
    figure: percentile(kiln.queueToStart, 0.99),
    baseline: percentile(raw.queueToStart, 0.99),
    unit: 'ms',
  });
}

interface OpenLoopResult {
  /** Scheduled send → answer (ms), of the calls that succeeded. */
  latencies: number[];
  errors: number;
  firstError: string | null;
  /** RSS (MiB) of the api process: the most seen, and once every call has settled. */
  peakRss: number;
  endRss: number;
}

/**
 * `rate` calls a second for `seconds`, each sent at its time whether or not the earlier ones have
 * answered (open loop), timed from when it was due, so a server that falls behind shows in the
 * latencies instead of slowing the load down. A call unanswered 60 s after the last was due is an error.
 */
async function openLoop(ctx: LoadContext, call: () => Promise<unknown>): Promise<OpenLoopResult> {
  const { rate, rateSeconds } = ctx.sizes;
  const total = rate * rateSeconds;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const failed = (error: unknown) => {
    errors++;
    firstError ??= error instanceof Error ? error.message : String(error);
  };
  const rss = watchRss(api(ctx).pid);
  const calls: Promise<void>[] = [];
  const t0 = performance.now();
  for (let k = 0; k < total; ) {
    const now = performance.now();
    for (; k < total && t0 + (k * 1000) / rate <= now; k++) {
      const due = t0 + (k * 1000) / rate;
      calls.push(call().then(() => void latencies.push(performance.now() - due), failed));
    }
    if (k < total) await sleep(Math.max(0, t0 + (k * 1000) / rate - performance.now()));
  }
  const settled = await Promise.race([Promise.all(calls).then(() => true), sleep(60_000).then(() => false)]);
  if (!settled) {
    const unanswered = total - latencies.length - errors;
    errors += unanswered;
    firstError ??= `${unanswered} calls unanswered 60 s after the last was due`;
  }
  const { peak, last } = await rss.stop();
  return { latencies, errors, firstError, peakRss: peak, endRss: last };
}

export async function measureOpenLoop(ctx: LoadContext): Promise<void> {
  const { rate, rateSeconds } = ctx.sizes;
  await waitIdle(ctx, '(i)');
  ctx.log(`(i) ${rate} requests/s for ${rateSeconds} s: { __typename }, then submitBuild`);
  const raw = await openLoop(ctx, () => ctx.client.gql('{ __typename }'));
  const kiln = await openLoop(ctx, () => ctx.client.submit(ECHO_MANIFEST));
  for (const [who, r] of [
    ['Kiln', kiln],
    ['baseline', raw],
  ] as const) {
    ctx.log(
      `(i) ${who}: ${r.latencies.length} answered, ${r.errors} errors${r.firstError ? ` (first: ${r.firstError})` : ''}, ` +
        `max ${fmt(Math.max(...r.latencies))} ms`,
    );
  }
  const role = api(ctx).role;
  ctx.add({
    measure: `(i) ${rate} submits/s for ${rateSeconds} s (open loop): p99`,
    figure: percentile(kiln.latencies, 0.99),
    baseline: percentile(raw.latencies, 0.99),
    unit: 'ms',
  });
  ctx.add({ measure: '(i) errors', figure: kiln.errors, baseline: raw.errors, unit: 'requests' });
  ctx.add({ measure: `(i) RSS peak, ${role}`, figure: kiln.peakRss, baseline: raw.peakRss, unit: 'MiB' });
  ctx.add({ measure: `(i) RSS at the end, ${role}`, figure: kiln.endRss, baseline: raw.endRss, unit: 'MiB' });
}

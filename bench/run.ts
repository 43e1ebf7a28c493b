/**
 * `npm run bench`: dispatch latency (os and docker drivers), log latency, log throughput, submit
 * throughput, memory, and load (many subscribers, a deep queue, a fixed submit rate) of a real Kiln, once distributed (PostgreSQL + RabbitMQ, `kiln serve` + `kiln runner`) and once
 * embedded (`kiln start`), each figure next to a raw baseline measured in the same run.
 *
 *   npm run bench [-- --mode=distributed|embedded] [--only=a,b,c,d,e,f,g,h,i,j,k] [--quick] [--cpu-prof=DIR] [--readme]
 *
 * --only, --quick (smaller counts) and --cpu-prof (every Kiln process writes a .cpuprofile into DIR
 * when it stops) are for working on one figure, not for publishing figures; --readme writes the
 * table into README.md between the bench markers. Needs PostgreSQL and RabbitMQ (see README,
 * Development).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureTestImage, probe, TEST_IMAGE } from '../test/testkit/services.ts';
import {
  bareNodeRssMiB,
  dispatchBaseline,
  dockerRunBaseline,
  logLatencyBaseline,
  rawInsertSeconds,
} from './baselines.ts';
import { connectKiln, type KilnClient } from './client.ts';
import {
  type Cleanups,
  type Deployment,
  type Mode,
  rssMiB,
  startDistributed,
  startEmbedded,
} from './deployments.ts';
import { LOAD_NOTES, LOAD_SIZES, measureDrain, measureOpenLoop, measureSubscribers } from './load.ts';
import {
  dispatchLatency,
  logLatency,
  logThroughput,
  submitThroughput,
  ticksScript,
  typenameThroughput,
} from './measures.ts';
import { measureSchedules, SCHEDULES_NOTES } from './schedules.ts';
import { fmt, percentile, ratio } from './stats.ts';
import { measureWebhook, WEBHOOK_NOTES } from './webhook.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeReadme = args.includes('--readme');
const modeArg = args.find((a) => a.startsWith('--mode='))?.slice('--mode='.length);
const profileDir = args.find((a) => a.startsWith('--cpu-prof='))?.slice('--cpu-prof='.length);
const extraEnv: Record<string, string> = profileDir
  ? {
      NODE_OPTIONS: `--import=${path.resolve(import.meta.dirname, 'cpu-profile.mjs')}`,
      KILN_BENCH_PROFILE_DIR: path.resolve(profileDir),
    }
  : {};
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const only = new Set(onlyArg ? onlyArg.split(',') : ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']);
const modes: Mode[] =
  modeArg === 'distributed' || modeArg === 'embedded' ? [modeArg] : ['distributed', 'embedded'];

const SIZES = quick
  ? { dispatch: 30, docker: 5, ticks: 100, lines: 100_000, submits: 100, clients: 10 }
  : { dispatch: 200, docker: 30, ticks: 400, lines: 1_000_000, submits: 1_000, clients: 10 };

/**
 * The whole run stops (cleaning up) after this long, whatever it is doing. The load measures take
 * most of it: (h) queues and drains 10,000 builds, (i) runs two minutes a mode.
 */
const DEADLINE_MS = 45 * 60 * 1000;

interface Row {
  mode: Mode;
  measure: string;
  figure: number;
  baseline: number;
  unit: string;
  target?: { below?: number; above?: number };
}

const rows: Row[] = [];
let cleanups: Cleanups = [];
/** Wrong results (lost lines, failed builds): the run exits 1 and writes no README. */
const failures: string[] = [];

let currentMode: Mode | '' = '';

function log(message: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)} ${currentMode}] ${message}`);
}

async function runCleanups(): Promise<void> {
  const list = cleanups;
  cleanups = [];
  for (const undo of list.reverse()) {
    try {
      await undo();
    } catch (error) {
      console.error(`cleanup failed: ${(error as Error).message}`);
    }
  }
}

function verdict(row: Row): string {
  if (!row.target) return '';
  const { below, above } = row.target;
  const ok = (below === undefined || row.figure < below) && (above === undefined || row.figure > above);
  return ok ? 'PASS' : 'MISS';
}

function targetText(row: Row): string {
  if (row.target?.below !== undefined) return `< ${fmt(row.target.below)} ${row.unit}`;
  if (row.target?.above !== undefined) return `> ${fmt(row.target.above)} ${row.unit}`;
  return '';
}

function table(): string {
  const header = ['mode', 'measure', 'Kiln', 'raw baseline', 'ratio', 'target', ''];
  const body = rows.map((r) => [
    r.mode,
    r.measure,
    `${fmt(r.figure)} ${r.unit}`,
    Number.isNaN(r.baseline) ? '—' : `${fmt(r.baseline)} ${r.unit}`,
    ratio(r.figure, r.baseline),
    targetText(r),
    verdict(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const BASELINES = `Raw baselines, measured in the same run: (a) one message published with confirms to a RabbitMQ
quorum queue and consumed by the same process (amqplib), then \`/bin/sh -c 'echo hi'\` spawned and its
first line read; (b) the same timestamp-printing shell loop spawned by the bench and read through a pipe;
(c) the same lines inserted with pg into a table shaped like \`log_chunks\` (PostgreSQL, or PGlite
through pglite-socket when embedded), cut as the log batcher cuts them (64 KiB rows), 8 rows an INSERT;
(d) \`{ __typename }\` queries to the same server, 10 clients at once; (e) a bare
\`node -e "setInterval(()=>{},1000)"\`; (f) \`docker run --rm kiln-test/busybox:1 echo hi\` through the
docker CLI, from spawn to its first line. Ratio = Kiln ÷ baseline.

(d) runs while the runner works through the builds it submits, with \`KILN_RATE_LIMIT=0\` (one token
makes all the requests). (a) spans the submit (authentication, one statement that writes the build,
the job's publish to a quorum queue after the reply), the subscription (its credentials checked once
per connection, the build read), the runner taking the job (start events confirmed while the job
runs), the job's start (a shell started ahead of time: a fork of the runner takes 5 ms, 20 ms beside
PGlite) and the first chunk's way back, straight from the broker to the subscriber. Embedded, PGlite
runs in a process of its own, beside the api's.`;

async function measureMode(mode: Mode): Promise<void> {
  currentMode = mode;
  const work = await mkdtemp(path.join(os.tmpdir(), `kiln-bench-${mode}-`));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  log(`starting`);
  const deployment: Deployment =
    mode === 'distributed'
      ? await startDistributed(work, cleanups, extraEnv)
      : await startEmbedded(work, cleanups, extraEnv);
  const client = await connectKiln(deployment.url, deployment.token);
  cleanups.push(() => client.close());
  const add = (row: Omit<Row, 'mode'>) => rows.push({ mode, ...row });

  const bareRss = only.has('e') ? await bareNodeRssMiB() : Number.NaN;
  for (const { role, pid } of only.has('e') ? deployment.processes : []) {
    add({
      measure: `(e) RSS idle, ${role}`,
      figure: await rssMiB(pid),
      baseline: bareRss,
      unit: 'MiB',
    });
  }

  if (only.has('a')) await measureDispatch(client, add);
  if (only.has('f')) await measureDockerDispatch(client, add);
  if (only.has('b')) await measureLogLatency(client, add);
  if (only.has('c')) {
    await measureThroughput(client, deployment, add);
    for (const { role, pid } of only.has('e') ? deployment.processes : []) {
      add({
        measure: `(e) RSS after (c), ${role}`,
        figure: await rssMiB(pid),
        baseline: bareRss,
        unit: 'MiB',
      });
    }
  }
  if (only.has('d')) await measureSubmits(client, add);
  const load = {
    client,
    deployment,
    sizes: quick ? LOAD_SIZES.quick : LOAD_SIZES.full,
    add,
    log,
    fail(message: string) {
      failures.push(`${mode}: ${message}`);
      console.error(`[bench FAILED ${mode}] ${message}`);
    },
  };
  if (only.has('g')) await measureSubscribers(load);
  if (only.has('h')) await measureDrain(load);
  if (only.has('i')) await measureOpenLoop(load);
  if (only.has('j')) await measureWebhook({ client, samples: quick ? 10 : 30, add, log });
  if (only.has('k')) {
    await measureSchedules({
      client,
      count: quick ? 200 : 1000,
      rawDatabase: () => deployment.rawDatabase(),
      add,
      log,
    });
  }
  log(`done, stopping`);
}

type Add = (row: Omit<Row, 'mode'>) => void;

async function measureDispatch(client: KilnClient, add: Add): Promise<void> {
  log(`(a) dispatch latency, ${SIZES.dispatch} builds`);
  const dispatch = await dispatchLatency(client, SIZES.dispatch);
  const dispatchRaw = await dispatchBaseline(SIZES.dispatch);
  add({
    measure: '(a) dispatch p50',
    figure: percentile(dispatch, 0.5),
    baseline: percentile(dispatchRaw, 0.5),
    unit: 'ms',
    target: { below: 25 },
  });
  add({
    measure: '(a) dispatch p99',
    figure: percentile(dispatch, 0.99),
    baseline: percentile(dispatchRaw, 0.99),
    unit: 'ms',
  });
}

async function measureDockerDispatch(client: KilnClient, add: Add): Promise<void> {
  if (!(await probe()).docker) {
    log('(f) skipped: no Docker engine answers (bash infra/install-docker.sh)');
    return;
  }
  const image = await ensureTestImage();
  log(`(f) docker dispatch latency, ${SIZES.docker} builds in ${image}`);
  const manifest = `driver: {type: docker, image: "${TEST_IMAGE}", workspace: /work}\nstages: [s]\njobs:\n  - {stage: s, commands: ["echo hi"]}\n`;
  const dispatch = await dispatchLatency(client, SIZES.docker, 2, manifest);
  const raw = await dockerRunBaseline(TEST_IMAGE, SIZES.docker);
  add({
    measure: '(f) docker dispatch p50 (submit → first log line)',
    figure: percentile(dispatch, 0.5),
    baseline: percentile(raw, 0.5),
    unit: 'ms',
  });
  add({
    measure: '(f) docker dispatch p99',
    figure: percentile(dispatch, 0.99),
    baseline: percentile(raw, 0.99),
    unit: 'ms',
  });
}

async function measureLogLatency(client: KilnClient, add: Add): Promise<void> {
  log(`(b) log latency, ${SIZES.ticks} lines 20 ms apart`);
  const latency = await logLatency(client, SIZES.ticks);
  const latencyRaw = await logLatencyBaseline(ticksScript(SIZES.ticks));
  add({
    measure: '(b) log latency p50',
    figure: percentile(latency, 0.5),
    baseline: percentile(latencyRaw, 0.5),
    unit: 'ms',
  });
  add({
    measure: '(b) log latency p99',
    figure: percentile(latency, 0.99),
    baseline: percentile(latencyRaw, 0.99),
    unit: 'ms',
    target: { below: 50 },
  });
}

async function measureThroughput(client: KilnClient, deployment: Deployment, add: Add): Promise<void> {
  log(`(c) log throughput, ${SIZES.lines.toLocaleString('en-US')} lines`);
  const throughput = await logThroughput(client, deployment, SIZES.lines);
  const rawDb = await deployment.rawDatabase();
  const rawSeconds = await rawInsertSeconds(rawDb, SIZES.lines);
  const rawRate = SIZES.lines / rawSeconds;
  add({
    measure: '(c) log throughput (submit → all lines received, PASSED)',
    figure: throughput.lines / throughput.seconds,
    baseline: rawRate,
    unit: 'lines/s',
    target: { above: 100_000 },
  });
  add({
    measure: `(c) storing (submit → all ${throughput.rows} rows in log_chunks)`,
    figure: throughput.lines / throughput.storedSeconds,
    baseline: rawRate,
    unit: 'lines/s',
  });
  log(`(c) stored ${throughput.storeLagMs} ms after the runner finished the build`);
  add({
    measure: '(c) storing lag (build finished → all stored)',
    figure: throughput.storeLagMs,
    baseline: Number.NaN,
    unit: 'ms',
  });
}

async function measureSubmits(client: KilnClient, add: Add): Promise<void> {
  log(`(d) submit throughput, ${SIZES.submits} builds from ${SIZES.clients} clients`);
  await typenameThroughput(client, 50, SIZES.clients);
  const queries = await typenameThroughput(client, SIZES.submits, SIZES.clients);
  const submits = await submitThroughput(client, SIZES.submits, SIZES.clients);
  add({
    measure: '(d) submit throughput',
    figure: SIZES.submits / submits.seconds,
    baseline: SIZES.submits / queries.seconds,
    unit: 'req/s',
  });
  add({
    measure: '(d) submit p99',
    figure: percentile(submits.latencies, 0.99),
    baseline: percentile(queries.latencies, 0.99),
    unit: 'ms',
  });
}

async function updateReadme(text: string): Promise<void> {
  const file = path.resolve(import.meta.dirname, '../README.md');
  const readme = await readFile(file, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from === -1 || to < from) throw new Error('README.md has no bench markers');
  await writeFile(file, `${readme.slice(0, from + start.length)}\n${text}\n${readme.slice(to)}`);
}

async function main(): Promise<number> {
  const found = await probe();
  if (!found.postgres || !found.rabbitmq) {
    console.error('npm run bench needs PostgreSQL and RabbitMQ on 127.0.0.1 (bash infra/services.sh)');
    return 1;
  }
  let failed = false;
  for (const mode of modes) {
    try {
      await measureMode(mode);
    } catch (error) {
      // The other mode still runs, and what was measured is still printed.
      failed = true;
      console.error(`${mode} failed:`, error);
    } finally {
      await runCleanups();
    }
  }
  const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}), shared with other work, Node ${process.version}`;
  const date = new Date().toISOString().slice(0, 10);
  const report = `${table()}\n\n${BASELINES}\n\n${LOAD_NOTES}\n\n${WEBHOOK_NOTES}\n\n${SCHEDULES_NOTES}`;
  console.log(`\n${report}\n\nMeasured ${date} on ${machine}${quick ? ' (--quick: smaller counts)' : ''}.`);
  if (failures.length > 0) {
    failed = true;
    console.error(`\nWRONG RESULTS:\n${failures.map((f) => `  ${f}`).join('\n')}`);
  }
  const full = !quick && !onlyArg && modes.length === 2;
  if (writeReadme && !full)
    console.error('--readme: only a full run (both modes, every figure) goes into README.md');
  if (writeReadme && full && !failed) {
    await updateReadme(
      `Measured ${date} with \`npm run bench\` on ${machine}.\nAbsolute figures are noisy; the ratios are steadier.\n\n${report}`,
    );
    log('README.md updated');
  }
  return failed ? 1 : 0;
}

let stopping = false;
async function stop(code: number, why: string): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.error(`bench stopped: ${why}`);
    await runCleanups();
  }
  process.exit(code);
}
process.once('SIGINT', () => void stop(130, 'interrupted'));
process.once('SIGTERM', () => void stop(143, 'terminated'));
const deadline = setTimeout(
  () => void stop(1, `still running after ${DEADLINE_MS / 60_000} minutes`),
  DEADLINE_MS,
);

try {
  process.exitCode = await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
}
process.exit();

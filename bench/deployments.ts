/**
 * The two deployments the benchmark measures, started for real and torn down afterwards:
 *
 * - distributed: a fresh PostgreSQL database (cloned from the migrated template), a unique RabbitMQ
 *   prefix, one `kiln serve` and one `kiln runner` process;
 * - embedded: one `kiln start` process on a fresh KILN_DATA_DIR (PGlite, in-process broker and runner).
 *
 * Everything acquired registers its own undo on `cleanups`, which the caller runs (in reverse) even
 * when a measurement fails.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { deleteTopology } from '../runner/broker/amqp/topology.ts';
import { createTemplateDatabase, createTestDatabase } from '../test/testkit/db.ts';
import { type KilnProcess, spawnKiln, startServe } from '../test/testkit/processes.ts';
import { AMQP_URL, POSTGRES_URL } from '../test/testkit/services.ts';

export type Mode = 'distributed' | 'embedded';

export interface StoredLog {
  rows: number;
  lines: number;
}

export interface Deployment {
  mode: Mode;
  url: string;
  token: string;
  /** The processes whose memory is reported, by role. */
  processes: { role: string; pid: number }[];
  /** The process whose log says `build finished` (the runner, or `kiln start`). */
  runner: KilnProcess;
  /** Rows and lines of a build's log in log_chunks, read straight from the database. */
  storedLog(buildId: string): Promise<StoredLog>;
  /** A pg client on a database of the same kind (PostgreSQL, or PGlite) for the raw baselines. */
  rawDatabase(): Promise<pg.Client>;
  /**
   * Distributed only: one more `kiln runner` on the same database and broker, with `env` on top of the
   * deployment's (e.g. KILN_RUNNER_QUEUES); stopped with the deployment. Embedded has no such thing:
   * its one runner lives in `kiln start`, on an in-process broker no other process reaches.
   */
  addRunner?(name: string, env: Record<string, string>): KilnProcess;
}

/** The queue of the drain measure (h): no runner of the deployment takes it, so builds wait there. */
export const LOAD_QUEUE = 'load';

export type Cleanups = (() => Promise<unknown>)[];

/** Builds run at once per runner: the machine's two cores. */
const CONCURRENCY = '2';

function baseEnv(work: string, token: string, extra: Record<string, string>): Record<string, string> {
  return {
    ...extra,
    KILN_DATA_DIR: path.join(work, 'data'),
    KILN_WORKSPACE_DIR: work,
    KILN_BOOTSTRAP_TOKEN: token,
    KILN_RUNNER_CONCURRENCY: CONCURRENCY,
    // After the submit-throughput run a thousand builds may still be queued: stop without waiting.
    KILN_RUNNER_DRAIN_SECONDS: '0',
    // The bench is one token making thousands of requests a minute: it measures capacity, not the
    // per-token limit (which would cap it at KILN_RATE_LIMIT a minute).
    KILN_RATE_LIMIT: '0',
  };
}

async function connectPg(url: string, cleanups: Cleanups): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  cleanups.push(() => client.end().catch(() => {}));
  return client;
}

async function storedLogOf(client: pg.Client, buildId: string): Promise<StoredLog> {
  const { rows } = await client.query<{ rows: string; lines: string | null }>(
    'select count(*) as rows, sum(line_count) as lines from log_chunks where build_id = $1',
    [buildId],
  );
  return { rows: Number(rows[0]?.rows ?? 0), lines: Number(rows[0]?.lines ?? 0) };
}

/** `extraEnv` goes to every Kiln process (e.g. NODE_OPTIONS for a CPU profile). */
export async function startDistributed(
  work: string,
  cleanups: Cleanups,
  extraEnv: Record<string, string> = {},
): Promise<Deployment> {
  const token = `kiln_bench_${randomBytes(12).toString('hex')}`;
  process.env.KILN_TEST_TEMPLATE_DB = await createTemplateDatabase(POSTGRES_URL);
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  cleanups.push(() => deleteTopology(AMQP_URL, prefix, ['default', LOAD_QUEUE]));
  const env = {
    ...baseEnv(work, token, extraEnv),
    KILN_DATABASE_URL: db.url,
    KILN_AMQP_URL: AMQP_URL,
    KILN_BROKER_PREFIX: prefix,
  };
  const runner = spawnKiln('runner', ['runner'], { ...env, KILN_RUNNER_NAME: 'bench-runner' });
  cleanups.push(() => runner.stop(5_000));
  const serve = await startServe('serve', env);
  cleanups.push(() => serve.stop(5_000));
  await runner.waitFor((l) => l.msg === 'runner started');
  const reader = await connectPg(db.url, cleanups);
  return {
    mode: 'distributed',
    url: serve.url,
    token,
    processes: [
      { role: 'serve', pid: serve.child.pid! },
      { role: 'runner', pid: runner.child.pid! },
    ],
    runner,
    storedLog: (buildId) => storedLogOf(reader, buildId),
    async rawDatabase() {
      return connectPg(db.url, cleanups);
    },
    addRunner(name, more) {
      const added = spawnKiln(name, ['runner'], { ...env, KILN_RUNNER_NAME: name, ...more });
      cleanups.push(() => added.stop(5_000));
      return added;
    },
  };
}

export async function startEmbedded(
  work: string,
  cleanups: Cleanups,
  extraEnv: Record<string, string> = {},
): Promise<Deployment> {
  const token = `kiln_bench_${randomBytes(12).toString('hex')}`;
  const start = spawnKiln('start', ['start'], { ...baseEnv(work, token, extraEnv), KILN_PORT: '0' });
  cleanups.push(() => start.stop(5_000));
  const up = await start.waitFor((l) => l.msg === 'kiln serve is up');
  await start.waitFor((l) => l.msg === 'in-process runner started');
  const url = String(up.url);
  // The embedded database is a child process listening on a loopback port that nothing prints.
  const database = await embeddedDatabasePid(start.child.pid!);
  const ports = await listeningPorts(database);
  if (ports.length !== 1) throw new Error(`cannot tell the embedded database's port among ${ports}`);
  const reader = await connectPg(`postgresql://postgres@127.0.0.1:${ports[0]}/postgres`, cleanups);
  return {
    mode: 'embedded',
    url,
    token,
    processes: [
      { role: 'start (serve + runner)', pid: start.child.pid! },
      { role: 'start (its database)', pid: database },
    ],
    runner: start,
    storedLog: (buildId) => storedLogOf(reader, buildId),
    async rawDatabase() {
      // The same engine in this process, reached the way Kiln reaches it: pg over pglite-socket.
      const { PGlite } = await import('@electric-sql/pglite');
      const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
      const db = await PGlite.create(path.join(work, 'raw-pglite'));
      const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
      await server.start();
      cleanups.push(async () => {
        await server.stop();
        await db.close();
      });
      return connectPg(`postgresql://postgres@${server.getServerConn()}/postgres`, cleanups);
    },
  };
}

/** TCP ports `pid` listens on, from /proc (its socket inodes matched against the LISTEN sockets). */
/** The pid of `kiln start`'s database process (a child running embedded-postgres.ts). */
async function embeddedDatabasePid(startPid: number): Promise<number> {
  const tasks = await readdir(`/proc/${startPid}/task`);
  for (const task of tasks) {
    const children = await readFile(`/proc/${startPid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const pid of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes('embedded-postgres')) return pid;
    }
  }
  throw new Error(`kiln start (${startPid}) has no embedded database process`);
}

async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9]!)) continue;
      ports.push(Number.parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return [...new Set(ports)];
}

/** VmRSS of a process, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

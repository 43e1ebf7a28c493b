/**
 * N `kiln serve` and M `kiln runner` processes on one PostgreSQL database and one RabbitMQ, started
 * with processes.ts, sharing one environment (token, secret key, data directory, delivery limit).
 * The first serve starts alone, since serve applies migrations and creates the admin at start; the
 * rest start side by side.
 *
 *   const cluster = await startKilnCluster({ databaseUrl, amqpUrl, serves: 2, runners: 2 });
 *   const kiln = cluster.client(0);                 // a KilnClient of serve 0
 *   await cluster.kill(cluster.runners[0]!);        // SIGKILL, with its jobs
 *   await cluster.startRunner();                    // one more
 *   await cluster.stop();                           // everything it started, then its directory
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type KilnClient, kilnClient } from './kiln-client.ts';
import { isRunning } from './pids.ts';
import { type KilnProcess, spawnKiln, startServe } from './processes.ts';
import { processTree, signalAll, waitUntil } from './system.ts';

export type ServeProcess = KilnProcess & { url: string };

export interface KilnCluster {
  /** The admin's bearer token. */
  readonly token: string;
  /** The environment every process gets (before its own additions). */
  readonly env: Readonly<Record<string, string>>;
  /** The temporary directory: data/, workspaces/. */
  readonly dir: string;
  /** Every serve started, in order, stopped and killed ones included. */
  readonly serves: ServeProcess[];
  /** Every runner started, in order, stopped and killed ones included. */
  readonly runners: KilnProcess[];
  startServe(name?: string, env?: Record<string, string>): Promise<ServeProcess>;
  /** Starts a runner and waits until it consumes. */
  startRunner(name?: string, env?: Record<string, string>): Promise<KilnProcess>;
  /** A client of a serve (by index or process), disposed when the cluster stops. */
  client(serve?: number | ServeProcess): KilnClient;
  /** The runner that takes build `number` (from its "build taken" line), waiting up to `timeoutMs`. */
  runnerOf(number: number, timeoutMs?: number): Promise<KilnProcess>;
  /**
   * SIGKILL to the process and every process below it (a runner's jobs too), as when its machine or
   * container dies; resolves once they are all gone.
   */
  kill(proc: KilnProcess): Promise<void>;
  /** The pids of every process started and of those below them, for checks that none is left. */
  pids(): number[];
  /** Stops every process still running (SIGTERM, SIGKILL after 10 s) and deletes the directory. */
  stop(): Promise<void>;
}

export interface KilnClusterOptions {
  databaseUrl: string;
  amqpUrl: string;
  serves?: number;
  runners?: number;
  /** Added to every process's environment. */
  env?: Record<string, string>;
}

export async function startKilnCluster(opts: KilnClusterOptions): Promise<KilnCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-cluster-'));
  const workspaces = path.join(dir, 'workspaces');
  await mkdir(workspaces);
  const token = `kiln_${randomBytes(16).toString('hex')}`;
  const env: Record<string, string> = {
    KILN_DATABASE_URL: opts.databaseUrl,
    KILN_AMQP_URL: opts.amqpUrl,
    KILN_BROKER_PREFIX: `kiln-${randomBytes(3).toString('hex')}`,
    KILN_BOOTSTRAP_TOKEN: token,
    // One data directory and one key: a secret stored through one replica is read by another.
    KILN_DATA_DIR: path.join(dir, 'data'),
    KILN_SECRET_KEY: randomBytes(32).toString('hex'),
    KILN_DELIVERY_LIMIT: '4',
    KILN_RATE_LIMIT: '0',
    KILN_DRIVERS: 'os',
    KILN_WORKSPACE_DIR: workspaces,
    ...opts.env,
  };
  const serves: ServeProcess[] = [];
  const runners: KilnProcess[] = [];
  const clients: KilnClient[] = [];
  let servesNamed = 0;
  let runnersNamed = 0;
  /** Every pid seen in a process's tree, so jobs of a runner are checked after it is gone too. */
  const seen = new Set<number>();
  const remember = (proc: KilnProcess) => {
    if (proc.child.pid === undefined) return;
    for (const pid of processTree(proc.child.pid)) seen.add(pid);
  };
  const treeWatch = setInterval(() => {
    for (const proc of [...serves, ...runners]) if (isRunning(proc.child.pid ?? -1)) remember(proc);
  }, 500);
  treeWatch.unref();

  const cluster: KilnCluster = {
    token,
    env,
    dir,
    serves,
    runners,
    async startServe(name = `serve-${++servesNamed}`, extra = {}) {
      const serve = await startServe(name, { ...env, ...extra });
      serves.push(serve);
      remember(serve);
      return serve;
    },
    async startRunner(name = `runner-${++runnersNamed}`, extra = {}) {
      const runner = spawnKiln(name, ['runner'], {
        ...env,
        KILN_RUNNER_NAME: name,
        KILN_RUNNER_CONCURRENCY: '1',
        ...extra,
      });
      runners.push(runner);
      await runner.waitFor((l) => l.msg === 'runner started');
      remember(runner);
      return runner;
    },
    client(serve = 0) {
      const proc = typeof serve === 'number' ? serves[serve] : serve;
      if (!proc) throw new Error(`no serve ${String(serve)}`);
      const c = kilnClient(proc.url, token);
      clients.push(c);
      return c;
    },
    runnerOf(number, timeoutMs = 30_000) {
      return Promise.any(
        runners.map((r) =>
          r.waitFor((l) => l.msg === 'build taken' && l.number === number, timeoutMs).then(() => r),
        ),
      ).catch(() => {
        throw new Error(`no runner took build ${number} in ${timeoutMs} ms`);
      });
    },
    async kill(proc) {
      if (proc.child.pid === undefined) return;
      remember(proc);
      const tree = processTree(proc.child.pid);
      signalAll(tree, 'SIGKILL');
      await proc.exited;
      await waitUntil(() => tree.every((p) => !isRunning(p)), `${proc.name}'s processes survived SIGKILL`);
    },
    pids: () => [...seen],
    async stop() {
      clearInterval(treeWatch);
      await Promise.all(clients.splice(0).map((c) => c.dispose().catch(() => {})));
      for (const proc of [...serves, ...runners]) if (isRunning(proc.child.pid ?? -1)) remember(proc);
      await Promise.all([...runners, ...serves].map((p) => p.stop(10_000)));
      // Jobs of a runner stopped by SIGKILL, or that outlived their runner.
      signalAll([...seen].filter(isRunning), 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    const serveCount = opts.serves ?? 1;
    // The first alone: it migrates the database and creates the admin.
    if (serveCount > 0) await cluster.startServe();
    await Promise.all([
      ...Array.from({ length: Math.max(0, serveCount - 1) }, () => cluster.startServe()),
      ...Array.from({ length: opts.runners ?? 1 }, () => cluster.startRunner()),
    ]);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/**
 * What a process said at info level and above, each message once, in order, with the build attempt
 * when there is one: "build taken (attempt 1) | rabbitmq connection lost, reconnecting | …". For a
 * fault test's printed account of what happened.
 */
export function storyOf(proc: KilnProcess): string {
  const said = proc.lines
    .filter((l): l is Record<string, unknown> => typeof l === 'object' && Number(l.level ?? 0) >= 30)
    .map((l) => `${String(l.msg)}${l.attempt ? ` (attempt ${String(l.attempt)})` : ''}`);
  return `${proc.name}: ${[...new Set(said)].join(' | ')}`;
}

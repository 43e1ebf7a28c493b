/**
 * The embedded database in a process of its own: PGlite (Postgres compiled to WASM) on a data
 * directory, served on a loopback port through pglite-socket. `startEmbeddedPostgres` forks it and
 * resolves with its URL once it listens; the api connects to it like to any PostgreSQL.
 *
 * Why not in the api's process: PGlite runs each query on the thread that calls it, so every query
 * would hold up HTTP, WebSockets and log fan-out; and its 700 MiB of WASM memory would make every
 * process the runner starts (a fork copies the page tables) take 20 ms instead of a few. In its own
 * process it runs beside the api on another core.
 *
 * Lifetime: the parent stops it with `stop()` (PGlite closes cleanly, flushing the data directory).
 * It also stops when the parent goes away without asking (the IPC channel closes, even on SIGKILL).
 * It ignores SIGINT and SIGTERM: sent to the whole group (Ctrl-C in a terminal, systemd stopping the
 * service), they reach the parent too, which stops it in order instead of it dying mid-write. Should
 * it end on its own, `onLost` says so (by default the parent process ends: nothing works without it).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

type FromChild = { ready: string } | { error: string };

export interface EmbeddedPostgres {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const STOP_TIMEOUT_MS = 10_000;
/** The first argument of the forked process: this module then serves instead of being imported. */
const SERVE_FLAG = '--kiln-embedded-postgres';

/**
 * Forks the database process on `dir` (created when missing) and waits until it listens. Should it
 * end other than through `stop()` (killed, crashed), `onLost` is told why: nothing works without it.
 */
export async function startEmbeddedPostgres(
  dir: string,
  onLost: (reason: string) => void = () => {},
): Promise<EmbeddedPostgres> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot start the embedded database in ${dir}: ${(err as Error).message}`);
  }
  const child = fork(fileURLToPath(import.meta.url), [SERVE_FLAG, dir], {
    // TypeScript runs through tsx here too; the loader is resolved from this package, not the cwd.
    execArgv: ['--import', import.meta.resolve('tsx')],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit');
  const answer = await Promise.race([
    once(child, 'message').then(([message]) => message as FromChild),
    exited.then(([code, signal]) => ({ error: `it exited (${signal ?? code}) before listening` })),
  ]);
  if ('error' in answer) {
    child.kill('SIGKILL');
    throw new Error(`cannot start the embedded database in ${dir}: ${answer.error}`);
  }
  let stopping = false;
  void exited.then(([code, signal]) => {
    if (!stopping) onLost(`the embedded database process ended (${signal ?? `exit code ${code}`})`);
  });
  return {
    url: `postgresql://postgres@${answer.ready}/postgres`,
    pid: child.pid!,
    stop: () => {
      stopping = true;
      return stopChild(child, exited);
    },
  };
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // Without the IPC channel it is stopping already (it stops when the channel closes).
  if (child.connected) child.send('stop');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS);
  });
  if ((await Promise.race([exited, late])) === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/** The forked process itself. */
async function serve(dir: string): Promise<void> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const { SessionQueue } = await import('./session-queue.ts');
  // The parent decides when this process stops (IPC, or its going away). Signals sent to the whole
  // group (a terminal's Ctrl-C, systemd stopping the service) reach the parent too, which then stops
  // this one in order, after the api has stopped using it.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  let db: InstanceType<typeof PGlite>;
  let server: InstanceType<typeof PGLiteSocketServer>;
  try {
    db = await PGlite.create(dir);
    server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 });
    // Its handlers take the queue from the server when a connection arrives: ours keeps each
    // connection's extended-protocol queries whole (see session-queue.ts).
    Object.assign(server, { queryQueue: new SessionQueue(db) });
    await server.start();
  } catch (err) {
    process.send?.({ error: (err as Error).message } satisfies FromChild);
    process.exit(1);
  }
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      try {
        await server.stop();
        await db.close();
      } finally {
        process.exit(0);
      }
    })();
    return stopping;
  };
  process.on('message', (message) => {
    if (message === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  process.send?.({ ready: server.getServerConn() } satisfies FromChild);
}

if (process.argv[2] === SERVE_FLAG && process.argv[3] && process.send) {
  await serve(process.argv[3]);
}

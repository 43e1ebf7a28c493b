/**
 * A PostgreSQL server of a test's own, for fault tests that stop, kill and restart the database
 * (never the machine's shared one). `initdb` makes a cluster in a temporary directory, `pg_ctl`
 * runs it on a free port of 127.0.0.1 with trust authentication and its socket in that directory;
 * as root, both run as the `postgres` OS user, which owns the directory.
 *
 *   const pg = await startPrivatePostgres();
 *   const url = await pg.createDatabase('kiln');   // postgresql://postgres@127.0.0.1:<port>/kiln
 *   await pg.stop(); await pg.start();             // same port, same data
 *   await pg.kill(); await pg.start();             // SIGKILL, then crash recovery
 *   await pg.remove();                             // stopped and deleted
 *
 * fsync is off (a killed server loses nothing the OS has; only a machine crash would), so tests do
 * not wait on the disk; synchronous_commit stays on, so a commit the client saw survives a kill.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { isRunning } from './pids.ts';
import {
  asUser,
  freePort,
  type OsUser,
  osUser,
  processTree,
  run,
  runOrThrow,
  signalAll,
  waitUntil,
} from './system.ts';

/** Any process with this pid, a zombie included (what PostgreSQL's own check sees). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface PrivatePostgres {
  /** The `postgres` database: postgresql://postgres@127.0.0.1:<port>/postgres. */
  readonly url: string;
  readonly port: number;
  /** The temporary directory: data/, the socket, server.log. */
  readonly dir: string;
  /** The URL of another database on this server. */
  urlFor(database: string): string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** The postmaster's pid while it runs, else null. */
  pid(): number | null;
  /** Starts the stopped (or killed) server again, on the same port with the same data. */
  start(): Promise<void>;
  /** A fast shutdown (`pg_ctl stop -m fast`): clients are disconnected, data is kept. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and its backends, as an OOM killer would: the next start recovers. */
  kill(): Promise<void>;
  /** Stops the server if it runs and deletes its directory. */
  remove(): Promise<void>;
  /** The tail of the server's log, for failure messages. */
  logTail(lines?: number): string;
}

/** The directory of PostgreSQL's server programs (the newest under /usr/lib/postgresql), or null. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0]!, 'bin') : null;
}

export async function startPrivatePostgres(opts: { name?: string } = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server programs not found under /usr/lib/postgresql/<version>/bin');
  const user: OsUser | null = process.getuid?.() === 0 ? osUser('postgres') : null;
  if (process.getuid?.() === 0 && !user) throw new Error('running as root, but there is no postgres user');
  const dir = await mkdtemp(path.join(os.tmpdir(), `${opts.name ?? 'kiln-fault-pg'}-`));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  if (user) await chown(dir, user.uid, user.gid);
  const port = await freePort();
  const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: dir };
  const pgctlCommand = (args: string[]) =>
    asUser(user, path.join(bin, 'pg_ctl'), ['-D', dataDir, ...args], env);
  const pgctl = (args: string[]) => runOrThrow(...pgctlCommand(args), { timeoutMs: 60_000 });
  const url = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${database}`;

  const [initCmd, initArgs] = asUser(
    user,
    path.join(bin, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
    env,
  );
  await runOrThrow(initCmd, initArgs, { timeoutMs: 120_000 });

  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    '-c shared_buffers=32MB',
    '-c max_connections=200',
  ].join(' ');

  const pid = (): number | null => {
    try {
      const first = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(first) && first > 0 && isRunning(first) ? first : null;
    } catch {
      return null;
    }
  };

  const start = async () => {
    if (pid() !== null) return;
    await pgctl(['-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start']);
  };

  await start();

  const instance: PrivatePostgres = {
    url: url('postgres'),
    port,
    dir,
    urlFor: url,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`create database "${name}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    pid,
    start,
    async stop() {
      if (pid() === null) return;
      await pgctl(['-w', '-t', '60', '-m', 'fast', 'stop']);
    },
    async kill() {
      const postmaster = pid();
      if (postmaster === null) return;
      const tree = processTree(postmaster);
      signalAll(tree, 'SIGKILL');
      // The next start refuses to run while an old backend still holds the shared memory.
      await waitUntil(
        () => tree.every((p) => !isRunning(p)),
        'PostgreSQL processes still running after SIGKILL',
      );
      // pg_ctl's postmaster is an orphan: until init reaps it, its pid answers kill(pid, 0), and the
      // next start takes postmaster.pid for a live server's. It is dead, so its lock file can go.
      const reaped = await waitUntil(() => !exists(postmaster), '', 2_000).then(
        () => true,
        () => false,
      );
      if (!reaped) await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
    },
    async remove() {
      if (pid() !== null) {
        const stopped = await run(...pgctlCommand(['-w', '-t', '20', '-m', 'immediate', 'stop']));
        if (stopped.code !== 0 || pid() !== null) await instance.kill();
      }
      await rm(dir, { recursive: true, force: true });
    },
    logTail(lines = 30) {
      try {
        return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  return instance;
}

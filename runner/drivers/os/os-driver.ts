/**
 * The `os` driver: jobs run as plain processes on the runner's host, in a fresh temporary workspace
 * directory per build, and a fresh HOME next to it (`<root>/workspace`, `<root>/home`), so what a
 * build puts in ~ (SSH keys, caches, git config) is its own, never the runner's, and goes with it.
 * Only for trusted builds: nothing isolates a job from the host beyond its working directory and a
 * minimal environment.
 *
 * Each job's script is written next to (not inside) the workspace and run as `/bin/sh -e <script>`
 * with stderr merged into stdout by the shell, so the output is interleaved exactly as written.
 * The job is its own process group: a kill (or timeout) sends SIGTERM to the whole group, then
 * SIGKILL after `killGraceMs`. Processes a job leaves running in the background when its script
 * exits are killed too (with SIGKILL), so no job outlives its run and no stray process keeps the
 * output pipe open. Processes that leave the group on purpose (setsid, daemons) are not tracked.
 * When the runner itself is killed, the next runner on the same workspace directory kills what its
 * jobs left running and removes their workspaces (leftovers.ts).
 *
 * Files (objects in, artifacts out) are read and written in the workspace directly; an absolute path
 * is taken as relative to the workspace. Links are resolved with realpath and the result checked
 * against the workspace's real path; the file is then opened with O_NOFOLLOW and read or written
 * through that descriptor only once the kernel (/proc/self/fd) confirms it lies in the workspace,
 * because a job's background process may swap a directory for a link between the two steps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants as fsConstants, mkdirSync, mkdtempSync, type ReadStream, writeFileSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { globToRegExp, staticPrefix } from '../../glob.ts';
import {
  type Driver,
  type DriverEnvironment,
  DriverError,
  type DriverSession,
  type EnvironmentFile,
  isInside,
  type JobRun,
  lexicallyWithin,
  OUTSIDE_WORKSPACE,
  type SkippedFile,
} from '../driver.ts';
import { createJobProcesses } from './job-processes.ts';
import { cleanupOsLeftovers, type LeftoverResult, rootPrefix } from './leftovers.ts';

export interface OsDriverOptions {
  /** The runner's own PATH, HOME, LANG…: the only variables a job inherits from the host. */
  baseEnv: Record<string, string>;
  /** Where workspaces are made; default: the system's temporary directory. */
  workspaceDir?: string;
  /** Time between SIGTERM and SIGKILL when a job is stopped; at most 500 ms. */
  killGraceMs?: number;
  /** Kill and remove what runners killed earlier left in the workspace directory (leftovers.ts). */
  cleanupLeftovers?: boolean;
  /** Told what the leftover cleanup removed, or why it failed. */
  onCleanup?: (result: LeftoverResult | Error) => void;
}

const MAX_GRACE_MS = 500;
/** How long to wait for the output pipe to close once the process group is dead. */
const CLOSE_WAIT_MS = 1000;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal] : undefined;
  return 128 + (number ?? 0);
}

async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // Jobs may leave read-only directories (Go's module cache does): make them writable and retry.
    const chmod = spawn('chmod', ['-R', 'u+rwx', path], { stdio: 'ignore' });
    await once(chmod, 'close').catch(() => undefined);
    await rm(path, { recursive: true, force: true, maxRetries: 2 });
  }
}

const { O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = fsConstants;

/** The real path of `path`, links resolved; a missing tail (or a dangling last link) is kept as named. */
async function realPathOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    const parent = dirname(path);
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path) throw error;
    return join(await realPathOf(parent), basename(path));
  }
}

/** Whether an open file lies in `workspace` (a real path), by where the kernel says it is. */
async function openedInside(workspace: string, handle: FileHandle, opened: string): Promise<boolean> {
  const where = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
  if (where !== null) return isInside(workspace, where);
  // No /proc (not Linux): the next best is that the path still leads, link-free, to this very file.
  const [now, same, mine] = await Promise.all([
    realpath(opened).catch(() => null),
    stat(opened).catch(() => null),
    handle.stat(),
  ]);
  return now === opened && same?.dev === mine.dev && same?.ino === mine.ino;
}

type Found = EnvironmentFile | SkippedFile;

/** The regular file at `real` (a real path in `workspace`), as `path`; nothing when it is not one. */
async function* regularFile(workspace: string, path: string, real: string): AsyncGenerator<Found> {
  // O_NONBLOCK: a FIFO must not hang the runner; it is no regular file and gets skipped below.
  const handle = await open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch(() => null);
  if (!handle) return;
  let content: ReadStream | null = null;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return;
    if (!(await openedInside(workspace, handle, real))) {
      yield { path, skipped: OUTSIDE_WORKSPACE };
      return;
    }
    content = handle.createReadStream();
    yield { path, size: stats.size, content };
  } finally {
    // Also when the caller left the bytes unread: destroying the stream closes the descriptor.
    if (content) content.destroy();
    else await handle.close();
  }
}

/** Where `path` leads, links followed, checked against `workspace`: null when nothing is there. */
async function follow(workspace: string, path: string) {
  const real = await realpath(path).catch(() => null);
  if (real === null) return null;
  if (!isInside(workspace, real)) return 'outside' as const;
  const stats = await stat(real).catch(() => null);
  return stats && { real, stats };
}

/**
 * The files under the real directory `dir`, named from `named` (relative to the workspace), depth
 * first in name order: linked directories are not entered, a matched link is followed.
 */
async function* walk(workspace: string, dir: string, named: string, matcher: RegExp): AsyncGenerator<Found> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = named === '' ? entry.name : `${named}/${entry.name}`;
    const child = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(workspace, child, path, matcher);
    else if (!matcher.test(path)) continue;
    else if (entry.isFile()) yield* regularFile(workspace, path, child);
    else if (entry.isSymbolicLink()) {
      const found = await follow(workspace, child);
      if (found === 'outside') yield { path, skipped: OUTSIDE_WORKSPACE };
      else if (found?.stats.isFile()) yield* regularFile(workspace, path, found.real);
    }
  }
}

async function* workspaceFiles(workspace: string, pattern: string): AsyncGenerator<Found> {
  const relative = lexicallyWithin(pattern);
  if (relative === null) {
    yield { path: pattern, skipped: OUTSIDE_WORKSPACE };
    return;
  }
  const matcher = globToRegExp(relative);
  const start = staticPrefix(relative);
  const found = await follow(workspace, join(workspace, start));
  if (found === 'outside') yield { path: start, skipped: OUTSIDE_WORKSPACE };
  else if (found?.stats.isDirectory()) yield* walk(workspace, found.real, start, matcher);
  else if (found?.stats.isFile() && matcher.test(start)) yield* regularFile(workspace, start, found.real);
}

export function createOsDriver(options: OsDriverOptions): Driver {
  const baseDir = options.workspaceDir ?? tmpdir();
  const graceMs = Math.min(options.killGraceMs ?? 300, MAX_GRACE_MS);
  const processes = createJobProcesses({ idleCwd: baseDir });
  const prefix = rootPrefix();
  if (options.cleanupLeftovers) {
    cleanupOsLeftovers(baseDir).then(
      (result) => options.onCleanup?.(result),
      (error: unknown) => options.onCleanup?.(error instanceof Error ? error : new Error(String(error))),
    );
  }

  return {
    type: 'os',
    async create(environment: DriverEnvironment): Promise<DriverSession> {
      let root: string;
      try {
        // Synchronous: three operations (the root's name says whose it is), which the thread pool
        // would only make later on a busy runner, and this is on the way to every build's first line.
        root = mkdtempSync(join(baseDir, prefix));
        mkdirSync(join(root, 'workspace'));
        mkdirSync(join(root, 'home'), { mode: 0o700 });
      } catch (error) {
        throw new DriverError(`cannot make a workspace in ${baseDir}: ${(error as Error).message}`);
      }
      const workspace = join(root, 'workspace');
      const home = join(root, 'home');
      // Links resolve to real paths, so the workspace is compared by its own (the temporary
      // directory may be a link, as on macOS); found once, on first use, off the way to the first job.
      let realWorkspace: Promise<string> | null = null;
      const real = () => {
        realWorkspace ??= realpath(workspace);
        return realWorkspace;
      };
      const running = new Set<ChildProcess>();
      let scripts = 0;

      const run = async (job: JobRun) => {
        if (job.signal.aborted) return { exitCode: 128 + constants.signals.SIGTERM, aborted: true };
        const scriptPath = join(root, `job-${++scripts}.sh`);
        // The script merges stderr into stdout first, so both share one pipe and keep their order.
        // Written synchronously: a small local file, and the thread pool's round trip is slower.
        writeFileSync(scriptPath, `exec 2>&1\n${job.script}`, { mode: 0o600 });
        const env = {
          ...options.baseEnv,
          HOME: home,
          ...environment.env,
          ...job.env,
          CI: 'true',
          KILN: 'true',
          KILN_WORKSPACE: workspace,
        };
        const started = processes.start(scriptPath, env, workspace);
        const { child } = started;
        const spawned = started.spawned.then((ok) => {
          if (!ok) job.output(Buffer.from(`kiln: cannot start the job: ${started.error()?.message}\n`));
          return ok;
        });
        const closed = once(child, 'close').catch(() => undefined);
        child.stdout.on('data', (data: Buffer) => job.output(data));
        child.stderr.on('data', (data: Buffer) => job.output(data));
        if (!(await spawned) || child.pid === undefined) return { exitCode: 127, aborted: false };
        const pid = child.pid;
        running.add(child);

        let aborted = false;
        let killed: Promise<unknown> | null = null;
        const stop = () => {
          aborted = true;
          killGroup(pid, 'SIGTERM');
          killed = delay(graceMs).then(() => killGroup(pid, 'SIGKILL'));
        };
        job.signal.addEventListener('abort', stop, { once: true });
        if (job.signal.aborted && !aborted) stop();
        try {
          const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
          if (killed) await killed;
          else killGroup(pid, 'SIGKILL');
          await Promise.race([closed, delay(CLOSE_WAIT_MS)]);
          return { exitCode: exitCodeOf(code, signal), aborted };
        } finally {
          job.signal.removeEventListener('abort', stop);
          child.stdout.destroy();
          child.stderr.destroy();
          running.delete(child);
        }
      };

      return {
        description: workspace,
        run,
        async putFile(path, content, size, mode = 0o644) {
          const relative = lexicallyWithin(path);
          if (relative === '') throw new DriverError(`${path} is the workspace itself`);
          const inside = await real();
          const target = relative === null ? null : await realPathOf(join(inside, relative));
          if (target === null || target === inside || !isInside(inside, target)) {
            throw new DriverError(`${path} resolves outside the workspace`);
          }
          await mkdir(dirname(target), { recursive: true });
          const handle = await open(target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, mode).catch(
            (error: NodeJS.ErrnoException) => {
              throw error.code === 'ELOOP' ? new DriverError(`${path} is a link that leads nowhere`) : error;
            },
          );
          try {
            // A race can at worst leave an empty file outside: nothing is truncated or written before
            // this check, and then only through the descriptor it checked.
            if (!(await openedInside(inside, handle, target))) {
              throw new DriverError(`${path} resolves outside the workspace`);
            }
            await handle.truncate(0);
          } catch (error) {
            await handle.close();
            throw error;
          }
          let written = 0;
          const counted = async function* () {
            for await (const chunk of content) {
              written += chunk.length;
              if (written > size) throw new Error(`${path}: more than the announced ${size} bytes`);
              yield chunk;
            }
          };
          await pipeline(Readable.from(counted()), handle.createWriteStream());
          if (written !== size) throw new Error(`${path}: ${written} bytes instead of the announced ${size}`);
        },
        async *files(pattern) {
          yield* workspaceFiles(await real(), pattern);
        },
        async destroy() {
          for (const child of running) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
          await removeTree(root);
          processes.replenish();
        },
      };
    },
  };
}

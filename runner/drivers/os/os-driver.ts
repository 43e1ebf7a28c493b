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
 * is taken as relative to the workspace, and symbolic links are never followed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { globToRegExp, normalizePattern, staticPrefix } from '../../glob.ts';
import {
  type Driver,
  type DriverEnvironment,
  DriverError,
  type DriverSession,
  type EnvironmentFile,
  type JobRun,
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

/**
 * A path of the os driver's files API, relative to the workspace: an absolute one is taken as
 * relative to the workspace (the workspace stands for the root the docker driver's paths name).
 */
function workspaceRelative(path: string): string {
  const relative = normalizePattern(path).replace(/^\/+/, '');
  if (relative.split('/').includes('..')) throw new DriverError(`${path} leaves the workspace`);
  return relative;
}

/** Regular files under `dir` (a path relative to `workspace`), depth first in name order; links are not followed. */
async function* walk(workspace: string, dir: string): AsyncGenerator<string> {
  const entries = await readdir(join(workspace, dir), { withFileTypes: true }).catch(() => []);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) yield* walk(workspace, path);
    else if (entry.isFile()) yield path;
  }
}

async function* workspaceFiles(workspace: string, pattern: string): AsyncGenerator<EnvironmentFile> {
  const relative = workspaceRelative(pattern);
  const matcher = globToRegExp(relative);
  const start = staticPrefix(relative);
  const found = await lstat(join(workspace, start)).catch(() => null);
  if (!found) return;
  const paths = found.isDirectory() ? walk(workspace, start) : found.isFile() ? [start] : [];
  for await (const path of paths) {
    if (!matcher.test(path)) continue;
    const stat = await lstat(join(workspace, path)).catch(() => null);
    if (!stat?.isFile()) continue;
    yield { path, size: stat.size, content: createReadStream(join(workspace, path)) };
  }
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
          const target = join(workspace, workspaceRelative(path));
          if (target === workspace) throw new DriverError(`${path} is the workspace itself`);
          await mkdir(dirname(target), { recursive: true });
          let written = 0;
          const counted = async function* () {
            for await (const chunk of content) {
              written += chunk.length;
              if (written > size) throw new Error(`${path}: more than the announced ${size} bytes`);
              yield chunk;
            }
          };
          await pipeline(Readable.from(counted()), createWriteStream(target, { mode }));
          if (written !== size) throw new Error(`${path}: ${written} bytes instead of the announced ${size}`);
        },
        files: (pattern) => workspaceFiles(workspace, pattern),
        async destroy() {
          for (const child of running) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
          await removeTree(root);
          processes.replenish();
        },
      };
    },
  };
}

/**
 * Starts the os driver's job processes, with one shell kept started ahead of time.
 *
 * Starting a process from Node forks the whole runner first (libuv's fork, then exec), and a fork
 * copies the process's page tables: it blocks the runner for milliseconds that grow with its memory
 * (about 5 ms for a 200 MiB runner, over 10 ms for `kiln start` with PGlite beside it), on the way to
 * every job's first line. So the starter keeps one idle `/bin/sh -s` ready, in its own process group,
 * with an empty environment and its output pipes open. A job takes it by writing to its stdin: `cd`
 * to the workspace, the job's variables as `export`s, then `exec /bin/sh -e <script>` with stdin from
 * /dev/null and stderr on stdout. The job then runs as that process (same pid and group), with exactly
 * the environment and working directory a fresh spawn would give it, and the variables never appear
 * in a command line. The next idle shell is started REPLENISH_DELAY_MS after a job's first output (or
 * its end): late enough not to hold up that output on its way out, early enough to be ready for the
 * next build in most cases; the driver also asks for one when a build ends.
 *
 * A job falls back to a fresh spawn when no idle shell is ready (another job took it, it died). Idle
 * shells hold no reference on the event loop, and exit on their own when the runner goes (their
 * stdin closes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { shellQuote } from '../../manifest/plan.ts';

export interface StartedJob {
  child: ChildProcess & {
    stdout: NonNullable<ChildProcess['stdout']>;
    stderr: NonNullable<ChildProcess['stderr']>;
  };
  /** Resolves true once the process runs, false when it could not be started (`error` says why). */
  spawned: Promise<boolean>;
  /** Whether it took the idle shell (or was spawned afresh). */
  warm: boolean;
  error: () => Error | null;
}

export interface JobProcesses {
  /** Starts `/bin/sh -e <scriptPath>` in `cwd` with exactly `env`, stdin /dev/null, stderr on stdout. */
  start(scriptPath: string, env: Record<string, string>, cwd: string): StartedJob;
  /** Starts the idle shell now unless one is ready (the fork holds up the whole process while it lasts). */
  replenish(): void;
  /** Stops the idle shell; later starts spawn afresh. */
  close(): void;
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** How long after a job's first output the next idle shell is started. */
const REPLENISH_DELAY_MS = 20;

type Piped = StartedJob['child'] & { stdin: NonNullable<ChildProcess['stdin']> };

/** Holds no reference on the event loop: an idle shell must not keep the runner alive. */
function setRef(child: Piped, ref: boolean): void {
  for (const target of [child, child.stdin, child.stdout, child.stderr] as unknown as {
    ref(): void;
    unref(): void;
  }[]) {
    if (ref) target.ref();
    else target.unref();
  }
}

export function createJobProcesses(opts: { idleCwd: string; warm?: boolean }): JobProcesses {
  const warm = opts.warm ?? true;
  let idle: Piped | null = null;
  let closed = false;

  const startIdle = (): void => {
    if (!warm || closed || idle) return;
    let child: Piped;
    try {
      child = spawn('/bin/sh', ['-s'], {
        cwd: opts.idleCwd,
        env: {},
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      }) as Piped;
    } catch {
      return;
    }
    child.on('error', () => {});
    child.stdin.on('error', () => {});
    child.once('exit', () => {
      if (idle === child) idle = null;
    });
    setRef(child, false);
    idle = child;
  };

  const takeIdle = (): Piped | null => {
    const child = idle;
    idle = null;
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      if (child) child.kill('SIGKILL');
      return null;
    }
    return child;
  };

  return {
    start(scriptPath, env, cwd) {
      // A name that is not a shell name cannot be exported, but the job's shell would drop it from
      // its children's environment anyway.
      const names = Object.keys(env).filter((name) => SHELL_NAME.test(name));
      const shell = takeIdle();
      let child: Piped | StartedJob['child'];
      let spawned: Promise<boolean>;
      let error: Error | null = null;
      if (shell) {
        setRef(shell, true);
        const lines = [
          `cd -- ${shellQuote(cwd)} || exit 1`,
          'unset OLDPWD',
          ...names.map((name) => `export ${name}=${shellQuote(env[name]!)}`),
          `exec /bin/sh -e ${shellQuote(scriptPath)} </dev/null 2>&1`,
        ];
        shell.stdin.end(`${lines.join('\n')}\n`);
        child = shell;
        spawned = Promise.resolve(true);
      } else {
        child = spawn('/bin/sh', ['-e', scriptPath], {
          cwd,
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        }) as StartedJob['child'];
        spawned = once(child, 'spawn').then(
          () => true,
          (e: Error) => {
            error = e;
            return false;
          },
        );
      }
      child.on('error', () => {});
      // The next job's shell is started once this job is under way (its first output is on its way
      // to subscribers, or it has ended): starting it now would hold up this job's first lines.
      let scheduled = false;
      const soon = () => {
        if (scheduled) return;
        scheduled = true;
        setTimeout(startIdle, REPLENISH_DELAY_MS).unref();
      };
      child.stdout.once('data', soon);
      child.once('exit', soon);
      return { child, spawned, warm: shell !== null, error: () => error };
    },
    replenish: startIdle,
    close() {
      closed = true;
      idle?.kill('SIGKILL');
      idle = null;
    },
  };
}

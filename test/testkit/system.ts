/**
 * Small helpers for test services the tests start themselves (private PostgreSQL and RabbitMQ):
 * free ports, commands run as a service's own OS user, and waiting for a condition.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it; it may be taken later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function listening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** The account from /etc/passwd, or null when there is none. */
export function osUser(name: string): OsUser | null {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return null;
  const [, , uid, gid] = line.split(':');
  return { name, uid: Number(uid), gid: Number(gid) };
}

/**
 * The command line that runs `command` as `user` with exactly `env` (nothing inherited): through
 * runuser when we are root (PostgreSQL refuses to run as root; RabbitMQ's files belong to its user),
 * as ourselves otherwise.
 */
export function asUser(
  user: OsUser | null,
  command: string,
  args: string[],
  env: Record<string, string>,
): [string, string[]] {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  if (user && process.getuid?.() === 0 && user.uid !== 0) {
    return ['runuser', ['-u', user.name, '--', 'env', '-i', ...envArgs, command, ...args]];
  }
  return ['env', ['-i', ...envArgs, command, ...args]];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws for a non-zero exit (the caller decides). */
export function run(command: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  return new Promise<RunResult>((resolve) => {
    execFile(
      command,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error?.message ?? '') });
      },
    );
  });
}

/** Like run, but throws with the command's output when it fails. */
export async function runOrThrow(
  command: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<string> {
  const result = await run(command, args, opts);
  if (result.code !== 0) {
    const shown = [command, ...args].join(' ');
    throw new Error(`${shown} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`.trim());
  }
  return result.stdout;
}

/** Polls `check` every `everyMs` until it returns true; throws `message` after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  message: string,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${message} (waited ${timeoutMs} ms)`);
    await delay(everyMs);
  }
}

/** The pids of processes whose parent is `pid`, read from /proc. */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Gone between readdir and read.
    }
  }
  return children;
}

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childrenOf(all[i]!));
  return all;
}

/** Sends `signal` to each pid, ignoring those already gone. */
export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Whether processes the tests started (or that their code started) still run, read from /proc.
 */
import { readFileSync } from 'node:fs';
import { waitFor } from './wait.ts';

/** Running: not gone, and not a zombie waiting for an init that does not reap (as in some containers). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `pid` to stop running; returns whether it did. */
export function stopsRunning(pid: number, ms = 5_000): Promise<boolean> {
  return waitFor(`process ${pid} to stop`, () => !isRunning(pid), { timeoutMs: ms, intervalMs: 20 }).catch(
    () => false,
  );
}

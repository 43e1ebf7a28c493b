/**
 * Waiting for something to become true, for tests: the one way to wait on a condition that nothing
 * announces (a row stored, a file written, a process gone). Never sleep for a fixed time instead: a
 * sleep is too short on a slow machine and too long everywhere else.
 *
 * `check` is polled until it returns a truthy value, which `waitFor` resolves with. It may be
 * asynchronous (a query), and it may act before it looks (send a probe again until it is heard). An
 * error it throws ends the wait with that error. Past `timeoutMs` the wait fails with a message that
 * names what was awaited (`what`, or what it returns then, so it can tell the last state seen): the
 * timeout only turns a hang into a readable failure, it asserts nothing about time, so it is generous.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  /** How long before giving up; 30 s by default, half of a test's timeout. */
  timeoutMs?: number;
  /** The pause between two checks; 10 ms by default. */
  intervalMs?: number;
}

/** What a check's value is once it holds: without the falsy values that mean "not yet". */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

export async function waitFor<T>(
  what: string | (() => string),
  check: () => T | Promise<T>,
  { timeoutMs = 30_000, intervalMs = 10 }: WaitOptions = {},
): Promise<Truthy<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (performance.now() > deadline) {
      const awaited = typeof what === 'string' ? what : what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${awaited}`);
    }
    await delay(intervalMs);
  }
}

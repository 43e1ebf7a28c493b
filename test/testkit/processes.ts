/**
 * Real `kiln` processes for cross-process suites: spawned from infra/kiln.mjs with their own
 * environment, their JSON log lines parsed, stopped (or SIGKILLed) by the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface KilnProcess {
  name: string;
  child: ChildProcess;
  /** Every line it printed, parsed when it was JSON. */
  lines: (Record<string, unknown> | string)[];
  /** Resolves with the first log line matching `pred` (also one printed before the call). */
  waitFor(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

export function spawnKiln(name: string, args: string[], env: Record<string, string>): KilnProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'infra/kiln.mjs'), ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      KILN_LOG_LEVEL: 'info',
      // A stopped test runner hands its builds back at once, killing their jobs, instead of draining
      // past the test's grace period and being SIGKILLed with its jobs still running.
      KILN_RUNNER_DRAIN_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: KilnProcess['lines'] = [];
  const waiters: {
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  const onLine = (text: string) => {
    let parsed: Record<string, unknown> | string = text;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {}
    lines.push(parsed);
    if (process.env.KILN_TEST_LOG) console.log(`[${name}] ${text}`);
    if (typeof parsed === 'object') {
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    lines,
    exited,
    waitFor(pred, timeoutMs = 60_000) {
      const seen = lines.find((l): l is Record<string, unknown> => typeof l === 'object' && pred(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `${name}: no matching log line in ${timeoutMs} ms; last lines:\n${lines
                .slice(-15)
                .map((l) => JSON.stringify(l))
                .join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          reject(
            new Error(
              `${name} exited; last lines:\n${lines
                .slice(-15)
                .map((l) => JSON.stringify(l))
                .join('\n')}`,
            ),
          );
        });
      });
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts `kiln serve` on a free port and resolves with its URL once it listens. */
export async function startServe(
  name: string,
  env: Record<string, string>,
): Promise<KilnProcess & { url: string }> {
  const proc = spawnKiln(name, ['serve'], { KILN_PORT: '0', ...env });
  const up = await proc.waitFor((l) => l.msg === 'kiln serve is up');
  return Object.assign(proc, { url: String(up.url) });
}

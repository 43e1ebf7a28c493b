/**
 * Gives memory back once a burst of work is over.
 *
 * V8 collects its old generation when it fills, not when the process goes quiet. A burst (a thousand
 * `buildLog` subscribers, a build printing a hundred megabytes) promotes what is in flight to the old
 * generation; once the burst is over that is garbage, but an idle serve allocates almost nothing, so
 * no collection comes and the garbage stays, and with it the RSS of the peak. Measured on serve after
 * 300 subscribers left: heap "used" 267 MiB and RSS 377 MiB for good, while a heap snapshot (which
 * collects first) held 1 MiB more than before they came: nothing was retained, only not collected.
 *
 * So every `intervalMs` the collector looks at the last interval: when the event loop was idle
 * (utilization under `idleBelow`) and the heap has grown by `minGrowthBytes` or more since the last
 * full collection (or since it started), it runs one. An idle process that has not grown is never
 * touched, and a busy one never pays for a collection it did not need.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

export interface IdleCollectorOptions {
  logger: Logger;
  /** Default 5 s. */
  intervalMs?: number;
  /** Event-loop utilization (0..1) over the last interval below which the process counts as idle. */
  idleBelow?: number;
  /** Heap growth since the last full collection that makes one worth it. Default 32 MiB. */
  minGrowthBytes?: number;
}

/** What one check did. */
export type CollectOutcome =
  | { collected: true; heapBefore: number; heapAfter: number; rssBefore: number; rssAfter: number }
  | { collected: false; reason: 'busy' | 'not grown' };

export interface IdleCollector {
  start(): void;
  stop(): void;
  /** One check now, as the timer makes it; `idle` overrides the measured utilization (tests). */
  check(opts?: { idle?: boolean }): CollectOutcome;
}

/** A full, synchronous collection: V8's `gc`, reached without starting node with --expose-gc. */
let fullCollection: (() => void) | null = null;
function collectNow(): void {
  if (!fullCollection) {
    v8.setFlagsFromString('--expose-gc');
    fullCollection = runInNewContext('gc') as () => void;
  }
  fullCollection();
}

const MiB = 1024 * 1024;

export function createIdleCollector(opts: IdleCollectorOptions): IdleCollector {
  const intervalMs = opts.intervalMs ?? 5_000;
  const idleBelow = opts.idleBelow ?? 0.05;
  const minGrowth = opts.minGrowthBytes ?? 32 * MiB;
  // Zero: the first idle look also collects what starting (migrations, the schema) left behind.
  let settled = 0;
  let since = performance.eventLoopUtilization();
  let timer: NodeJS.Timeout | null = null;

  function check(override: { idle?: boolean } = {}): CollectOutcome {
    const utilization = performance.eventLoopUtilization(since).utilization;
    since = performance.eventLoopUtilization();
    const before = process.memoryUsage();
    if (before.heapUsed < settled + minGrowth) {
      // The heap also shrinks by itself (a collection V8 chose to make): follow it down.
      settled = Math.min(settled, before.heapUsed);
      return { collected: false, reason: 'not grown' };
    }
    if (!(override.idle ?? utilization < idleBelow)) return { collected: false, reason: 'busy' };
    collectNow();
    const after = process.memoryUsage();
    settled = after.heapUsed;
    const outcome = {
      collected: true as const,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      rssBefore: before.rss,
      rssAfter: after.rss,
    };
    opts.logger.info(
      {
        heapMiB: [Math.round(before.heapUsed / MiB), Math.round(after.heapUsed / MiB)],
        rssMiB: [Math.round(before.rss / MiB), Math.round(after.rss / MiB)],
      },
      'collected the garbage of a burst of work once idle',
    );
    return outcome;
  }

  return {
    check,
    start() {
      if (timer) return;
      since = performance.eventLoopUtilization();
      timer = setInterval(check, intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

/**
 * The loop that fires schedules in every serve replica (there is no leader: the database's row locks
 * decide which replica fires a slot). After each tick it sleeps until the soonest schedule is due,
 * at most `maxSleepMs`, so that a slot fires within milliseconds of its time without a query every
 * few milliseconds; a schedule created or changed here wakes it at once (`wake`), one changed on
 * another replica is seen within `maxSleepMs`.
 */
import type { Logger } from 'pino';
import type { PeriodicJob, TickOutcome } from '../../jobs/periodic.ts';
import type { ScheduleService } from './schedules.service.ts';

export interface ScheduleTicker extends PeriodicJob {
  /** The soonest run may have changed: sleep no longer than until it. */
  wake(): void;
}

export function createScheduleTicker(opts: {
  service: () => ScheduleService;
  logger: Logger;
  maxSleepMs?: number;
}): ScheduleTicker {
  const maxSleepMs = opts.maxSleepMs ?? 1_000;
  let running: Promise<void> | null = null;
  let stopped = true;
  let busy: Promise<TickOutcome> | null = null;
  let wakeUp: (() => void) | null = null;

  function tick(): Promise<TickOutcome> {
    if (busy) return Promise.resolve('busy');
    busy = once().finally(() => {
      busy = null;
    });
    return busy;
  }

  let soonest: Date | null = null;
  async function once(): Promise<TickOutcome> {
    try {
      const result = await opts.service().tick();
      soonest = result.soonest;
      const fired = result.firings.filter((f) => f.state === 'fired').length;
      if (result.firings.length > 0) {
        opts.logger.info({ slots: result.firings.length, fired }, 'fired schedules');
      }
      return 'ran';
    } catch (err) {
      opts.logger.warn({ err }, 'a schedule tick failed');
      soonest = null;
      return 'failed';
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      await tick();
      if (stopped) break;
      const until = soonest ? soonest.getTime() - Date.now() : maxSleepMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(5, Math.min(maxSleepMs, until)));
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = null;
    }
  }

  return {
    name: 'schedules',
    intervalMs: maxSleepMs,
    leaderOnly: false,
    start() {
      if (!stopped) return;
      stopped = false;
      opts.logger.info({ job: 'schedules', maxSleepMs }, 'started the schedule ticker');
      running = loop();
    },
    tick,
    wake() {
      wakeUp?.();
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      await running;
      running = null;
      await busy;
    },
  };
}

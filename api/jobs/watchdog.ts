/**
 * Ends builds whose runner went silent. RabbitMQ redelivers a build when its runner's connection
 * drops, so this only matters when a runner hangs with its connection still open: a RUNNING build
 * past its timeout (plus a grace) whose runner sent no heartbeat for `silenceMs` becomes TIMED_OUT.
 * It runs on every replica: BuildState.ended's update is conditional on the build still running, so a build
 * two replicas find at once is ended (and announced) by one of them.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { BuildState } from '../modules/builds/build-state.ts';
import { every, type PeriodicJob } from './periodic.ts';

export function createWatchdog(deps: {
  orm: MikroORM;
  buildState: BuildState;
  logger: Logger;
  intervalMs?: number;
  silenceMs?: number;
}): { job: PeriodicJob; check(): Promise<string[]> } {
  const silence = deps.silenceMs ?? 30_000;
  async function check(): Promise<string[]> {
    const em = deps.orm.em.fork();
    const rows = await em.execute<{ id: string; runner: string | null }[]>(
      `select b.id, b.runner from builds b left join runners r on r.name = b.runner
       where b.status = 'RUNNING'
         and b.started_at + (b.timeout_ms * interval '1 millisecond') + (? * interval '1 millisecond') < now()
         and (r.last_seen_at is null or r.last_seen_at < now() - (? * interval '1 millisecond'))`,
      [silence, silence],
    );
    const ended: string[] = [];
    for (const row of rows) {
      const reason = `runner ${row.runner ?? '(unknown)'} stopped sending heartbeats and the build's timeout passed`;
      if (await deps.buildState.ended(em, row.id, { kind: 'timed-out', reason })) ended.push(row.id);
    }
    if (ended.length > 0) {
      deps.logger.warn({ builds: ended }, 'timed out builds of lost runners');
    }
    return ended;
  }
  const job = every({
    name: 'watchdog',
    intervalMs: deps.intervalMs ?? 10_000,
    run: check,
    logger: deps.logger,
  });
  return { job, check };
}

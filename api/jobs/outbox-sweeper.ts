/**
 * Republishes outbox rows that stayed unpublished (the process died between commit and publish, or
 * the broker was down). Rows are claimed with SKIP LOCKED so two replicas never publish the same
 * row at the same moment: it runs on every replica, with no leader to wait for when one goes away.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { OutboxMessage } from '../broker/outbox.entity.ts';
import type { BuildService } from '../modules/builds/builds.service.ts';
import { every, type PeriodicJob } from './periodic.ts';

export function createOutboxSweeper(deps: {
  orm: MikroORM;
  builds: BuildService;
  logger: Logger;
  intervalMs?: number;
  /** Rows younger than this are still being published by the request that wrote them. */
  graceMs?: number;
}): { job: PeriodicJob; sweep(): Promise<number> } {
  const grace = deps.graceMs ?? 5_000;
  async function sweep(): Promise<number> {
    const em = deps.orm.em.fork();
    return em.transactional(async (tx) => {
      const rows = await tx.execute<{ id: string; kind: 'build'; payload: unknown; created_at: Date }[]>(
        `select id, kind, payload, created_at from outbox
         where published_at is null and created_at < now() - (? * interval '1 millisecond')
         order by created_at limit 100 for update skip locked`,
        [grace],
      );
      let published = 0;
      for (const row of rows) {
        const message: OutboxMessage = {
          id: row.id,
          kind: row.kind,
          payload: typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload,
          createdAt: row.created_at,
          publishedAt: null,
        };
        if (await deps.builds.publishOutbox(tx, message)) published++;
      }
      if (published > 0) deps.logger.info({ published }, 'republished build jobs from the outbox');
      return published;
    });
  }
  const job = every({
    name: 'outbox-sweeper',
    intervalMs: deps.intervalMs ?? 5_000,
    run: sweep,
    logger: deps.logger,
  });
  return { job, sweep };
}

/**
 * The curator (Djinn's): every minute, keeps each user's newest artifacts up to the user's cleanup
 * limit and deletes the rest, never those of pinned builds (the rule is ArtifactService.curate's),
 * then removes blobs that nothing refers to any more. It runs on the leader only: replicas running it
 * at once would be safe (a row deleted twice is deleted once, and each blob is removed under its own
 * lock, files/blobs.ts) but would only repeat each other's scans of every user's artifacts.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { ArtifactService, CurateResult } from '../modules/artifacts/artifacts.service.ts';
import { every, type PeriodicJob } from './periodic.ts';

export function createCurator(deps: {
  orm: MikroORM;
  artifacts: ArtifactService;
  logger: Logger;
  /** The database whose advisory lock elects the one replica that curates. */
  databaseUrl: string;
  intervalMs?: number;
}): { job: PeriodicJob; curate(): Promise<CurateResult> } {
  async function curate(): Promise<CurateResult> {
    const result = await deps.artifacts.curate(deps.orm.em.fork());
    if (result.artifacts + result.blobs > 0)
      deps.logger.info(result, 'curator deleted old artifacts and blobs');
    return result;
  }
  const job = every({
    name: 'curator',
    intervalMs: deps.intervalMs ?? 60_000,
    run: curate,
    logger: deps.logger,
    leaderOnly: { databaseUrl: deps.databaseUrl },
  });
  return { job, curate };
}

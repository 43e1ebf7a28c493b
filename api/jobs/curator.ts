/**
 * The curator (Djinn's): every minute, keeps each user's newest artifacts up to the user's cleanup
 * limit and deletes the rest, never those of pinned builds (the rule is ArtifactService.curate's),
 * then removes blobs that nothing refers to any more. Several replicas may run it at once: a row
 * deleted twice is deleted once, and each blob is removed under its own lock (files/blobs.ts).
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { ArtifactService, CurateResult } from '../modules/artifacts/artifacts.service.ts';

export function startCurator(deps: {
  orm: MikroORM;
  artifacts: ArtifactService;
  logger: Logger;
  intervalMs?: number;
}): { start(): void; stop(): void; curate(): Promise<CurateResult> } {
  async function curate(): Promise<CurateResult> {
    const result = await deps.artifacts.curate(deps.orm.em.fork());
    if (result.artifacts + result.blobs > 0)
      deps.logger.info(result, 'curator deleted old artifacts and blobs');
    return result;
  }
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  return {
    start() {
      timer ??= setInterval(() => {
        if (running) return;
        running = curate()
          .catch((err) => deps.logger.error({ err }, 'curator pass failed'))
          .finally(() => {
            running = null;
          });
      }, deps.intervalMs ?? 60_000);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    curate,
  };
}

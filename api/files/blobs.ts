/**
 * Blobs and the rows that name them. A blob is referred to by every `objects` row and every
 * `artifacts` row not deleted with its hash; it is deleted only when none is left. Committing a blob
 * together with the row that names it, and deciding to delete one, both happen in a transaction
 * holding a per-blob advisory lock, so a blob cannot be deleted between being written and being
 * named. Blobs that nothing names (a transaction that failed after its commit, cascaded deletes of
 * namespaces or builds) are found by `collectOrphans`.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { FileStore, StagedBlob } from './file-store.ts';

async function lockBlob(tx: EntityManager, sha256: string): Promise<void> {
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`blob:${sha256}`]);
}

async function referenced(tx: EntityManager, sha256: string): Promise<boolean> {
  const [row] = await tx.execute<{ used: boolean }[]>(
    `select exists(select 1 from objects where sha256 = ?)
         or exists(select 1 from artifacts where sha256 = ? and deleted_at is null) as used`,
    [sha256, sha256],
  );
  return row?.used === true;
}

/**
 * Commits `staged` and runs `write` (which inserts the row naming it) in one transaction under the
 * blob's lock. The staged bytes are dropped when anything fails before the commit.
 */
export async function commitBlob<T>(
  em: EntityManager,
  staged: StagedBlob,
  write: (tx: EntityManager) => Promise<T>,
): Promise<T> {
  try {
    return await em.transactional(async (tx) => {
      await lockBlob(tx, staged.sha256);
      await staged.commit();
      return write(tx);
    });
  } finally {
    await staged.discard();
  }
}

/** Deletes each of these blobs that no row refers to any more; returns the deleted ones. */
export async function releaseBlobs(
  em: EntityManager,
  store: FileStore,
  hashes: Iterable<string>,
): Promise<string[]> {
  const deleted: string[] = [];
  for (const sha256 of new Set(hashes)) {
    const gone = await em.transactional(async (tx) => {
      await lockBlob(tx, sha256);
      if (await referenced(tx, sha256)) return false;
      await store.delete(sha256);
      return true;
    });
    if (gone) deleted.push(sha256);
  }
  return deleted;
}

/** Deletes stored blobs older than `minAgeMs` that no row refers to; returns how many. */
export async function collectOrphans(
  em: EntityManager,
  store: FileStore,
  minAgeMs = 60_000,
): Promise<number> {
  const cutoff = Date.now() - minAgeMs;
  const candidates: string[] = [];
  for await (const blob of store.list()) {
    if (blob.writtenAt.getTime() < cutoff) candidates.push(blob.sha256);
  }
  if (candidates.length === 0) return 0;
  const rows = await em.execute<{ sha256: string }[]>(
    `with candidates as (select value as sha256 from jsonb_array_elements_text(?::jsonb))
     select sha256 from objects where sha256 in (select sha256 from candidates)
     union select sha256 from artifacts where deleted_at is null and sha256 in (select sha256 from candidates)`,
    [JSON.stringify(candidates)],
  );
  const used = new Set(rows.map((r) => r.sha256));
  return (
    await releaseBlobs(
      em,
      store,
      candidates.filter((sha256) => !used.has(sha256)),
    )
  ).length;
}

/**
 * Artifacts: the files a job's `artifacts` globs collected, uploaded by the runner after the job
 * (also a failed one) through the runner endpoint, stored through the file store with size, MD5 and
 * SHA-256. A job has at most one artifact of a name: uploading it again (the next attempt of the
 * build) replaces it. They are seen by whoever may see their build.
 *
 * The curator (`curate`, run every minute by jobs/curator.ts) keeps each user's newest artifacts
 * up to the user's `cleanupBytes` (1 GiB unless changed; 0: no limit), as Djinn's: walking newest to
 * oldest and summing sizes, every artifact from the one that passes the limit on is deleted, except
 * those of pinned builds, which neither count nor go. Deletion is soft (`deletedAt`; the row leaves
 * the API) and the blob goes once no other row refers to it.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { collectOrphans, commitBlob, releaseBlobs } from '../../files/blobs.ts';
import { BlobTooLargeError, type FileStore } from '../../files/file-store.ts';
import { BuildSchema, JobSchema } from '../builds/builds.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';
import { type Artifact, ArtifactSchema } from './artifacts.entity.ts';

/** Djinn's per-artifact limit (`limit 52428800`). */
export const DEFAULT_ARTIFACT_MAX_BYTES = 50 * 1024 * 1024;

/** Any file name: no `/`, `\` or control characters, 1 to 255 characters, not `.` or `..`. */
export function checkArtifactName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    name !== '.' &&
    name !== '..' &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    !/[/\\\u0000-\u001f\u007f]/.test(name)
  );
}

export type StoreArtifactResult =
  | { ok: true; artifact: Artifact }
  | { ok: false; status: 400 | 404 | 413; reason: string };

export interface CurateResult {
  /** Artifact rows soft-deleted. */
  artifacts: number;
  /** Blobs removed from the store (theirs and orphans). */
  blobs: number;
}

/** The largest cleanup limit: 2^53 − 1 bytes, as much as a JSON number holds exactly. */
export const MAX_CLEANUP_BYTES = Number.MAX_SAFE_INTEGER;

/** Sets a user's cleanup limit (bytes of newest artifacts kept; 0: no limit); returns the user as stored. */
export async function setCleanupBytes(em: EntityManager, user: User, bytes: number): Promise<User> {
  const [row] = await em.execute<Record<string, unknown>[]>(
    'update users set cleanup_bytes = ? where id = ? returning *',
    [bytes, user.id],
  );
  return em.map(UserSchema, row!);
}

export class ArtifactService {
  constructor(private readonly deps: { store: FileStore; maxBytes: number }) {}

  get maxBytes(): number {
    return this.deps.maxBytes;
  }

  get store(): FileStore {
    return this.deps.store;
  }

  async upload(
    em: EntityManager,
    input: { buildId: string; jobId: string; name: string; content: AsyncIterable<Uint8Array> },
  ): Promise<StoreArtifactResult> {
    if (!checkArtifactName(input.name)) {
      return { ok: false, status: 400, reason: 'an artifact name is a file name of 1 to 255 characters' };
    }
    const job = await em.findOne(
      JobSchema,
      { id: input.jobId, build: input.buildId },
      { disableIdentityMap: true },
    );
    if (!job) return { ok: false, status: 404, reason: `build ${input.buildId} has no job ${input.jobId}` };
    let staged: Awaited<ReturnType<FileStore['stage']>>;
    try {
      staged = await this.deps.store.stage(input.content, { maxBytes: this.deps.maxBytes });
    } catch (error) {
      if (error instanceof BlobTooLargeError) {
        return { ok: false, status: 413, reason: `an artifact is at most ${this.deps.maxBytes} bytes` };
      }
      throw error;
    }
    const { artifact, replaced } = await commitBlob(em, staged, async (tx) => {
      // Serialises uploads of one name of one job, so exactly one row stays.
      await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [
        `artifact:${input.jobId}:${input.name}`,
      ]);
      const old = await tx.execute<{ sha256: string }[]>(
        'delete from artifacts where job_id = ? and name = ? and deleted_at is null returning sha256',
        [input.jobId, input.name],
      );
      const row = tx.create(ArtifactSchema, {
        id: randomUUID(),
        build: tx.getReference(BuildSchema, input.buildId, { wrapped: true }),
        job: tx.getReference(JobSchema, input.jobId, { wrapped: true }),
        name: input.name,
        size: staged.size,
        md5: staged.md5,
        sha256: staged.sha256,
        createdAt: new Date(),
        deletedAt: null,
      });
      return { artifact: row, replaced: old.map((r) => r.sha256) };
    });
    if (replaced.length > 0) await releaseBlobs(em, this.deps.store, replaced);
    return { ok: true, artifact };
  }

  find(em: EntityManager, id: string): Promise<Artifact | null> {
    return em.findOne(ArtifactSchema, { id, deletedAt: null }, { disableIdentityMap: true });
  }

  /** The live artifacts of these builds (or jobs), by name. */
  async ofBuilds(em: EntityManager, buildIds: readonly string[]): Promise<Artifact[]> {
    return em.find(
      ArtifactSchema,
      { build: { $in: [...buildIds] }, deletedAt: null },
      { orderBy: { name: 'asc', id: 'asc' }, disableIdentityMap: true },
    );
  }

  async ofJobs(em: EntityManager, jobIds: readonly string[]): Promise<Artifact[]> {
    return em.find(
      ArtifactSchema,
      { job: { $in: [...jobIds] }, deletedAt: null },
      { orderBy: { name: 'asc', id: 'asc' }, disableIdentityMap: true },
    );
  }

  /** One curator pass over every user with a limit; also removes blobs nothing refers to. */
  async curate(em: EntityManager): Promise<CurateResult> {
    const deleted = await em.execute<{ id: string; sha256: string }[]>(
      `with ranked as (
         select a.id, u.cleanup_bytes,
                sum(a.size) over (partition by b.owner_id order by a.created_at desc, a.id desc) as running
         from artifacts a
         join builds b on b.id = a.build_id
         join users u on u.id = b.owner_id
         where a.deleted_at is null and not b.pinned and u.cleanup_bytes > 0
       )
       update artifacts a set deleted_at = now()
       from ranked r
       where a.id = r.id and r.running > r.cleanup_bytes
       returning a.id, a.sha256`,
    );
    const released = await releaseBlobs(
      em,
      this.deps.store,
      deleted.map((row) => row.sha256),
    );
    const orphans = await collectOrphans(em, this.deps.store);
    return { artifacts: deleted.length, blobs: released.length + orphans };
  }
}

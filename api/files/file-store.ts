/**
 * Where the bytes of objects and artifacts live, addressed by their SHA-256: equal files are stored
 * once, and rows (objects, artifacts) name their blob by hash. Deciding when a blob may go (no row
 * refers to it any more) is blobs.ts's job, not the store's.
 *
 * Writing is two steps, so a caller can commit a blob and the row naming it under one lock:
 * `stage` streams the bytes into a temporary file while hashing them (SHA-256 and MD5), flushed to
 * disk; `commit` renames it to its address (or drops it when that blob already exists). A crash
 * leaves at most a temporary file (removed when a store is opened), never a half-written blob.
 *
 * The filesystem store keeps `<dir>/<sha256[0..2]>/<sha256>` and `<dir>/tmp/`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export interface BlobInfo {
  sha256: string;
  md5: string;
  size: number;
}

export interface StagedBlob extends BlobInfo {
  /** Moves the bytes to their address; a no-op when equal bytes are stored already. */
  commit(): Promise<void>;
  /** Drops the staged bytes (after commit: nothing to drop). */
  discard(): Promise<void>;
}

/** The content was longer than the `maxBytes` given to stage/put; nothing was kept. */
export class BlobTooLargeError extends Error {
  override name = 'BlobTooLargeError';
  constructor(readonly maxBytes: number) {
    super(`larger than the limit of ${maxBytes} bytes`);
  }
}

/** Inclusive byte positions, as HTTP ranges count them. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface FileStore {
  stage(content: AsyncIterable<Uint8Array | string>, opts?: { maxBytes?: number }): Promise<StagedBlob>;
  /** stage + commit. */
  put(content: AsyncIterable<Uint8Array | string>, opts?: { maxBytes?: number }): Promise<BlobInfo>;
  /** The blob's bytes (or a range of them); null when there is no such blob. */
  get(sha256: string, range?: ByteRange): Promise<Readable | null>;
  /** Size in bytes, or null when there is no such blob. */
  size(sha256: string): Promise<number | null>;
  exists(sha256: string): Promise<boolean>;
  /** Removes the blob; removing a missing one is fine. */
  delete(sha256: string): Promise<void>;
  /** Every stored blob, with when it was written. */
  list(): AsyncIterable<{ sha256: string; writtenAt: Date }>;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** Temporary files older than this are a crash's leftovers. */
const STALE_TEMP_MS = 60 * 60 * 1000;

function checkHash(sha256: string): string {
  if (!SHA256.test(sha256)) throw new Error(`not a SHA-256: ${sha256}`);
  return sha256;
}

export async function createFsFileStore(dir: string): Promise<FileStore> {
  const tmp = join(dir, 'tmp');
  await mkdir(tmp, { recursive: true });
  const now = Date.now();
  for (const name of await readdir(tmp)) {
    const info = await stat(join(tmp, name)).catch(() => null);
    if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(join(tmp, name), { force: true });
  }
  const pathOf = (sha256: string) => join(dir, checkHash(sha256).slice(0, 2), sha256);

  async function stage(
    content: AsyncIterable<Uint8Array | string>,
    opts: { maxBytes?: number } = {},
  ): Promise<StagedBlob> {
    const temp = join(tmp, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const sha = createHash('sha256');
    const md5 = createHash('md5');
    let size = 0;
    const file = await open(temp, 'wx', 0o600);
    try {
      for await (const piece of content) {
        const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
        size += chunk.length;
        if (opts.maxBytes !== undefined && size > opts.maxBytes) throw new BlobTooLargeError(opts.maxBytes);
        sha.update(chunk);
        md5.update(chunk);
        await file.write(chunk);
      }
      await file.sync();
    } catch (error) {
      await file.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    await file.close();
    const sha256 = sha.digest('hex');
    let done = false;
    return {
      sha256,
      md5: md5.digest('hex'),
      size,
      async commit() {
        if (done) return;
        const target = pathOf(sha256);
        if (await stat(target).catch(() => null)) {
          await rm(temp, { force: true });
        } else {
          await mkdir(join(dir, sha256.slice(0, 2)), { recursive: true });
          await rename(temp, target);
        }
        done = true;
      },
      async discard() {
        if (done) return;
        done = true;
        await rm(temp, { force: true });
      },
    };
  }

  return {
    stage,
    async put(content, opts) {
      const staged = await stage(content, opts);
      await staged.commit();
      return { sha256: staged.sha256, md5: staged.md5, size: staged.size };
    },
    async get(sha256, range) {
      const path = pathOf(sha256);
      if (!(await stat(path).catch(() => null))) return null;
      return createReadStream(path, range ? { start: range.start, end: range.end } : {});
    },
    async size(sha256) {
      const info = await stat(pathOf(sha256)).catch(() => null);
      return info?.isFile() ? info.size : null;
    },
    async exists(sha256) {
      return (await stat(pathOf(sha256)).catch(() => null))?.isFile() ?? false;
    },
    async delete(sha256) {
      await rm(pathOf(sha256), { force: true });
    },
    async *list() {
      for (const shard of await readdir(dir)) {
        if (!/^[0-9a-f]{2}$/.test(shard)) continue;
        for (const name of await readdir(join(dir, shard)).catch(() => [])) {
          if (!SHA256.test(name)) continue;
          const info = await stat(join(dir, shard, name)).catch(() => null);
          if (info) yield { sha256: name, writtenAt: info.mtime };
        }
      }
    },
  };
}

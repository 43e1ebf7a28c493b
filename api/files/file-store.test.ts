import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobTooLargeError, createFsFileStore, type FileStore } from './file-store.ts';
import { contentDisposition, parseRange } from './serve-blob.ts';

async function* from(...parts: string[]) {
  for (const part of parts) yield Buffer.from(part);
}

async function text(stream: AsyncIterable<Buffer | string> | null): Promise<string | null> {
  if (!stream) return null;
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

describe('the filesystem file store', () => {
  let dir: string;
  let store: FileStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-store-'));
    store = await createFsFileStore(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('addresses a blob by its SHA-256, hashes it with MD5 too, and stores equal bytes once', async () => {
    const first = await store.put(from('hello ', 'world'));
    const second = await store.put(from('hello world'));
    expect(first).toEqual({
      sha256: createHash('sha256').update('hello world').digest('hex'),
      md5: createHash('md5').update('hello world').digest('hex'),
      size: 11,
    });
    expect(second).toEqual(first);
    const blobs = [];
    for await (const blob of store.list()) blobs.push(blob.sha256);
    expect(blobs).toEqual([first.sha256]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await text(await store.get(first.sha256))).toBe('hello world');
    expect(await text(await store.get(first.sha256, { start: 6, end: 10 }))).toBe('world');
    expect(await store.size(first.sha256)).toBe(11);
    await store.delete(first.sha256);
    expect(await store.exists(first.sha256)).toBe(false);
    expect(await store.get(first.sha256)).toBeNull();
  });

  it('keeps staged bytes out of sight until they are committed, and drops them when discarded', async () => {
    const staged = await store.stage(from('staged'));
    expect(await store.exists(staged.sha256)).toBe(false);
    await staged.discard();
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    const kept = await store.stage(from('staged'));
    await kept.commit();
    await kept.discard();
    expect(await store.exists(kept.sha256)).toBe(true);
  });

  it('refuses content over the limit without keeping any of it', async () => {
    await expect(store.put(from('12345', '6'), { maxBytes: 5 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect((await store.put(from('12345'), { maxBytes: 5 })).size).toBe(5);
  });

  it('removes temporary files a crash left behind when it is opened again', async () => {
    const leftover = join(dir, 'tmp', 'crashed');
    await writeFile(leftover, 'half a blob');
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(leftover, old, old);
    await createFsFileStore(dir);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('download ranges', () => {
  it('reads the forms of a bytes range and refuses unsatisfiable ones', () => {
    expect(parseRange(undefined, 10)).toBeNull();
    expect(parseRange('bytes=0-3', 10)).toEqual({ start: 0, end: 3 });
    expect(parseRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-4', 10)).toEqual({ start: 6, end: 9 });
    expect(parseRange('bytes=8-100', 10)).toEqual({ start: 8, end: 9 });
    expect(parseRange('bytes=10-12', 10)).toBe('invalid');
    expect(parseRange('bytes=4-2', 10)).toBe('invalid');
    expect(parseRange('bytes=x', 10)).toBe('invalid');
    expect(parseRange('items=0-1', 10)).toBeNull();
  });

  it('names the file for any name, quoting nothing it should not', () => {
    expect(contentDisposition('app.tgz')).toBe(`attachment; filename="app.tgz"; filename*=UTF-8''app.tgz`);
    expect(contentDisposition('r"é.txt')).toBe(
      `attachment; filename="r__.txt"; filename*=UTF-8''r%22%C3%A9.txt`,
    );
  });
});

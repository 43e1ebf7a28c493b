/**
 * Objects, as in Djinn: files uploaded to a user (namespace null) or to a namespace, named
 * `^[a-zA-Z0-9._-]+$` (unique within their scope), at most `maxBytes` (KILN_OBJECT_MAX_BYTES), stored
 * with their size, content type (sniffed from the first bytes, else the upload's), MD5 and SHA-256.
 * There is no update: delete and upload again. Stored, listed, found and deleted as variables and
 * SSH keys are (variables/scoped-resource.service.ts): owners and collaborators of a namespace manage
 * and see its objects.
 *
 * A build gets the objects its manifest names, looked up at submit in the submitter's own objects
 * and the build's namespace's (the namespace's win), like variables.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { commitBlob, releaseBlobs } from '../../files/blobs.ts';
import { BlobTooLargeError, type FileStore } from '../../files/file-store.ts';
import {
  type Outcome,
  ScopedStore,
  type ScopeIds,
  type SecretScope,
  scopeWhere,
} from '../variables/scoped-resource.service.ts';
import { ObjectSchema, type StoredObject } from './objects.entity.ts';

export const OBJECT_NAME = /^[a-zA-Z0-9._-]+$/;
export const MAX_OBJECT_NAME = 255;
/** Djinn's object upload limit (`limit 5MB`). */
export const DEFAULT_OBJECT_MAX_BYTES = 5 * 1024 * 1024;

const HEAD_BYTES = 512;

/** Magic numbers of common files, checked against the first bytes. */
const MAGIC: { type: string; at: number; bytes: number[] }[] = [
  { type: 'image/png', at: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { type: 'image/jpeg', at: 0, bytes: [0xff, 0xd8, 0xff] },
  { type: 'image/gif', at: 0, bytes: [0x47, 0x49, 0x46, 0x38] },
  { type: 'application/pdf', at: 0, bytes: [0x25, 0x50, 0x44, 0x46, 0x2d] },
  { type: 'application/zip', at: 0, bytes: [0x50, 0x4b, 0x03, 0x04] },
  { type: 'application/gzip', at: 0, bytes: [0x1f, 0x8b] },
  { type: 'application/x-bzip2', at: 0, bytes: [0x42, 0x5a, 0x68] },
  { type: 'application/x-xz', at: 0, bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { type: 'application/zstd', at: 0, bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { type: 'application/x-7z-compressed', at: 0, bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { type: 'application/x-executable', at: 0, bytes: [0x7f, 0x45, 0x4c, 0x46] },
  { type: 'application/x-qemu-disk', at: 0, bytes: [0x51, 0x46, 0x49, 0xfb] },
  { type: 'application/x-tar', at: 257, bytes: [0x75, 0x73, 0x74, 0x61, 0x72] },
];

/**
 * The content type of a file that starts with `head`: a known magic number first, then the
 * upload's declared type, then text (UTF-8 without NUL) or `application/octet-stream`.
 */
export function sniffContentType(head: Buffer, declared?: string | null): string {
  for (const magic of MAGIC) {
    if (magic.bytes.every((byte, i) => head[magic.at + i] === byte)) return magic.type;
  }
  const type = declared?.trim().toLowerCase() ?? '';
  if (/^[a-z0-9.+-]+\/[a-z0-9.+-]+(\s*;.*)?$/.test(type) && type !== 'application/octet-stream') {
    return type.slice(0, 255);
  }
  if (head.length === 0) return 'application/octet-stream';
  if (!head.includes(0)) {
    // A multi-byte character cut by the head's end is still text.
    const text = new TextDecoder('utf-8', { fatal: false }).decode(head);
    const replaced = (text.match(/\uFFFD/g) ?? []).length;
    if (replaced <= 1) return 'text/plain; charset=utf-8';
  }
  return 'application/octet-stream';
}

export function checkObjectName(name: string): Outcome<null> {
  if (!OBJECT_NAME.test(name) || name.length > MAX_OBJECT_NAME || name === '.' || name === '..') {
    return {
      ok: false,
      path: 'name',
      reason: `a name is 1 to ${MAX_OBJECT_NAME} letters, digits, dots, dashes and underscores`,
    };
  }
  return { ok: true, value: null };
}

export interface Upload {
  name: string;
  /** The upload's declared type, used when the bytes do not say. */
  type?: string | null;
  size: number;
  stream(): AsyncIterable<Uint8Array>;
}

/** Objects, unique by name in their scope, listed by name. */
const objectStore = new ScopedStore({
  schema: ObjectSchema,
  plural: 'objects',
  unique: 'name',
  orderBy: { name: 'asc' },
});

export class ObjectService {
  constructor(private readonly deps: { store: FileStore; maxBytes: number }) {}

  get maxBytes(): number {
    return this.deps.maxBytes;
  }

  async upload(
    em: EntityManager,
    scope: SecretScope,
    name: string,
    file: Upload,
  ): Promise<Outcome<StoredObject>> {
    const checked = checkObjectName(name);
    if (!checked.ok) return checked;
    const tooLarge = {
      ok: false as const,
      path: 'file',
      reason: `an object is at most ${this.deps.maxBytes} bytes`,
    };
    if (file.size > this.deps.maxBytes) return tooLarge;
    // Before reading the bytes: a taken name is refused at once (and checked again when inserting).
    if (await objectStore.taken(em, scope, name)) return objectStore.duplicate(scope, name);
    let head = Buffer.alloc(0);
    const withHead = async function* () {
      for await (const chunk of file.stream()) {
        if (head.length < HEAD_BYTES) head = Buffer.concat([head, chunk]).subarray(0, HEAD_BYTES);
        yield chunk;
      }
    };
    let staged: Awaited<ReturnType<FileStore['stage']>>;
    try {
      staged = await this.deps.store.stage(withHead(), { maxBytes: this.deps.maxBytes });
    } catch (error) {
      if (error instanceof BlobTooLargeError) return tooLarge;
      throw error;
    }
    const result = await commitBlob(em, staged, (tx) =>
      objectStore.insert(tx, scope, {
        name,
        contentType: sniffContentType(head, file.type),
        size: staged.size,
        md5: staged.md5,
        sha256: staged.sha256,
      }),
    );
    // Another request took the name meanwhile: the blob just committed may be nobody's.
    if (!result.ok) await releaseBlobs(em, this.deps.store, [staged.sha256]);
    return result;
  }

  /** A scope's objects by name. */
  list(em: EntityManager, scope: ScopeIds): Promise<StoredObject[]> {
    return objectStore.list(em, scope);
  }

  find(em: EntityManager, id: string): Promise<StoredObject | null> {
    return objectStore.find(em, id);
  }

  /** Deletes the object, and its bytes unless another row names them too. */
  async delete(em: EntityManager, object: StoredObject): Promise<void> {
    await objectStore.delete(em, object);
    await releaseBlobs(em, this.deps.store, [object.sha256]);
  }

  /**
   * The objects named `names` that a build of `ownerId` in `namespaceId` gets: the namespace's, else
   * the owner's own. Names without an object are missing from the map.
   */
  async forBuild(
    em: EntityManager,
    ownerId: string,
    namespaceId: string | null,
    names: readonly string[],
  ): Promise<Map<string, StoredObject>> {
    const found = new Map<string, StoredObject>();
    const wanted = [...new Set(names)].filter((name) => checkObjectName(name).ok);
    if (wanted.length === 0) return found;
    const scopes = [{ ownerId, namespaceId: null }, ...(namespaceId ? [{ ownerId, namespaceId }] : [])];
    for (const scope of scopes) {
      const rows = await em.find(ObjectSchema, { ...scopeWhere(scope), name: { $in: wanted } });
      for (const row of rows) found.set(row.name, row);
    }
    return found;
  }

  /** Whether a build of `build` may download `object`: it lies in one of the scopes the build draws from. */
  belongsToBuild(object: StoredObject, build: { ownerId: string; namespaceId: string | null }): boolean {
    if (object.namespace) return object.namespace.id === build.namespaceId;
    return object.owner.id === build.ownerId;
  }
}

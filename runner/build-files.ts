/**
 * The files a build exchanges with the world outside its environment: the manifest's `objects`,
 * placed before the first job, and each job's `artifacts`, collected after it. The executor moves
 * the bytes between these and the driver session; where they come from and go to is decided here.
 *
 * - A runner (runner.ts) reaches the api over HTTP with the build-scoped token of the BuildJob
 *   message (`httpObjectSource`, `httpArtifactSink`); it never opens the database.
 * - The offline runner (`kiln run --objects DIR --artifacts DIR`) reads objects from one folder and
 *   writes artifacts to another (`directoryObjectSource`, `directoryArtifactSink`).
 *
 * Errors: `open` resolves null for an object that does not exist and throws for anything else;
 * `store` throws when the bytes could not be stored. The executor turns both into log lines: neither
 * fails a job.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { BuildJob } from './contract/messages.ts';

export interface ObjectItem {
  name: string;
  /** Where the manifest puts it: relative to the workspace, or absolute (see DriverSession.putFile). */
  dest: string;
}

export interface OpenedObject {
  size: number;
  /** Destroyed by the caller once placed (or not). */
  content: Readable;
}

export interface ObjectSource {
  /** In manifest order. */
  readonly items: readonly ObjectItem[];
  open(item: ObjectItem, signal: AbortSignal): Promise<OpenedObject | null>;
}

export interface ArtifactSink {
  /** A larger file is truncated to this many bytes. */
  readonly maxBytes: number;
  /** Stores exactly `size` bytes of `content` as artifact `name` of job `jobId`. */
  store(
    jobId: string,
    name: string,
    content: AsyncIterable<Buffer | Uint8Array>,
    size: number,
    signal: AbortSignal,
  ): Promise<void>;
}

/** Object names, as the api accepts them (Djinn's): no path can be made of one. */
export const OBJECT_NAME = /^[a-zA-Z0-9._-]+$/;

/**
 * A file name for an artifact: `/`, `\` and control characters become `_`, at most 255 characters;
 * `.` and `..` are not names.
 */
export function artifactFileName(name: string): string {
  const cleaned = [...name]
    .map((ch) =>
      ch === '/' || ch === '\\' || ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? '_' : ch,
    )
    .join('')
    .slice(0, 255);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? '_' : cleaned;
}

async function responseText(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').slice(0, 500);
}

/** Objects downloaded from the api: the BuildJob's `objects` section. */
export function httpObjectSource(section: NonNullable<BuildJob['objects']>): ObjectSource {
  const urls = new Map(section.items.map((item) => [item.name, item.url]));
  return {
    items: section.items.map(({ name, dest }) => ({ name, dest })),
    async open(item, signal) {
      const url = urls.get(item.name);
      if (!url) return null;
      const response = await fetch(url, { headers: { authorization: `Bearer ${section.token}` }, signal });
      if (response.status === 404) {
        await response.body?.cancel();
        return null;
      }
      if (!response.ok || !response.body) {
        const text = (await response.text().catch(() => '')).slice(0, 500);
        throw new Error(`the api answered ${response.status}${text ? `: ${text}` : ''}`);
      }
      const size = Number(response.headers.get('content-length'));
      if (!Number.isSafeInteger(size) || size < 0) {
        await response.body.cancel();
        throw new Error('the api sent no Content-Length');
      }
      return { size, content: Readable.fromWeb(response.body as WebReadableStream<Uint8Array>) };
    },
  };
}

/** Artifacts uploaded to the api: the BuildJob's `artifacts` section. */
export function httpArtifactSink(buildId: string, section: NonNullable<BuildJob['artifacts']>): ArtifactSink {
  return {
    maxBytes: section.maxBytes,
    async store(jobId, name, content, size, signal) {
      const url = new URL(
        `${section.apiUrl.replace(/\/+$/, '')}/runner/builds/${encodeURIComponent(buildId)}/artifacts`,
      );
      url.searchParams.set('job', jobId);
      url.searchParams.set('name', name);
      const transport = url.protocol === 'https:' ? https : http;
      await new Promise<void>((resolve, reject) => {
        const request = transport.request(
          url,
          {
            method: 'POST',
            signal,
            headers: {
              authorization: `Bearer ${section.token}`,
              'content-type': 'application/octet-stream',
              'content-length': String(size),
            },
          },
          (response) => {
            if ((response.statusCode ?? 500) < 300) {
              response.resume();
              response.once('end', resolve);
              response.once('error', reject);
              return;
            }
            responseText(response).then(
              (text) =>
                reject(new Error(`the api answered ${response.statusCode}${text ? `: ${text}` : ''}`)),
              reject,
            );
          },
        );
        request.once('error', reject);
        pipeline(Readable.from(content), request).catch(reject);
      });
    },
  };
}

/** Objects read from a folder: `<dir>/<name>`. */
export function directoryObjectSource(dir: string, items: readonly ObjectItem[]): ObjectSource {
  return {
    items,
    async open(item) {
      if (!OBJECT_NAME.test(item.name)) return null;
      const path = join(dir, item.name);
      const found = await stat(path).catch(() => null);
      if (!found?.isFile()) return null;
      return { size: found.size, content: createReadStream(path) };
    },
  };
}

/** Artifacts written to a folder as `<dir>/<name>` (a later one of the same name replaces it). */
export function directoryArtifactSink(dir: string, maxBytes = Number.MAX_SAFE_INTEGER): ArtifactSink {
  return {
    maxBytes,
    async store(_jobId, name, content, size) {
      await mkdir(dir, { recursive: true });
      const target = join(dir, artifactFileName(name));
      const partial = `${target}.kiln-partial`;
      let written = 0;
      const counted = async function* () {
        for await (const chunk of content) {
          written += chunk.length;
          yield chunk;
        }
      };
      try {
        await pipeline(Readable.from(counted()), createWriteStream(partial));
        if (written !== size) throw new Error(`${written} bytes instead of ${size}`);
        await rename(partial, target);
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
    },
  };
}

/**
 * Sends a stored blob as an HTTP download: the whole file (200) or one byte range (206 with
 * Content-Range; RFC 9110 §14), Content-Disposition with the file's name, and the SHA-256 as ETag.
 * A range that cannot be satisfied, or a malformed `bytes=` range, is 416 with `Content-Range:
 * bytes *\/<size>`. Several ranges at once are not supported: the first satisfiable one is served.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import rangeParser from 'range-parser';
import type { ByteRange, FileStore } from './file-store.ts';

export interface Download {
  sha256: string;
  size: number;
  name: string;
  contentType: string;
}

/** `bytes=0-99`, `bytes=100-`, `bytes=-100` against `size`; 'invalid' for anything unsatisfiable. */
export function parseRange(header: string | undefined, size: number): ByteRange | 'invalid' | null {
  if (!header) return null;
  const ranges = rangeParser(size, header);
  if (ranges === -1 || ranges === -2) return 'invalid';
  // Other units are not ours: serve the whole file, as RFC 9110 lets a server do.
  if (ranges.type.trim().toLowerCase() !== 'bytes') return null;
  const { start, end } = ranges[0]!;
  return { start, end };
}

/** `attachment; filename="…"; filename*=UTF-8''…`, safe for any name. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export async function serveBlob(
  req: IncomingMessage,
  res: ServerResponse,
  store: FileStore,
  download: Download,
): Promise<void> {
  const headers: Record<string, string> = {
    'accept-ranges': 'bytes',
    'content-type': download.contentType,
    'content-disposition': contentDisposition(download.name),
    etag: `"${download.sha256}"`,
    'cache-control': 'private, no-cache',
    'x-content-type-options': 'nosniff',
  };
  const ifRange = req.headers['if-range'];
  const rangeHeader = ifRange && ifRange !== headers.etag ? undefined : req.headers.range;
  const range = parseRange(rangeHeader, download.size);
  if (range === 'invalid') {
    res
      .writeHead(416, { ...headers, 'content-range': `bytes */${download.size}`, 'content-length': '0' })
      .end();
    return;
  }
  const length = range ? range.end - range.start + 1 : download.size;
  const status = range ? 206 : 200;
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${download.size}`;
  headers['content-length'] = String(length);
  if (req.method === 'HEAD') {
    res.writeHead(status, headers).end();
    return;
  }
  // An empty file or range has nothing to stream (a read stream with end -1 would read it all).
  if (length === 0) {
    res.writeHead(status, headers).end();
    return;
  }
  const body = await store.get(download.sha256, range ?? undefined);
  if (!body) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('the stored file is gone\n');
    return;
  }
  res.writeHead(status, headers);
  await pipeline(body, res).catch(() => {
    // The client went away mid-download: nothing to tell anyone.
    res.destroy();
  });
}

/**
 * The web console's files, served by `kiln serve` from the same port as the API. `npm run build`
 * writes web/dist; every GET that is not /graphql or a health endpoint comes here:
 *   - a file of web/dist is served with its content type; hashed assets (/assets/*) are cached for a
 *     year (immutable), everything else is revalidated (no-cache + ETag);
 *   - a path that looks like a file but is missing is a 404 (a stale asset must not get index.html);
 *   - any other path gets index.html, so the console's routes (/builds/…) work on reload;
 *   - without web/dist, a page that says how to build the console.
 * Text files are gzipped when the client accepts it, once per file version, and kept in memory.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const DIST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../web/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Scripts and styles only from this origin; the API (HTTP and WebSocket) on the same one. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln</title><style>:root{color-scheme:light dark;font-family:system-ui,sans-serif}body{max-width:44rem;margin:3rem auto;padding:0 1rem;line-height:1.5}</style></head>
<body><h1>Kiln</h1><p>The web console is not built on this server: run <code>npm run build</code> and reload.
The API is at <code>/graphql</code> (HTTP and graphql-ws) with <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<p>Health: <a href="/healthz">/healthz</a> · readiness: <a href="/readyz">/readyz</a></p></body></html>`;

interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  gzip: Buffer | null;
  etag: string;
}

const cache = new Map<string, CachedFile>();

function load(file: string): CachedFile | null {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(file);
  } catch {
    return null;
  }
  if (!stat.isFile()) return null;
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === stat.mtimeMs && hit.size === stat.size) return hit;
  const body = readFileSync(file);
  const type = TYPES[path.extname(file)] ?? '';
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
  const entry: CachedFile = {
    mtimeMs: stat.mtimeMs,
    size: stat.size,
    body,
    gzip: compressible ? gzipSync(body) : null,
    etag: `"${createHash('sha1').update(body).digest('base64url').slice(0, 20)}"`,
  };
  cache.set(file, entry);
  return entry;
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  file: CachedFile,
  type: string,
  cacheControl: string,
) {
  const headers: Record<string, string> = {
    'content-type': type,
    'cache-control': cacheControl,
    etag: file.etag,
    'x-content-type-options': 'nosniff',
    vary: 'accept-encoding',
  };
  if (type.startsWith('text/html')) {
    headers['content-security-policy'] = CSP;
    headers['referrer-policy'] = 'same-origin';
  }
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  const gzip = file.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? file.gzip! : file.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = String(body.length);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Serves GET and HEAD requests for the console (see the file comment). */
export function serveConsole(req: IncomingMessage, res: ServerResponse, pathname: string, dist = DIST_DIR) {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad path');
    return;
  }
  const file = path.resolve(dist, `.${path.posix.normalize(`/${decoded}`)}`);
  const inside = file === dist || file.startsWith(dist + path.sep);
  const asset = inside && pathname !== '/' ? load(file) : null;
  if (asset) {
    const immutable = pathname.startsWith('/assets/');
    send(
      req,
      res,
      asset,
      TYPES[path.extname(file)] ?? 'application/octet-stream',
      immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    );
    return;
  }
  if (pathname.startsWith('/assets/') || /\.[a-z0-9]{1,8}$/i.test(pathname)) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found');
    return;
  }
  const index = load(path.join(dist, 'index.html'));
  if (!index) {
    res
      .writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      })
      .end(req.method === 'HEAD' ? undefined : NOT_BUILT);
    return;
  }
  send(req, res, index, TYPES['.html']!, 'no-cache');
}

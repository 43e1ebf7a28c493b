/**
 * What the console's browser tests share: the built console (built here when web/dist is missing or
 * older than its sources), Debian's Chromium driven by playwright-core (never a downloaded browser),
 * a real `kiln serve` + `kiln runner` on PostgreSQL and RabbitMQ, a TCP proxy that can drop every
 * connection, and the folder screenshots go to (CI keeps test-output/).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { deleteTopology } from '../../runner/broker/amqp/topology.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/db.ts';
import { type KilnProcess, spawnKiln, startServe } from '../testkit/processes.ts';
import { AMQP_URL, CHROMIUM_PATH } from '../testkit/services.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const WEB_DIR = path.join(ROOT, 'web');
export const DIST_DIR = path.join(WEB_DIR, 'dist');
export const SCREENSHOTS = path.join(ROOT, 'test-output/screenshots');

/** True when the printed schema has this Mutation/Query field (accounts land field by field). */
export function schemaHas(field: string): boolean {
  return new RegExp(`^\\s+${field}\\(`, 'm').test(readFileSync(path.join(ROOT, 'schema.graphql'), 'utf8'));
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Waits for a lock that only one test process holds at a time (mkdir is atomic). */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(
    os.tmpdir(),
    `kiln-${createHash('sha1').update(ROOT).digest('hex').slice(0, 8)}-${name}.lock`,
  );
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than two minutes belongs to a run that died.
      if (i > 600 || Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Builds web/dist with Vite's JS API unless it is newer than every source file. */
export async function ensureConsoleBuilt(): Promise<void> {
  await withLock('console-build', async () => {
    const built = path.join(DIST_DIR, 'index.html');
    const sources = Math.max(
      newestMtime(path.join(WEB_DIR, 'src')),
      statSync(path.join(WEB_DIR, 'index.html')).mtimeMs,
      statSync(path.join(WEB_DIR, 'vite.config.ts')).mtimeMs,
    );
    if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
    const { build } = await import('vite');
    await build({ configFile: path.join(WEB_DIR, 'vite.config.ts'), logLevel: 'warn' });
  });
}

/** Builds the log viewer's harness page (web/harness) into a temporary folder; returns it. */
export async function buildHarness(): Promise<string> {
  const out = await mkdtemp(path.join(os.tmpdir(), 'kiln-harness-'));
  const { build } = await import('vite');
  await build({
    configFile: path.join(WEB_DIR, 'vite.config.ts'),
    logLevel: 'warn',
    build: {
      outDir: out,
      emptyOutDir: true,
      sourcemap: false,
      rollupOptions: { input: path.join(WEB_DIR, 'harness/log-viewer.html') },
    },
  });
  return out;
}

export async function launchChromium(): Promise<Browser> {
  // launch() gives the browser a fresh, temporary --user-data-dir and removes it on close.
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return path.join(SCREENSHOTS, `${name}.png`);
}

/** A static server for a built folder, through the same code `kiln serve` uses for the console. */
export async function serveFolder(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const { serveConsole } = await import('../../api/web-console.ts');
  const server = http.createServer((req, res) => {
    serveConsole(req, res, new URL(req.url ?? '/', 'http://x').pathname, dir);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A TCP proxy in front of `target`; `drop()` cuts every open connection, as a flaky network would. */
export async function startProxy(
  target: string,
): Promise<{ url: string; drop(): number; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: hostname, port: Number(port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    drop() {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface Stack {
  url: string;
  token: string;
  /** A folder the builds' jobs and the test both see (the runner uses the os driver). */
  shared: string;
  /** serve's KILN_DATA_DIR. */
  dataDir: string;
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** KILN_SCHEDULE_MIN_SECONDS for serve (its default, 60, when absent): 1 lets a schedule fire every second. */
  scheduleMinSeconds?: number;
  /** KILN_ALLOW_PRIVATE_URLS=true for serve: webhooks may post to a receiver on 127.0.0.1. */
  allowPrivateUrls?: boolean;
  /** KILN_SMTP_URL for serve: mail goes to a local SMTP server of the test. */
  smtpUrl?: string;
}

/** `kiln serve` and one `kiln runner` on a fresh database and broker prefix. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const token = `kiln_${randomBytes(16).toString('hex')}`;
  const prefix = `e2e-${randomBytes(4).toString('hex')}`;
  const db: TestDatabase = await createTestDatabase();
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-'));
  const shared = path.join(work, 'shared');
  mkdirSync(shared);
  mkdirSync(path.join(work, 'workspaces'));
  const env = {
    KILN_DATABASE_URL: db.url,
    KILN_AMQP_URL: AMQP_URL,
    KILN_BROKER_PREFIX: prefix,
    KILN_BOOTSTRAP_TOKEN: token,
    KILN_DATA_DIR: path.join(work, 'data'),
    KILN_WORKSPACE_DIR: path.join(work, 'workspaces'),
  };
  const processes: KilnProcess[] = [];
  try {
    const serve = await startServe('serve', {
      ...env,
      ...(opts.scheduleMinSeconds ? { KILN_SCHEDULE_MIN_SECONDS: String(opts.scheduleMinSeconds) } : {}),
      ...(opts.allowPrivateUrls ? { KILN_ALLOW_PRIVATE_URLS: 'true' } : {}),
      ...(opts.smtpUrl ? { KILN_SMTP_URL: opts.smtpUrl } : {}),
    });
    processes.push(serve);
    const runner = spawnKiln('runner', ['runner'], {
      ...env,
      KILN_RUNNER_NAME: 'e2e',
      KILN_RUNNER_CONCURRENCY: '2',
    });
    processes.push(runner);
    await runner.waitFor((l) => l.msg === 'runner started');
    return {
      url: serve.url,
      token,
      shared,
      dataDir: env.KILN_DATA_DIR,
      async gql<T>(query: string, variables: Record<string, unknown> = {}) {
        const res = await fetch(`${serve.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query, variables }),
        });
        const body = (await res.json()) as { data?: T; errors?: unknown[] };
        if (body.errors) throw new Error(JSON.stringify(body.errors));
        return body.data!;
      },
      async stop() {
        await Promise.all(processes.map((p) => p.stop(5_000)));
        await deleteTopology(AMQP_URL, prefix, ['default']).catch(() => {});
        await db.drop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(processes.map((p) => p.stop(2_000)));
    await db.drop();
    throw err;
  }
}

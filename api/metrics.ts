/**
 * `GET /metrics`: serve's Prometheus metrics (prom-client, a registry of its own per app), protected
 * by KILN_METRICS_TOKEN when it is set (`Authorization: Bearer …`; 401 without it).
 *
 * - From the database at each scrape: builds by status, builds queued per queue, runners online (a
 *   heartbeat in the last 30 s), dead letters kept.
 * - Counted by this serve: log lines and bytes it stored, HTTP requests and their durations by
 *   method, route and status, GraphQL operations and their durations by operation name and type, the
 *   WebSocket connections open, and the process's own (CPU, memory, event loop lag).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { DefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RunnerEvent } from '../runner/contract/messages.ts';
import type { Routes } from './http/routes.ts';

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A runner heard from this recently is online. */
const ONLINE_WITHIN_S = 30;

export interface Metrics {
  registry: Registry;
  /** After each stored batch of runner events. */
  stored(events: RunnerEvent[]): void;
  /** One HTTP request answered. */
  http(method: string, route: string, status: number, seconds: number): void;
  /** Times GraphQL operations by name. */
  yogaPlugin(): Plugin;
}

export function createMetrics(deps: { orm: MikroORM; webSockets: () => number }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kiln_' });
  const db = () => deps.orm.em.fork();
  new Gauge({
    name: 'kiln_builds',
    help: 'Builds by status.',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db().execute<{ status: string; n: string }[]>(
        'select status, count(*) as n from builds group by status',
      );
      for (const r of rows) this.set({ status: r.status }, Number(r.n));
    },
  });
  new Gauge({
    name: 'kiln_builds_queued',
    help: 'Builds waiting for a runner, by queue.',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db().execute<{ queue: string; n: string }[]>(
        `select queue, count(*) as n from builds where status = 'QUEUED' group by queue`,
      );
      for (const r of rows) this.set({ queue: r.queue }, Number(r.n));
    },
  });
  new Gauge({
    name: 'kiln_runners_online',
    help: `Runners heard from in the last ${ONLINE_WITHIN_S} s.`,
    registers: [registry],
    async collect() {
      const [row] = await db().execute<{ n: string }[]>(
        `select count(*) as n from runners where last_seen_at > now() - interval '${ONLINE_WITHIN_S} seconds'`,
      );
      this.set(Number(row?.n ?? 0));
    },
  });
  new Gauge({
    name: 'kiln_dead_letters',
    help: 'Messages the broker dead-lettered that are kept for a look (dead_letters).',
    registers: [registry],
    async collect() {
      const [row] = await db().execute<{ n: string }[]>('select count(*) as n from dead_letters');
      this.set(Number(row?.n ?? 0));
    },
  });
  new Gauge({
    name: 'kiln_websockets_open',
    help: 'graphql-ws connections open on this serve (live subscriptions ride on them).',
    registers: [registry],
    collect() {
      this.set(deps.webSockets());
    },
  });
  const lines = new Counter({
    name: 'kiln_log_lines_stored_total',
    help: 'Log lines this serve stored.',
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'kiln_log_bytes_stored_total',
    help: 'Bytes of log lines this serve stored.',
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'kiln_http_request_duration_seconds',
    help: 'HTTP requests answered, by method, route and status.',
    labelNames: ['method', 'route', 'status'],
    buckets: SECONDS,
    registers: [registry],
  });
  const graphqlDuration = new Histogram({
    name: 'kiln_graphql_operation_duration_seconds',
    help: 'GraphQL queries and mutations over HTTP, by operation name and type.',
    labelNames: ['operation', 'type'],
    buckets: SECONDS,
    registers: [registry],
  });

  return {
    registry,
    stored(events) {
      for (const e of events) {
        if (e.type !== 'log.chunk') continue;
        lines.inc(e.lines.length);
        bytes.inc(e.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
      }
    },
    http(method, route, status, seconds) {
      httpDuration.observe({ method, route, status: String(status) }, seconds);
    },
    yogaPlugin(): Plugin {
      return {
        onExecute({ args }) {
          const started = performance.now();
          const operation = (args.document.definitions as readonly DefinitionNode[]).find(
            (d) => d.kind === 'OperationDefinition',
          );
          const name =
            args.operationName ?? (operation && 'name' in operation ? operation.name?.value : undefined);
          const type = operation && 'operation' in operation ? operation.operation : 'unknown';
          return {
            onExecuteDone() {
              graphqlDuration.observe(
                { operation: (name ?? 'anonymous').slice(0, 100), type },
                (performance.now() - started) / 1000,
              );
            },
          };
        },
      };
    },
  };
}

/** The first segment of a path, as a route label that cannot grow without bound. */
export function routeLabel(pathname: string): string {
  const first = pathname.split('/')[1] ?? '';
  return [
    'graphql',
    'hooks',
    'badges',
    'builds',
    'runner',
    'artifacts',
    'objects',
    'metrics',
    'healthz',
    'readyz',
    'cctray.xml',
  ].includes(first)
    ? `/${first}`
    : '/console';
}

export function addMetricsRoute(routes: Routes, metrics: Metrics, token: string | null): void {
  routes.add(['GET'], '/metrics', async (req: IncomingMessage, res: ServerResponse) => {
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
        .end(JSON.stringify({ error: 'metrics need Authorization: Bearer <KILN_METRICS_TOKEN>' }));
      return;
    }
    const body = await metrics.registry.metrics();
    res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
  });
}

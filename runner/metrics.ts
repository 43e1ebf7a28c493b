/**
 * A runner's Prometheus metrics, on `KILN_METRICS_PORT` when it is set (`GET /metrics`, bearer
 * KILN_METRICS_TOKEN when that is set): builds it started and finished by status, builds running,
 * log lines and bytes it sent, whether its broker connection is up, and the process's own. Counted
 * from the events the runner publishes, by wrapping its broker's `publish`: nothing in the build path
 * changes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Broker } from './contract/broker.ts';
import type { RunnerEvent } from './contract/messages.ts';

export interface RunnerMetrics {
  registry: Registry;
  /** The broker, its published events counted. */
  meter(broker: Broker): Broker;
}

export function createRunnerMetrics(isReady: () => boolean): RunnerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kiln_runner_' });
  const running = new Set<string>();
  const started = new Counter({
    name: 'kiln_runner_builds_started_total',
    help: 'Builds this runner started (each attempt).',
    registers: [registry],
  });
  const finished = new Counter({
    name: 'kiln_runner_builds_finished_total',
    help: 'Builds this runner finished, by status.',
    labelNames: ['status'],
    registers: [registry],
  });
  new Gauge({
    name: 'kiln_runner_builds_running',
    help: 'Builds running on this runner now.',
    registers: [registry],
    collect() {
      this.set(running.size);
    },
  });
  const lines = new Counter({
    name: 'kiln_runner_log_lines_sent_total',
    help: 'Log lines this runner published.',
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'kiln_runner_log_bytes_sent_total',
    help: 'Bytes of log lines this runner published.',
    registers: [registry],
  });
  new Gauge({
    name: 'kiln_runner_broker_connected',
    help: '1 while the broker connection is up.',
    registers: [registry],
    collect() {
      this.set(isReady() ? 1 : 0);
    },
  });

  const count = (events: readonly RunnerEvent[]) => {
    for (const e of events) {
      if (e.type === 'build.started') {
        if (!running.has(`${e.buildId}:${e.attempt}`)) started.inc();
        running.add(`${e.buildId}:${e.attempt}`);
      } else if (e.type === 'build.finished') {
        if (running.delete(`${e.buildId}:${e.attempt}`)) finished.inc({ status: e.status });
      } else if (e.type === 'build.released') {
        running.delete(`${e.buildId}:${e.attempt}`);
      } else if (e.type === 'log.chunk') {
        lines.inc(e.lines.length);
        bytes.inc(e.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
      }
    }
  };

  return {
    registry,
    meter(broker) {
      return new Proxy(broker, {
        get(target, prop, receiver) {
          if (prop !== 'publish') return Reflect.get(target, prop, receiver);
          return async (kind: Parameters<Broker['publish']>[0], messages: readonly unknown[]) => {
            await target.publish(kind, messages as never);
            if (kind === 'event') count(messages as RunnerEvent[]);
          };
        },
      });
    },
  };
}

/** Serves `GET /metrics` on `port` (0: any free one); resolves once it listens. */
export async function serveRunnerMetrics(
  registry: Registry,
  opts: { port: number; host?: string; token: string | null },
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"GET /metrics"}');
      return;
    }
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) {
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
        .end('{"error":"metrics need Authorization: Bearer <KILN_METRICS_TOKEN>"}');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(opts.port, opts.host ?? '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

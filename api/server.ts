/**
 * The `serve` process as a value: `buildApp(deps)` wires the GraphQL API (HTTP and graphql-ws on
 * /graphql), health endpoints and background services around a database and a broker it is given;
 * `start` listens, `stop` drains (stops accepting, closes subscriptions, stops consumers).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError, createYoga, type YogaLogger } from 'graphql-yoga';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Broker, Consumer } from '../runner/contract/broker.ts';
import type { Context } from './context.ts';
import type { Database } from './db/orm.ts';
import { startIngester } from './events/ingester.ts';
import { PubSub } from './events/pubsub.ts';
import { startOutboxSweeper } from './jobs/outbox-sweeper.ts';
import { startWatchdog } from './jobs/watchdog.ts';
import { BuildService } from './modules/builds/builds.service.ts';
import { authenticate } from './modules/tokens/tokens.service.ts';
import { schema } from './schema.ts';
import { consoleIndex } from './web-console.ts';

export interface AppDeps {
  database: Database;
  broker: Broker;
  logger: Logger;
  /** Driver types builds may ask for (KILN_DRIVERS). */
  drivers: readonly string[];
}

export interface App {
  start(port: number, host?: string): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
  /** For tests: GraphQL over HTTP without a socket. */
  fetch: (request: Request) => Promise<Response> | Response;
  services: Context['services'];
  pubsub: PubSub;
  /** The periodic jobs, run now (tests, operators); they also run on their timers once started. */
  maintenance: {
    /** Republishes build jobs whose outbox rows stayed unpublished; returns how many. */
    sweepOutbox(): Promise<number>;
    /** Times out builds of runners that went silent; returns their ids. */
    checkLostRunners(): Promise<string[]>;
  };
}

function unauthenticated(): GraphQLError {
  return createGraphQLError('a valid token is required: send `Authorization: Bearer <token>`', {
    extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
  });
}

function yogaLogger(logger: Logger): YogaLogger {
  return {
    debug: (...args) => logger.debug({ args }, 'graphql'),
    info: (...args) => logger.info({ args }, 'graphql'),
    warn: (...args) => logger.warn({ args }, 'graphql'),
    // Unexpected errors arrive here once, masked for the client.
    error: (...args) => logger.error({ err: args[0], more: args.slice(1) }, 'graphql error'),
  };
}

export async function buildApp(deps: AppDeps): Promise<App> {
  const { database, broker, logger } = deps;
  const orm = database.orm;
  const pubsub = new PubSub();
  const services = { builds: new BuildService({ broker, drivers: deps.drivers, logger }) };

  async function contextFor(authorization: string | null | undefined): Promise<Context> {
    const em = orm.em.fork();
    const viewer = await authenticate(em, authorization);
    if (!viewer) throw unauthenticated();
    return { em, orm, viewer, pubsub, services, logger };
  }

  const yoga = createYoga<{ req?: IncomingMessage }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    logging: yogaLogger(logger),
    landingPage: false,
    context: ({ request }) => contextFor(request.headers.get('authorization')),
  });

  const consumers: Consumer[] = [];
  const sweeper = startOutboxSweeper({ orm, builds: services.builds, logger });
  const watchdog = startWatchdog({ orm, broker, logger });
  let server: Server | null = null;
  let wss: WebSocketServer | null = null;

  async function handleHttp(req: IncomingMessage, res: import('node:http').ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (url.pathname === '/readyz') {
      const db = await database.isReady();
      const mq = broker.isReady();
      res
        .writeHead(db && mq ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ database: db, broker: mq }));
      return;
    }
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(consoleIndex());
      return;
    }
    return yoga.handle(req, res);
  }

  return {
    fetch: (request) => yoga.fetch(request),
    services,
    pubsub,
    maintenance: { sweepOutbox: () => sweeper.sweep(), checkLostRunners: () => watchdog.check() },
    async start(port, host = '127.0.0.1') {
      consumers.push(...(await startIngester({ orm, broker, pubsub, logger })));
      sweeper.start();
      watchdog.start();
      server = createServer((req, res) => {
        handleHttp(req, res).catch((err) => {
          logger.error({ err }, 'request failed');
          if (!res.headersSent) res.writeHead(500).end();
        });
      });
      wss = new WebSocketServer({ server, path: '/graphql' });
      useServer<Record<string, unknown>, { request: IncomingMessage }>(
        {
          execute: (args: ExecutionArgs & { rootValue?: unknown }) =>
            (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
          subscribe: (args: ExecutionArgs & { rootValue?: unknown }) =>
            (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
          onSubscribe: async (ctx, _id, payload) => {
            const enveloped = yoga.getEnveloped({ req: ctx.extra.request, params: payload });
            const auth = ctx.connectionParams?.authorization;
            let contextValue: Context;
            try {
              contextValue = await contextFor(typeof auth === 'string' ? auth : null);
            } catch (err) {
              return [err as GraphQLError];
            }
            let document: ReturnType<typeof enveloped.parse>;
            try {
              document = enveloped.parse(payload.query);
            } catch (err) {
              return [err as GraphQLError];
            }
            const errors = enveloped.validate(enveloped.schema, document);
            if (errors.length > 0) return errors;
            return {
              schema: enveloped.schema,
              document,
              operationName: payload.operationName,
              variableValues: payload.variables,
              contextValue,
              rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
            };
          },
        },
        wss,
      );
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      const actual = (server.address() as AddressInfo).port;
      return { url: `http://${host}:${actual}`, port: actual };
    },
    async stop() {
      sweeper.stop();
      watchdog.stop();
      for (const c of consumers.splice(0)) await c.cancel().catch(() => {});
      if (wss) {
        for (const client of wss.clients) client.close(1001, 'server shutting down');
        await new Promise<void>((resolve) => wss!.close(() => resolve()));
      }
      if (server) {
        const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
        server.closeIdleConnections();
        const force = setTimeout(() => server?.closeAllConnections(), 5_000);
        await closed;
        clearTimeout(force);
      }
    },
  };
}

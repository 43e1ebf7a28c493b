/**
 * The `serve` process as a value: `buildApp(deps)` wires the GraphQL API (HTTP and graphql-ws on
 * /graphql), the artifact and runner endpoints, health endpoints and background services (ingester,
 * outbox sweeper, watchdog, curator) around a database, a broker and a file store it is given;
 * `start` listens, `stop` drains (stops accepting, closes subscriptions, stops consumers and jobs).
 * Every HTTP endpoint is one registration in the route table (http/routes.ts), the web console last.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaLogger } from 'graphql-yoga';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Broker, Consumer } from '../runner/contract/broker.ts';
import { Access } from './auth/access.ts';
import { type Auth, authenticate, type Credentials, CSRF_HEADER, reuseAuth } from './auth/principal.ts';
import { createRateLimiter } from './auth/rate-limit.ts';
import type { SecretBox } from './auth/secret-box.ts';
import type { Context } from './context.ts';
import type { Database } from './db/orm.ts';
import { startIngester } from './events/ingester.ts';
import { PubSub } from './events/pubsub.ts';
import type { FileStore } from './files/file-store.ts';
import { subscriptionErrors, useDocumentLimits } from './graphql-limits.ts';
import { readBody } from './http/body.ts';
import { createRoutes } from './http/routes.ts';
import { createCurator } from './jobs/curator.ts';
import { createOutboxSweeper } from './jobs/outbox-sweeper.ts';
import { every, type PeriodicJob } from './jobs/periodic.ts';
import { createWatchdog } from './jobs/watchdog.ts';
import { addMetricsRoute, createMetrics, routeLabel } from './metrics.ts';
import { addFilesRoutes } from './modules/artifacts/artifacts.http.ts';
import {
  ArtifactService,
  type CurateResult,
  DEFAULT_ARTIFACT_MAX_BYTES,
} from './modules/artifacts/artifacts.service.ts';
import { BuildState } from './modules/builds/build-state.ts';
import { BuildService } from './modules/builds/builds.service.ts';
import { addRawLogRoute } from './modules/builds/raw-log.http.ts';
import { MailService } from './modules/mail/mail.service.ts';
import { NamespaceService } from './modules/namespaces/namespaces.service.ts';
import { addBadgeRoutes } from './modules/notifications/badges.ts';
import { addCctrayRoutes } from './modules/notifications/cctray.ts';
import { DEFAULT_OBJECT_MAX_BYTES, ObjectService } from './modules/objects/objects.service.ts';
import { addHookRoutes } from './modules/repositories/forge-events.http.ts';
import { ForgeEventService } from './modules/repositories/forge-events.service.ts';
import { type CheckResult, Poller } from './modules/repositories/poller.ts';
import { RepositoryService } from './modules/repositories/repositories.service.ts';
import { StatusReporter } from './modules/repositories/statuses.ts';
import { type Firing, ScheduleService } from './modules/schedules/schedules.service.ts';
import { createScheduleTicker, type ScheduleTicker } from './modules/schedules/ticker.ts';
import { SESSION_TTL_MS, UserService } from './modules/users/users.service.ts';
import { WebhookRunner, WebhookService } from './modules/webhooks/webhooks.service.ts';
import { schema } from './schema.ts';
import { serveConsole } from './web-console.ts';

export interface AppDeps {
  database: Database;
  broker: Broker;
  logger: Logger;
  secrets: SecretBox;
  /** Driver types builds may ask for (KILN_DRIVERS). */
  drivers: readonly string[];
  /** Whether anyone may sign up (KILN_SIGNUP); the first user may always. */
  signup?: boolean;
  /** Where the admin's token is saved on the first start, as the sign-in page names it. */
  bootstrapTokenFile?: string;
  /** Requests a token (or an anonymous address) may make per minute; 0: no limit. */
  rateLimit?: number;
  sessionTtlMs?: number;
  /** Where the bytes of objects and artifacts are kept. */
  files: FileStore;
  /** Largest object upload (KILN_OBJECT_MAX_BYTES); default 5 MiB. */
  objectMaxBytes?: number;
  /** Largest artifact (KILN_ARTIFACT_MAX_BYTES); default 50 MiB. */
  artifactMaxBytes?: number;
  /** The URL runners reach this api at (KILN_PUBLIC_URL); default: the URL it listens on. */
  publicUrl?: string;
  /** Largest GraphQL request body but multipart uploads (KILN_MAX_BODY_BYTES); default 1 MiB. */
  maxBodyBytes?: number;
  /** Where repositories' bare mirrors are kept; default: a directory of its own under the system's temp dir. */
  mirrorsDir?: string;
  /** KILN_POLL_MIN_SECONDS; default 10. */
  pollMinSeconds?: number;
  /** KILN_POLL_TIMEOUT_SECONDS in ms; default 60 s. */
  pollTimeoutMs?: number;
  /** KILN_SCHEDULE_MIN_SECONDS; default 60. */
  scheduleMinSeconds?: number;
  /** The longest the schedule ticker sleeps between two looks at the due schedules; default 1 s. */
  scheduleMaxSleepMs?: number;
  /** KILN_ALLOW_PRIVATE_URLS: outgoing webhooks may reach loopback and private addresses. */
  allowPrivateUrls?: boolean;
  /** KILN_SMTP_URL; empty or absent: no mail. */
  smtpUrl?: string;
  /** KILN_MAIL_FROM. */
  mailFrom?: string;
  /** KILN_METRICS_TOKEN: /metrics answers only `Authorization: Bearer <it>`; none: anyone. */
  metricsToken?: string | null;
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
    /** One curator pass: deletes artifacts past their owners' cleanup limits, and unused blobs. */
    curate(): Promise<CurateResult>;
    /** Checks the repositories due for a poll, and waits for those checks. */
    pollRepositories(): Promise<CheckResult[]>;
    /** Reports to forges the builds whose status they have not been told; returns how many went well. */
    reportStatuses(): Promise<number>;
    /** Claims and fires the due schedule slots (and those a dead replica left); says what became of each. */
    fireSchedules(): Promise<Firing[]>;
    /** Sends the due webhook deliveries now; returns how many were delivered. */
    sendWebhooks(): Promise<number>;
    /** Mails about the finished builds not yet considered; returns how many mails went out. */
    mailBuilds(): Promise<number>;
  };
  /** The same jobs as scheduled (jobs/periodic.ts): their ticks honour the overlap guard and leadership. */
  jobs: {
    outboxSweeper: PeriodicJob;
    watchdog: PeriodicJob;
    curator: PeriodicJob;
    forgeEvents: PeriodicJob;
    repositoryPoller: PeriodicJob;
    commitStatuses: PeriodicJob;
    /** Fires due schedules; on every replica (the database decides which fires a slot). */
    scheduler: ScheduleTicker;
    /** Runs the active webhooks' subscriptions, storing each result (one serve: the leader). */
    webhookSubscriptions: PeriodicJob;
    /** Sends due webhook deliveries (every serve; each delivery is claimed by one). */
    webhookSender: PeriodicJob;
    /** Mails about finished builds (one serve: the leader). */
    buildMail: PeriodicJob;
  };
}

/** Room for the other parts of a multipart upload (operations, map) besides the file. */
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

/** Default of KILN_MAX_BODY_BYTES: far above any query a client writes, far below a memory problem. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * Largest graphql-ws message. `ws` would take 100 MiB; a subscription or a query never needs more
 * than an HTTP body does. A larger frame closes its connection (1009), and only that one.
 */
export const WS_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * How long a WebSocket's check of its credentials holds for new subscriptions on it: a token revoked
 * meanwhile is refused on that connection at most this much later (and at once on any other).
 */
const WS_AUTH_TTL_MS = 5_000;

function yogaLogger(logger: Logger): YogaLogger {
  return {
    debug: (...args) => logger.debug({ args }, 'graphql'),
    info: (...args) => logger.info({ args }, 'graphql'),
    warn: (...args) => logger.warn({ args }, 'graphql'),
    // Unexpected errors arrive here once, masked for the client.
    error: (...args) => logger.error({ err: args[0], more: args.slice(1) }, 'graphql error'),
  };
}

function isMultipart(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/');
}

/** The largest too-large body that is read (and dropped) before its 413, so the client gets the answer. */
const DRAIN_MAX_BYTES = 16 * 1024 * 1024;

/** Reads the rest of a request and drops it; gives up after 10 s (the 413 then closes it anyway). */
function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 10_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    req.on('end', done).on('error', done).on('close', done).resume();
  });
}

/** 413 as a GraphQL response; the connection closes, so the rest of the body is never read. */
function tooLarge(res: ServerResponse, message: string) {
  res
    .writeHead(413, { 'content-type': 'application/json', connection: 'close' })
    .end(JSON.stringify({ errors: [{ message, extensions: { code: 'TOO_LARGE' } }] }));
}

export async function buildApp(deps: AppDeps): Promise<App> {
  const { database, broker, logger } = deps;
  const orm = database.orm;
  const pubsub = new PubSub();
  const namespaces = new NamespaceService();
  const objectMaxBytes = deps.objectMaxBytes ?? DEFAULT_OBJECT_MAX_BYTES;
  const artifactMaxBytes = deps.artifactMaxBytes ?? DEFAULT_ARTIFACT_MAX_BYTES;
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const objects = new ObjectService({ store: deps.files, maxBytes: objectMaxBytes });
  const artifacts = new ArtifactService({ store: deps.files, maxBytes: artifactMaxBytes });
  let listenUrl: string | null = null;
  const buildState = new BuildState({ broker, logger });
  const builds = new BuildService({
    broker,
    state: buildState,
    drivers: deps.drivers,
    logger,
    secrets: deps.secrets,
    namespaces,
    objects,
    apiUrl: () => deps.publicUrl ?? listenUrl ?? 'http://127.0.0.1:8080',
    artifactMaxBytes,
  });
  const repositories = new RepositoryService({
    orm,
    builds,
    secrets: deps.secrets,
    logger,
    mirrorsDir: deps.mirrorsDir ?? path.join(os.tmpdir(), `kiln-mirrors-${process.pid}`),
    publicUrl: () => deps.publicUrl ?? listenUrl ?? 'http://127.0.0.1:8080',
    pollMinSeconds: deps.pollMinSeconds ?? 10,
  });
  const poller = new Poller({ orm, repositories, logger, timeoutMs: deps.pollTimeoutMs ?? 60_000 });
  let webhookSubscriptions: PeriodicJob | null = null;
  let webhookSender: PeriodicJob | null = null;
  const scheduler = createScheduleTicker({
    service: () => services.schedules,
    logger,
    maxSleepMs: deps.scheduleMaxSleepMs,
  });
  const services = {
    builds,
    repositories,
    schedules: new ScheduleService({
      orm,
      builds,
      repositories,
      logger,
      minSeconds: deps.scheduleMinSeconds ?? 60,
      onChange: () => scheduler.wake(),
    }),
    mail: new MailService({
      orm,
      logger,
      smtpUrl: deps.smtpUrl ?? '',
      from: deps.mailFrom ?? 'Kiln <kiln@localhost>',
      publicUrl: () => deps.publicUrl ?? listenUrl ?? 'http://127.0.0.1:8080',
    }),
    webhooks: new WebhookService({
      orm,
      secrets: deps.secrets,
      logger,
      schema: () => schema,
      allowPrivateUrls: deps.allowPrivateUrls ?? false,
      onDelivery: () => void webhookSender?.tick(),
      onChange: () => void webhookSubscriptions?.tick(),
    }),
    forgeEvents: new ForgeEventService({
      orm,
      repositories,
      secrets: deps.secrets,
      logger,
      checkNow: (repo) =>
        poller
          .check(repo)
          .catch((err: unknown) => logger.warn({ err, repository: repo.id }, 'a check failed')),
    }),
    namespaces,
    objects,
    artifacts,
    users: new UserService({
      signup: deps.signup ?? true,
      sessionTtlMs: deps.sessionTtlMs ?? SESSION_TTL_MS,
      bootstrapTokenFile: deps.bootstrapTokenFile ?? null,
    }),
  };
  const limiter = createRateLimiter(deps.rateLimit ?? 0);
  let wss: WebSocketServer | null = null;
  const metrics = createMetrics({ orm, webSockets: () => wss?.clients.size ?? 0 });
  /** By graphql-ws connection: its credentials' last check. */
  const checkedSockets = new WeakMap<object, { auth: Auth; at: number }>();
  const cookiesOf = new WeakMap<Request, string[]>();

  async function contextFor(
    credentials: Credentials,
    clientKey: string,
    secure: boolean,
    known?: Auth,
  ): Promise<Context> {
    const em = orm.em.fork();
    const auth = known ? reuseAuth(em, known) : await authenticate(em, credentials);
    limiter.take(auth.tokenId ?? `anonymous:${clientKey}`);
    const access = new Access(em, auth);
    return { em, orm, auth, access, secrets: deps.secrets, pubsub, services, logger, setCookies: [], secure };
  }

  const yoga = createYoga<{ req?: IncomingMessage }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    logging: yogaLogger(logger),
    landingPage: false,
    plugins: [
      useDocumentLimits(),
      metrics.yogaPlugin(),
      {
        // Cookies set by resolvers (logIn, logOut) go out with the response.
        onResponse: ({ request, response }) => {
          for (const cookie of cookiesOf.get(request) ?? []) response.headers.append('set-cookie', cookie);
        },
      },
    ],
    context: async ({ request, req }) => {
      const ctx = await contextFor(
        {
          authorization: request.headers.get('authorization'),
          cookie: request.headers.get('cookie'),
          http: { method: request.method, csrf: request.headers.get(CSRF_HEADER) },
        },
        req?.socket.remoteAddress ?? 'local',
        new URL(request.url).protocol === 'https:',
      );
      cookiesOf.set(request, ctx.setCookies);
      return ctx;
    },
  });

  const consumers: Consumer[] = [];
  const sweeper = createOutboxSweeper({ orm, builds: services.builds, logger });
  const watchdog = createWatchdog({ orm, buildState, logger });
  const curator = createCurator({ orm, artifacts, logger, databaseUrl: database.url });
  const forgeEvents = every({
    name: 'forge-events',
    intervalMs: 30_000,
    run: () => services.forgeEvents.workLeftOver(),
    logger,
    leaderOnly: { databaseUrl: database.url },
  });
  const repositoryPoller = every({
    name: 'repository-poller',
    intervalMs: 1_000,
    // Starts the due checks and returns: a slow remote holds up no other repository's check.
    run: () => poller.launchDue(),
    logger,
    leaderOnly: { databaseUrl: database.url },
  });
  const statuses = new StatusReporter({
    orm,
    secrets: deps.secrets,
    logger,
    publicUrl: () => deps.publicUrl ?? listenUrl ?? 'http://127.0.0.1:8080',
  });
  const commitStatuses = every({
    name: 'commit-statuses',
    intervalMs: 2_000,
    run: () => statuses.reportDue(),
    logger,
    leaderOnly: { databaseUrl: database.url },
  });
  // The webhooks' subscriptions run on one serve (they would each deliver every result otherwise);
  // a serve that stops leading stops its subscriptions at its sender's next tick.
  const webhookRunner = new WebhookRunner({
    orm,
    service: () => services.webhooks,
    schema: () => schema,
    logger,
    contextFor: (auth) => {
      const em = orm.em.fork();
      return {
        em,
        orm,
        auth,
        access: new Access(em, auth),
        secrets: deps.secrets,
        pubsub,
        services,
        logger,
        setCookies: [],
        secure: false,
      };
    },
  });
  let ledWebhooksAt = 0;
  webhookSubscriptions = every({
    name: 'webhook-subscriptions',
    intervalMs: 2_000,
    run: async () => {
      ledWebhooksAt = Date.now();
      await webhookRunner.reconcile();
    },
    logger,
    leaderOnly: { databaseUrl: database.url },
  });
  webhookSender = every({
    name: 'webhook-sender',
    intervalMs: 1_000,
    run: async () => {
      if (webhookRunner.size > 0 && Date.now() - ledWebhooksAt > 6_000) webhookRunner.stopAll();
      await services.webhooks.sendDue();
    },
    logger,
  });
  const buildMail = every({
    name: 'build-mail',
    intervalMs: 2_000,
    run: () => services.mail.mailFinished(),
    logger,
    leaderOnly: { databaseUrl: database.url },
  });
  const jobs = {
    outboxSweeper: sweeper.job,
    watchdog: watchdog.job,
    curator: curator.job,
    forgeEvents,
    repositoryPoller,
    commitStatuses,
    scheduler,
    webhookSubscriptions,
    webhookSender,
    buildMail,
  };
  const routes = createRoutes();
  routes
    .add(['GET', 'HEAD'], '/healthz', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    })
    .add(['GET', 'HEAD'], '/readyz', async (_req, res) => {
      const db = await database.isReady();
      const mq = broker.isReady();
      res
        .writeHead(db && mq ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ database: db, broker: mq }));
    });
  addFilesRoutes(routes, {
    orm,
    secrets: deps.secrets,
    artifacts,
    objects,
    logger,
    contextOf: (req) =>
      contextFor(
        {
          authorization: req.headers.authorization ?? null,
          cookie: req.headers.cookie ?? null,
          http: {
            method: req.method ?? 'GET',
            csrf: (req.headers[CSRF_HEADER] as string | undefined) ?? null,
          },
        },
        req.socket.remoteAddress ?? 'local',
        false,
      ),
  });

  /** GraphQL over HTTP, its request body bounded before yoga reads it. */
  async function graphqlOverHttp(req: IncomingMessage, res: ServerResponse) {
    if (req.method === 'POST' && isMultipart(req)) {
      // yoga reads a multipart body whole before resolvers run: bound it by the upload limit.
      const length = Number(req.headers['content-length']);
      if (!Number.isFinite(length)) {
        res
          .writeHead(411, { 'content-type': 'application/json' })
          .end('{"errors":[{"message":"a multipart request needs a Content-Length"}]}');
        return;
      }
      if (length > objectMaxBytes + MULTIPART_OVERHEAD_BYTES) {
        tooLarge(res, `an upload is at most ${objectMaxBytes} bytes`);
        return;
      }
    } else if (req.method === 'POST') {
      // yoga would read any body whole, however large, and parse it: read it here, within bounds.
      const tooLong = `a request body is at most ${maxBodyBytes} bytes`;
      const declared = Number(req.headers['content-length']);
      if (declared > maxBodyBytes) {
        // A client still sending when the answer closes the connection sees a broken pipe, not the
        // 413: a body of a declared, bounded size is read and dropped first (never parsed or kept).
        if (declared <= DRAIN_MAX_BYTES) await drain(req);
        tooLarge(res, tooLong);
        return;
      }
      const body = await readBody(req, maxBodyBytes);
      if (!body.ok) {
        if (body.reason === 'too large') tooLarge(res, tooLong);
        else res.destroy();
        return;
      }
      // The way body parsers hand a body read already to whatwg-node (yoga's server adapter); a
      // stream, since a Buffer there would be inspected key by key.
      Object.assign(req, { body: Readable.from(body.chunks) });
    }
    await yoga.handle(req, res);
  }

  addHookRoutes(routes, services.forgeEvents);
  addBadgeRoutes(routes, { orm, secrets: deps.secrets });
  routes.add(['GET'], '/verify-email', async (_req, res, { url }) => {
    const ok = await services.mail.verifyEmail(orm.em.fork(), url.searchParams.get('token') ?? '');
    res.writeHead(303, { location: `/account?email=${ok ? 'verified' : 'link-expired'}` }).end();
  });
  addCctrayRoutes(routes, { orm, publicUrl: () => deps.publicUrl ?? listenUrl ?? 'http://127.0.0.1:8080' });
  addMetricsRoute(routes, metrics, deps.metricsToken ?? null);
  addRawLogRoute(routes, (req) =>
    contextFor(
      {
        authorization: req.headers.authorization ?? null,
        cookie: req.headers.cookie ?? null,
        http: { method: 'GET', csrf: null },
      },
      req.socket.remoteAddress ?? 'local',
      false,
    ),
  );
  routes
    .add('*', '/graphql', graphqlOverHttp)
    // The console's own routes (/builds/…) are its client's: any path no other route names.
    .add(['GET', 'HEAD'], '/*', (req, res, { url }) => serveConsole(req, res, url.pathname));
  let server: Server | null = null;

  return {
    fetch: (request) => yoga.fetch(request),
    services,
    pubsub,
    maintenance: {
      sweepOutbox: () => sweeper.sweep(),
      checkLostRunners: () => watchdog.check(),
      curate: () => curator.curate(),
      pollRepositories: () => poller.checkDue(),
      reportStatuses: () => statuses.reportDue(),
      fireSchedules: async () => (await services.schedules.tick()).firings,
      sendWebhooks: () => services.webhooks.sendDue(),
      mailBuilds: () => services.mail.mailFinished(),
    },
    jobs,
    async start(port, host = '127.0.0.1') {
      consumers.push(
        ...(await startIngester({
          orm,
          broker,
          pubsub,
          logger,
          buildState,
          onStored: (e) => metrics.stored(e),
        })),
      );
      for (const job of Object.values(jobs)) job.start();
      server = createServer((req, res) => {
        const started = performance.now();
        res.once('finish', () =>
          metrics.http(
            req.method ?? 'GET',
            routeLabel(new URL(req.url ?? '/', 'http://x').pathname),
            res.statusCode,
            (performance.now() - started) / 1000,
          ),
        );
        routes.handle(req, res).catch((err) => {
          logger.error({ err }, 'request failed');
          if (!res.headersSent) res.writeHead(500).end();
        });
      });
      wss = new WebSocketServer({ server, path: '/graphql', maxPayload: WS_MAX_PAYLOAD_BYTES });
      useServer<Record<string, unknown>, { request: IncomingMessage }>(
        {
          execute: (args: ExecutionArgs & { rootValue?: unknown }) =>
            (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
          subscribe: (args: ExecutionArgs & { rootValue?: unknown }) =>
            (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
          onSubscribe: async (ctx, _id, payload) => {
            const enveloped = yoga.getEnveloped({ req: ctx.extra.request, params: payload });
            const request = ctx.extra.request;
            const auth = ctx.connectionParams?.authorization;
            const origin = request.headers.origin;
            let contextValue: Context;
            try {
              // Subscriptions started on one connection shortly after another reuse its check of
              // the credentials (which never change on a connection) instead of asking the database.
              const checked = checkedSockets.get(ctx);
              const known = checked && Date.now() - checked.at < WS_AUTH_TTL_MS ? checked.auth : undefined;
              contextValue = await contextFor(
                {
                  authorization: typeof auth === 'string' ? auth : null,
                  cookie: request.headers.cookie,
                  http: null,
                  sameOrigin: !origin || new URL(origin).host === request.headers.host,
                },
                request.socket.remoteAddress ?? 'local',
                false,
                known,
              );
              if (!known) checkedSockets.set(ctx, { auth: contextValue.auth, at: Date.now() });
            } catch (err) {
              return subscriptionErrors(err, (e) =>
                logger.warn({ err: e }, 'a subscription could not start'),
              );
            }
            let document: ReturnType<typeof enveloped.parse>;
            try {
              document = enveloped.parse(payload.query);
            } catch (err) {
              return subscriptionErrors(err, (e) =>
                logger.warn({ err: e }, 'a subscription could not be parsed'),
              );
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
      wss.on('connection', (socket) => {
        // A socket's 'error' is a client's fault (a frame past maxPayload, a broken frame), and ws has
        // closed that connection already with the code that says why; graphql-ws's own listener would
        // print it to the console as an error of this server.
        socket.removeAllListeners('error');
        socket.on('error', (err) => logger.warn({ err }, 'closed a WebSocket after a bad frame'));
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      const actual = (server.address() as AddressInfo).port;
      listenUrl = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
      return { url: listenUrl, port: actual };
    },
    async stop() {
      await Promise.all(Object.values(jobs).map((job) => job.stop()));
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

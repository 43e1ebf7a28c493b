/**
 * A real `serve` app for a test file: its own database cloned from the template, its own broker
 * (in-process, or RabbitMQ under a unique prefix), an admin with a known token, and helpers to talk
 * GraphQL over HTTP (through yoga's fetch, no socket) or graphql-ws (through a started server).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';
import { createSecretBox } from '../../api/auth/secret-box.ts';
import { openDatabase } from '../../api/db/orm.ts';
import { createFsFileStore, type FileStore } from '../../api/files/file-store.ts';
import { bootstrapAdmin } from '../../api/modules/tokens/tokens.service.ts';
import { type App, buildApp } from '../../api/server.ts';
import { AmqpBroker } from '../../runner/broker/amqp/amqp-broker.ts';
import { deleteTopology } from '../../runner/broker/amqp/topology.ts';
import { createBroker } from '../../runner/broker/create-broker.ts';
import { MemoryBroker } from '../../runner/broker/memory/memory-broker.ts';
import { runnerBaseEnv } from '../../runner/config.ts';
import type { Broker } from '../../runner/contract/broker.ts';
import { createDrivers } from '../../runner/drivers/registry.ts';
import { createRunner, type Runner } from '../../runner/runner.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { AMQP_URL } from './services.ts';

export const quietLogger = () => pino({ level: process.env.KILN_TEST_LOG ?? 'silent' });

export interface GraphQLResponse<T = Record<string, unknown>> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export interface TestApp {
  app: App;
  broker: Broker;
  db: TestDatabase;
  token: string;
  prefix: string;
  /** The app's file store (a temporary directory, removed on stop). */
  files: FileStore;
  filesDir: string;
  /** The orm of this app's database, for assertions on stored rows. */
  orm: Awaited<ReturnType<typeof openDatabase>>['orm'];
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
  /**
   * GraphQL over a multipart request (the GraphQL multipart request spec): each of `files` is sent
   * as a part and mapped to the variable path that names it, e.g. `input.file`.
   */
  upload<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown>,
    files: Record<string, { name: string; content: Buffer | string; type?: string }>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
  /** Starts the HTTP/WebSocket server (once) and returns its base URL. */
  listen(): Promise<string>;
  ws(token?: string | null): Client;
  stop(): Promise<void>;
}

export async function startTestApp(
  opts: {
    broker?: 'memory' | 'amqp';
    prefix?: string;
    db?: TestDatabase;
    signup?: boolean;
    rateLimit?: number;
    objectMaxBytes?: number;
    artifactMaxBytes?: number;
    pollMinSeconds?: number;
    pollTimeoutMs?: number;
    scheduleMinSeconds?: number;
    allowPrivateUrls?: boolean;
    smtpUrl?: string;
    metricsToken?: string;
    bootstrapTokenFile?: string;
  } = {},
): Promise<TestApp> {
  const db = opts.db ?? (await createTestDatabase());
  const database = await openDatabase({ url: db.url, dataDir: '', poolMax: 5 });
  const token = `kiln_test_${randomBytes(12).toString('hex')}`;
  await bootstrapAdmin(database.orm.em.fork(), token);
  const prefix = opts.prefix ?? `test-${randomBytes(4).toString('hex')}`;
  const logger = quietLogger();
  // KILN_TEST_BROKER=amqp runs a suite on RabbitMQ instead of the in-process broker (vitest.config.ts
  // has a project that runs the api suites so).
  const onRabbit = (opts.broker ?? process.env.KILN_TEST_BROKER) === 'amqp';
  const broker = createBroker({
    url: onRabbit ? AMQP_URL : '',
    prefix,
    deliveryLimit: 3,
    logger,
  });
  await broker.start();
  const filesDir = await mkdtemp(join(tmpdir(), 'kiln-files-'));
  const files = await createFsFileStore(filesDir);
  const mirrorsDir = await mkdtemp(join(tmpdir(), 'kiln-mirrors-'));
  const app = await buildApp({
    database,
    broker,
    logger,
    secrets: createSecretBox(`test-${prefix}`),
    drivers: ['os', 'docker', 'qemu'],
    signup: opts.signup ?? true,
    rateLimit: opts.rateLimit ?? 0,
    files,
    objectMaxBytes: opts.objectMaxBytes,
    artifactMaxBytes: opts.artifactMaxBytes,
    pollMinSeconds: opts.pollMinSeconds,
    pollTimeoutMs: opts.pollTimeoutMs,
    scheduleMinSeconds: opts.scheduleMinSeconds,
    allowPrivateUrls: opts.allowPrivateUrls,
    smtpUrl: opts.smtpUrl,
    metricsToken: opts.metricsToken,
    bootstrapTokenFile: opts.bootstrapTokenFile,
    mirrorsDir,
  });
  let url: string | null = null;
  const clients: Client[] = [];
  return {
    app,
    broker,
    db,
    token,
    prefix,
    files,
    filesDir,
    orm: database.orm,
    async gql(query, variables, useToken = token) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (useToken) headers.authorization = `Bearer ${useToken}`;
      const response = await app.fetch(
        new Request('http://kiln.test/graphql', {
          method: 'POST',
          headers,
          body: JSON.stringify({ query, variables }),
        }),
      );
      return (await response.json()) as GraphQLResponse<never>;
    },
    async upload(query, variables, files, useToken = token) {
      const form = new FormData();
      const paths = Object.keys(files);
      form.append('operations', JSON.stringify({ query, variables }));
      form.append(
        'map',
        JSON.stringify(Object.fromEntries(paths.map((p, i) => [String(i), [`variables.${p}`]]))),
      );
      paths.forEach((p, i) => {
        const file = files[p]!;
        const bytes = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
        form.append(String(i), new Blob([new Uint8Array(bytes)], { type: file.type ?? '' }), file.name);
      });
      const headers: Record<string, string> = {};
      if (useToken) headers.authorization = `Bearer ${useToken}`;
      const response = await app.fetch(
        new Request('http://kiln.test/graphql', { method: 'POST', headers, body: form }),
      );
      return (await response.json()) as GraphQLResponse<never>;
    },
    async listen() {
      url ??= (await app.start(0)).url;
      return url;
    },
    ws(useToken = token) {
      if (!url) throw new Error('call listen() first');
      const client = createClient({
        url: `${url.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: useToken ? { authorization: `Bearer ${useToken}` } : {},
        retryAttempts: 0,
      });
      clients.push(client);
      return client;
    },
    async stop() {
      for (const c of clients) await c.dispose();
      await app.stop();
      await broker.close();
      // A prefix of its own leaves nothing behind on the shared RabbitMQ.
      if (onRabbit && !opts.prefix) {
        const queues = broker instanceof AmqpBroker ? [...broker.declaredWorkQueues] : [];
        await deleteTopology(AMQP_URL, prefix, ['default', ...queues]).catch(() => {});
      }
      await database.close();
      await rm(filesDir, { recursive: true, force: true });
      await rm(mirrorsDir, { recursive: true, force: true });
      if (!opts.db) await db.drop();
    },
  };
}

/**
 * A runner (os driver) for the app's builds, as `kiln runner` would be: on the in-process broker it
 * joins the app's world; on RabbitMQ it connects with the app's prefix. Stopped (and its broker
 * closed) by the returned function.
 */
export async function startTestRunner(
  t: TestApp,
  workspaceDir: string,
  opts: { name?: string; concurrency?: number } = {},
): Promise<{ runner: Runner; stop(): Promise<void> }> {
  let broker: Broker;
  let close = async () => {};
  if (t.broker instanceof MemoryBroker) broker = t.broker.connect();
  else {
    broker = createBroker({ url: AMQP_URL, prefix: t.prefix, deliveryLimit: 3, logger: quietLogger() });
    await broker.start();
    close = () => broker.close();
  }
  const runner = createRunner({
    broker,
    name: opts.name ?? 'test-runner',
    queues: ['default'],
    concurrency: opts.concurrency ?? 2,
    drivers: createDrivers(['os'], { baseEnv: runnerBaseEnv(), workspaceDir }),
    logger: { info() {}, warn() {}, error() {} },
    heartbeatMs: 1000,
  });
  await runner.start();
  return {
    runner,
    async stop() {
      await runner.stop();
      await close();
    },
  };
}

/** Collects a subscription's results until it completes (or `until` says stop). */
export function collect<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  until?: (items: T[]) => boolean,
): { items: T[]; errors: unknown[]; done: Promise<void>; stop(): void } {
  const items: T[] = [];
  const errors: unknown[] = [];
  let stop = () => {};
  const done = new Promise<void>((resolve) => {
    stop = client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          if (value.errors) errors.push(...value.errors);
          if (value.data) items.push(value.data as T);
          if (until?.(items)) {
            stop();
            resolve();
          }
        },
        error: (err) => {
          // graphql-ws reports a refused subscription as the array of its errors.
          errors.push(...(Array.isArray(err) ? err : [err]));
          resolve();
        },
        complete: () => resolve(),
      },
    );
  });
  return { items, errors, done, stop: () => stop() };
}

/** Signs up `username` (password `password-<username>`) and returns a session token from logIn. */
export async function signUpAndLogIn(t: TestApp, username: string): Promise<string> {
  const password = `password-${username}`;
  const up = await t.gql<{ signUp: { __typename: string } }>(
    'mutation ($u: String!, $p: String!) { signUp(input: { username: $u, password: $p }) { __typename } }',
    { u: username, p: password },
    null,
  );
  if (up.data?.signUp.__typename !== 'SignUpSuccess')
    throw new Error(`signUp ${username}: ${JSON.stringify(up)}`);
  const login = await t.gql<{ logIn: { __typename: string; token: string } }>(
    'mutation ($u: String!, $p: String!) { logIn(input: { username: $u, password: $p }) { __typename ... on LogInSuccess { token } } }',
    { u: username, p: password },
    null,
  );
  if (login.data?.logIn.__typename !== 'LogInSuccess')
    throw new Error(`logIn ${username}: ${JSON.stringify(login)}`);
  return login.data.logIn.token;
}

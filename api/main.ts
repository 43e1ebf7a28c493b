/**
 * `kiln serve`: open the database (embedded PGlite when KILN_DATABASE_URL is empty), apply
 * migrations, make sure an admin exists, connect the broker, and serve.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { createBroker } from '../runner/broker/create-broker.ts';
import type { Broker } from '../runner/contract/broker.ts';
import { loadSecretBox } from './auth/secret-box.ts';
import type { ApiConfig } from './config.ts';
import { type Database, openDatabase } from './db/orm.ts';
import { createFsFileStore } from './files/file-store.ts';
import { createIdleCollector } from './jobs/idle-collector.ts';
import { bootstrapAdmin } from './modules/tokens/tokens.service.ts';
import { type App, buildApp } from './server.ts';

export interface Serving {
  app: App;
  broker: Broker;
  database: Database;
  url: string;
  logger: Logger;
  stop(): Promise<void>;
}

/** `.kiln/bootstrap-token` when under the working directory (as people start kiln), else absolute. */
function shownPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } });
}

export async function serve(config: ApiConfig, logger = createLogger(config.logLevel)): Promise<Serving> {
  await mkdir(config.dataDir, { recursive: true });
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  const applied = await database.migrate();
  if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
  const secret = await bootstrapAdmin(database.orm.em.fork(), config.bootstrapToken);
  const tokenFile = path.join(config.dataDir, 'bootstrap-token');
  if (secret && !config.bootstrapToken) {
    await writeFile(tokenFile, `${secret}\n`, { mode: 0o600 });
    await chmod(tokenFile, 0o600);
  }
  const broker = createBroker({
    url: config.amqpUrl,
    prefix: config.brokerPrefix,
    deliveryLimit: config.deliveryLimit,
    logger,
  });
  await broker.start();
  const secrets = await loadSecretBox({ secretKey: config.secretKey, dataDir: config.dataDir });
  const app = await buildApp({
    database,
    broker,
    logger,
    secrets,
    drivers: config.drivers,
    signup: config.signup,
    bootstrapTokenFile: shownPath(tokenFile),
    rateLimit: config.rateLimit,
    sessionTtlMs: config.sessionTtlMs,
    files: await createFsFileStore(config.filesDir),
    objectMaxBytes: config.objectMaxBytes,
    artifactMaxBytes: config.artifactMaxBytes,
    maxBodyBytes: config.maxBodyBytes,
    publicUrl: config.publicUrl,
    mirrorsDir: path.join(config.dataDir, 'mirrors'),
    pollMinSeconds: config.pollMinSeconds,
    scheduleMinSeconds: config.scheduleMinSeconds,
    allowPrivateUrls: config.allowPrivateUrls,
    smtpUrl: config.smtpUrl,
    mailFrom: config.mailFrom,
    metricsToken: config.metricsToken,
    pollTimeoutMs: config.pollTimeoutMs,
  });
  const { url } = await app.start(config.port, config.host);
  // The process's, not the app's: one per process, however many apps a test starts in one.
  const collector = createIdleCollector({ logger });
  collector.start();
  logger.info(
    { url, embeddedDatabase: database.embedded, inProcessBroker: !config.amqpUrl },
    'kiln serve is up',
  );
  if (secret && !config.bootstrapToken) {
    // Printed once, on the start that created the admin; it stays in the data dir (mode 0600).
    console.log(
      `\n  Kiln is running: ${config.publicUrl ?? url}\n  Admin token (saved in ${tokenFile}):\n\n    ${secret}\n`,
    );
  }
  return {
    app,
    broker,
    database,
    url,
    logger,
    async stop() {
      collector.stop();
      await app.stop();
      await broker.close();
      await database.close();
    },
  };
}

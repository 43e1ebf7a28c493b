/**
 * The `kiln` command. This is the composition root: the one place that may join api/ and runner/,
 * because `kiln start` runs both in one process on the embedded defaults.
 */
import { apiConfigOrExit } from '../api/config.ts';
import { openDatabase } from '../api/db/orm.ts';
import { createLogger, serve } from '../api/main.ts';
import { runnerConfigOrExit } from '../runner/config.ts';
import { createDrivers } from '../runner/drivers/registry.ts';
import { main as runnerMain } from '../runner/main.ts';
import { runOffline } from '../runner/offline.ts';
import { createRunner } from '../runner/runner.ts';

const USAGE = `usage: kiln <command>

  start                  API, web console and an in-process runner on one machine (embedded
                         database and broker unless KILN_DATABASE_URL / KILN_AMQP_URL are set)
  serve                  the API only (GraphQL on /graphql, /healthz, /readyz)
  runner                 a runner: takes builds from RabbitMQ (KILN_AMQP_URL) and runs them
  run [manifest]         run a manifest here, without a server (default .kiln.yml)
        --stage NAME     only that stage (and the setup stage)
        --objects DIR    where the manifest's objects are read from (default .)
        --artifacts DIR  where the jobs' artifacts are written (default .)
  migrate                apply database migrations and exit

Configuration is read from KILN_* environment variables; see README.md.`;

function onSignals(handler: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      handler().finally(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

async function start(withRunner: boolean): Promise<number> {
  const config = apiConfigOrExit();
  const logger = createLogger(config.logLevel);
  const serving = await serve(config, logger);
  let runner: ReturnType<typeof createRunner> | null = null;
  if (withRunner) {
    const rc = runnerConfigOrExit(process.env, { inProcess: true });
    const runnerLogger = logger.child({ runner: rc.name });
    const drivers = createDrivers(rc.drivers, {
      baseEnv: rc.baseEnv,
      workspaceDir: rc.workspaceDir,
      runnerName: rc.name,
      docker: rc.docker,
      onNotice: (driver, message) => runnerLogger.info({ driver }, message),
      onUnavailable: (driver, reason) => runnerLogger.warn({ driver }, `driver not available: ${reason}`),
    });
    runner = createRunner({
      broker: serving.broker,
      name: rc.name,
      queues: rc.queues,
      concurrency: rc.concurrency,
      drainTimeoutMs: rc.drainTimeoutMs,
      drivers,
      logger: runnerLogger,
    });
    await runner.start();
    // The drivers it has, not those it was asked for: one that is not available was said above.
    logger.info(
      { runner: rc.name, queues: rc.queues, drivers: [...drivers.keys()] },
      'in-process runner started',
    );
  }
  await onSignals(async () => {
    logger.info('shutting down: finishing running builds');
    await runner?.stop({ drain: true });
    await serving.stop();
  });
  return 0;
}

async function migrate(): Promise<number> {
  const config = apiConfigOrExit();
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const applied = await database.migrate();
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the database is up to date');
    return 0;
  } finally {
    await database.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(true);
    case 'serve':
      return start(false);
    case 'runner':
      return runnerMain();
    case 'run':
      return runOffline(rest);
    case 'migrate':
      return migrate();
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`kiln: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

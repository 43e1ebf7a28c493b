/**
 * `kiln runner`: a runner as its own process, talking to the api through RabbitMQ only
 * (KILN_AMQP_URL is required). SIGTERM or SIGINT drains: no new builds, running ones get
 * KILN_RUNNER_DRAIN_SECONDS to finish and the rest are handed back; a second signal hands them
 * back at once. Resolves with the exit status once stopped: 0 after a clean stop, 1 when the
 * configuration is invalid or the runner cannot start.
 */
import { pino } from 'pino';
import { createBroker } from './broker/create-broker.ts';
import { formatConfigProblems, loadRunnerConfig } from './config.ts';
import { createDrivers } from './drivers/registry.ts';
import { createRunnerMetrics, serveRunnerMetrics } from './metrics.ts';
import { createRunner } from './runner.ts';

export async function main(): Promise<number> {
  const loaded = loadRunnerConfig();
  if (!loaded.ok) {
    process.stderr.write(formatConfigProblems(loaded.problems));
    return 1;
  }
  const config = loaded.config;
  const logger = pino({ level: config.logLevel, base: { runner: config.name } });

  const drivers = createDrivers(config.drivers, {
    baseEnv: config.baseEnv,
    workspaceDir: config.workspaceDir,
    runnerName: config.name,
    docker: config.docker,
    onNotice: (driver, message) => logger.info({ driver }, message),
    onUnavailable: (driver, reason) => logger.warn({ driver }, `driver not available: ${reason}`),
  });
  const connection = createBroker({
    url: config.amqpUrl,
    prefix: config.brokerPrefix,
    deliveryLimit: config.deliveryLimit,
    logger,
  });
  const metrics = config.metrics ? createRunnerMetrics(() => connection.isReady()) : null;
  const broker = metrics ? metrics.meter(connection) : connection;
  const runner = createRunner({
    broker,
    name: config.name,
    queues: config.queues,
    concurrency: config.concurrency,
    drivers,
    logger,
    drainTimeoutMs: config.drainTimeoutMs,
  });

  let metricsServer: Awaited<ReturnType<typeof serveRunnerMetrics>> | null = null;
  try {
    await broker.start();
    await runner.start();
    if (metrics && config.metrics) {
      metricsServer = await serveRunnerMetrics(metrics.registry, config.metrics);
      logger.info({ port: metricsServer.port, host: config.metrics.host }, 'metrics at /metrics');
    }
  } catch (error) {
    logger.fatal({ err: error }, 'the runner could not start');
    await broker.close().catch(() => undefined);
    return 1;
  }

  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: handing the running builds back now');
        void runner.stop({ drain: false });
        return;
      }
      logger.info({ signal }, 'stopping: draining the running builds');
      void runner.stop({ drain: true }).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await metricsServer?.close();
  await broker.close().catch((error: unknown) => logger.warn({ err: error }, 'could not close the broker'));
  return 0;
}

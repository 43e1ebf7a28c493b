/**
 * The runner process: takes build jobs from the broker, runs them through the executor and a driver,
 * and publishes their events with confirms.
 *
 * Lifecycle of a delivery: run it (`executeBuild` awaits each
 * publish), then ack, only once build.finished is confirmed. A `kill` control message aborts the
 * build with `killed`. A delivery with attempt > 1 (the previous runner died or handed it back) just
 * runs again as that attempt: the api resets the jobs on its build.started. A build whose driver
 * type this runner lacks fails (first job FAILED, reason `driver "x" is not enabled on this runner`).
 * If publishing fails mid-build (broker trouble), the job is stopped and the delivery handed back.
 * Objects and artifacts travel over HTTP to and from the api named in the message (build-files.ts).
 *
 * Stopping: `stop({ drain: true })` (SIGTERM) stops taking builds, lets the running ones finish for
 * up to `drainTimeoutMs`, then aborts the rest with `shutdown` and requeues them; `stop()` does that
 * at once. Another runner then takes them as the next attempt. The caller closes the broker.
 *
 * Every `heartbeatMs` a runner.heartbeat lists the builds running here; the api's watchdog treats a
 * long silence as a lost runner.
 */
import { httpArtifactSink, httpObjectSource } from './build-files.ts';
import type { Broker, Consumer, WorkDelivery } from './contract/broker.ts';
import type { BuildJob, ControlMessage, RunnerEvent } from './contract/messages.ts';
import type { Driver } from './drivers/driver.ts';
import { unavailableDriver } from './drivers/registry.ts';
import { executeBuild, type Logger } from './executor.ts';

type BuildDelivery = WorkDelivery<BuildJob>;

export interface RunnerOptions {
  broker: Broker;
  name: string;
  queues: string[];
  /** Builds run at once (the consumer's prefetch). */
  concurrency: number;
  drivers: ReadonlyMap<string, Driver>;
  logger: Logger;
  heartbeatMs?: number;
  /** How long `stop({ drain: true })` lets running builds finish; default 30 s. */
  drainTimeoutMs?: number;
  now?: () => Date;
}

export interface Runner {
  /** Starts consuming. The broker must be started already. */
  start(): Promise<void>;
  /** Resolves once every build taken has been acked or handed back. A second call without drain cuts a drain short. */
  stop(opts?: { drain?: boolean }): Promise<void>;
  readiness(): { ready: boolean; running: number };
}

interface RunningBuild {
  attempt: number;
  controller: AbortController;
}

export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export function createRunner(opts: RunnerOptions): Runner {
  const { broker, logger } = opts;
  const now = opts.now ?? (() => new Date());
  const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;

  const running = new Map<string, RunningBuild>();
  const tasks = new Set<Promise<void>>();
  let state: 'new' | 'started' | 'stopping' | 'stopped' = 'new';
  let builds: Consumer | null = null;
  let control: Consumer | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  let stopping: Promise<void> | null = null;

  const beat = async (): Promise<void> => {
    const event: RunnerEvent = {
      type: 'runner.heartbeat',
      runner: opts.name,
      queues: opts.queues,
      concurrency: opts.concurrency,
      running: [...running].map(([buildId, build]) => ({ buildId, attempt: build.attempt })),
      at: now().toISOString(),
    };
    await broker.publish('event', [event]).catch((error: unknown) => {
      logger.warn({ err: error }, 'could not publish the heartbeat');
    });
  };

  const onControl = (message: ControlMessage): void => {
    const build = running.get(message.buildId);
    if (!build) return;
    logger.info({ buildId: message.buildId, attempt: build.attempt }, 'killing the build');
    build.controller.abort('killed');
  };

  const settle = async (what: string, action: () => Promise<void>, context: object): Promise<void> => {
    try {
      await action();
    } catch (error) {
      // The connection is gone: RabbitMQ hands the delivery out again, nothing more to do here.
      logger.error({ err: error, ...context }, `could not ${what} the delivery`);
    }
  };

  const run = async (delivery: BuildDelivery): Promise<void> => {
    const { message: job, attempt } = delivery;
    const context = { buildId: job.buildId, number: job.number, attempt };
    if (state !== 'started') {
      await settle('requeue', () => delivery.requeue(), context);
      return;
    }
    if (running.has(job.buildId)) {
      // A second publish of a build this runner is already running (an outbox republish): running it
      // twice would interleave two attempts' events, and this run reports the build anyway.
      logger.warn(context, 'build delivered again while running here; dropping the duplicate');
      await settle('ack', () => delivery.ack(), context);
      return;
    }

    const controller = new AbortController();
    running.set(job.buildId, { attempt, controller });
    try {
      const driver = opts.drivers.get(job.driver.type) ?? unavailableDriver(job.driver.type);
      logger.info({ ...context, queue: job.queue, driver: job.driver.type }, 'build taken');
      const result = await executeBuild({
        job,
        attempt,
        driver,
        emit: (events) => broker.publish('event', events),
        signal: controller.signal,
        runnerName: opts.name,
        now,
        logger,
        objects: job.objects ? httpObjectSource(job.objects) : undefined,
        artifacts: job.artifacts ? httpArtifactSink(job.buildId, job.artifacts) : undefined,
      });
      if (result.status === 'QUEUED') {
        logger.info(context, 'build handed back on shutdown');
        await settle('requeue', () => delivery.requeue(), context);
      } else {
        logger.info({ ...context, status: result.status, reason: result.reason }, 'build finished');
        await settle('ack', () => delivery.ack(), context);
      }
    } catch (error) {
      logger.error({ err: error, ...context }, 'build stopped before its end; handing it back');
      await settle('requeue', () => delivery.requeue(), context);
    } finally {
      running.delete(job.buildId);
    }
  };

  const handler = (delivery: BuildDelivery): Promise<void> => {
    const task = run(delivery);
    tasks.add(task);
    return task.finally(() => tasks.delete(task));
  };

  const allDone = async (): Promise<void> => {
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
  };

  const abortAll = (): void => {
    for (const build of running.values()) build.controller.abort('shutdown');
  };

  const shutdown = async (drain: boolean): Promise<void> => {
    state = 'stopping';
    await builds
      ?.cancel()
      .catch((error: unknown) => logger.warn({ err: error }, 'could not cancel the consumer'));
    if (drain && tasks.size > 0) {
      logger.info({ running: running.size, drainTimeoutMs }, 'draining: waiting for running builds');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        allDone(),
        new Promise((resolve) => (timer = setTimeout(resolve, drainTimeoutMs))),
      ]);
      clearTimeout(timer);
    }
    if (running.size > 0) logger.info({ running: running.size }, 'handing back the running builds');
    abortAll();
    await allDone();
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
    await control
      ?.cancel()
      .catch((error: unknown) => logger.warn({ err: error }, 'could not cancel control'));
    state = 'stopped';
    logger.info({}, 'runner stopped');
  };

  return {
    async start() {
      if (state !== 'new') throw new Error('the runner was already started');
      state = 'started';
      control = await broker.subscribe('control', onControl);
      builds = await broker.consume('build', opts.queues, opts.concurrency, handler);
      heartbeat = setInterval(() => void beat(), heartbeatMs);
      heartbeat.unref();
      void beat();
      logger.info(
        {
          queues: opts.queues,
          concurrency: opts.concurrency,
          drivers: [...opts.drivers.keys()],
        },
        'runner started',
      );
    },

    stop(stopOpts = {}) {
      if (state === 'new') {
        state = 'stopped';
        return Promise.resolve();
      }
      if (!stopOpts.drain) abortAll();
      stopping ??= shutdown(stopOpts.drain ?? false);
      return stopping;
    },

    readiness() {
      return { ready: state === 'started' && broker.isReady(), running: running.size };
    },
  };
}

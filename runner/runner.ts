/**
 * The runner process: takes build jobs from the broker, runs them through the executor and a driver,
 * and publishes their events with confirms.
 *
 * Lifecycle of a delivery: each try at running it is a run with a lease of its own (a fresh id on
 * every event), and the api stores a run's events only while that run holds the build.
 * - A first delivery (attempt 1) starts at once: its build.started takes the build.
 * - A redelivery (attempt > 1: the previous runner died, handed it back, or lost its connection to
 *   a broker restart and still runs it) asks first: build.started with `waiting`, and nothing runs
 *   until the api answers `go`. The question is asked again now and then until an answer comes.
 * - The api answers `wait` while another run holds the build (its runner is alive): the run stops
 *   without reporting, keeps the delivery, and asks again after a pause, as a new run. It answers
 *   `kill` with the run's lease when the build is over or the attempt was run already: the delivery
 *   is acked and dropped. So a build runs once even when the broker hands it to two runners.
 * - A `kill` without a lease (someone killed the build) aborts the run with `killed`; a delivery
 *   that is waiting is acked.
 * Then it acks, only once build.finished is confirmed. A build whose driver type this runner lacks
 * fails (first job FAILED, reason `driver "x" is not enabled on this runner`). If publishing fails
 * mid-build (broker trouble), the job is stopped and the delivery handed back. Objects and artifacts
 * travel over HTTP to and from the api named in the message (build-files.ts).
 *
 * Stopping: `stop({ drain: true })` (SIGTERM) stops taking builds, lets the running ones finish for
 * up to `drainTimeoutMs`, then aborts the rest with `shutdown`, releases their leases and requeues
 * them; `stop()` does that at once. Another runner then takes them as the next attempt. The caller
 * closes the broker.
 *
 * Every `heartbeatMs` a runner.heartbeat lists the runs going on here, which renews their leases
 * (keep it well under LEASE_MS); the api's watchdog treats a long silence as a lost runner.
 */
import { randomUUID } from 'node:crypto';
import { httpArtifactSink, httpObjectSource } from './build-files.ts';
import type { Broker, Consumer, WorkDelivery } from './contract/broker.ts';
import { type BuildJob, type ControlMessage, LEASE_MS, type RunnerEvent } from './contract/messages.ts';
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
  /** Pause before a run told to wait asks again; default a third of LEASE_MS. */
  retryMs?: number;
  /** How long a waiting run waits for the api's answer before asking again; default 10 s. */
  askAgainMs?: number;
  now?: () => Date;
}

export interface Runner {
  /** Starts consuming. The broker must be started already. */
  start(): Promise<void>;
  /** Resolves once every build taken has been acked or handed back. A second call without drain cuts a drain short. */
  stop(opts?: { drain?: boolean }): Promise<void>;
  readiness(): { ready: boolean; running: number };
}

/** What the api told a run, or the runner's own reason to end it. */
type Answer = 'go' | 'wait' | 'kill' | 'shutdown';

interface Delivered {
  attempt: number;
  /** The current run's lease. */
  lease: string;
  /** True while the run executes (and so holds, or tries to hold, the build). */
  executing: boolean;
  controller: AbortController;
  /** Set by a control message for this run (or the build): why it must end. */
  told: Answer | null;
  /** Resolves a pending question or pause with the answer that ends it. */
  wake: ((answer: Answer) => void) | null;
}

export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export function createRunner(opts: RunnerOptions): Runner {
  const { broker, logger } = opts;
  const now = opts.now ?? (() => new Date());
  const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const retryMs = opts.retryMs ?? Math.round(LEASE_MS / 3);
  const askAgainMs = opts.askAgainMs ?? 10_000;

  const delivered = new Map<string, Delivered>();
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
      running: [...delivered]
        .filter(([, run]) => run.executing)
        .map(([buildId, run]) => ({ buildId, attempt: run.attempt, lease: run.lease })),
      at: now().toISOString(),
    };
    await broker.publish('event', [event]).catch((error: unknown) => {
      logger.warn({ err: error }, 'could not publish the heartbeat');
    });
  };

  /** Ends the run the way `answer` says: wakes a question or pause, or aborts the executor. */
  const tell = (run: Delivered, answer: Answer): void => {
    if (run.wake) {
      run.wake(answer);
      return;
    }
    run.told ??= answer;
    // The executor stops without reporting on `shutdown`: a run told to wait or to stop is not the
    // build's holder (or the build is over), so what it would report is of no use.
    if (run.executing) run.controller.abort('shutdown');
  };

  const onControl = (message: ControlMessage): void => {
    const run = delivered.get(message.buildId);
    if (!run) return;
    if (message.type === 'kill' && message.lease === undefined) {
      logger.info({ buildId: message.buildId, attempt: run.attempt }, 'killing the build');
      if (run.executing) run.controller.abort('killed');
      else tell(run, 'kill');
      return;
    }
    if (message.lease !== run.lease) return;
    logger.info(
      { buildId: message.buildId, attempt: run.attempt, answer: message.type },
      message.type === 'wait' ? 'another run holds the build: waiting' : `the api says ${message.type}`,
    );
    tell(run, message.type);
  };

  const settle = async (what: string, action: () => Promise<void>, context: object): Promise<void> => {
    try {
      await action();
    } catch (error) {
      // The connection is gone: RabbitMQ hands the delivery out again, nothing more to do here.
      logger.error({ err: error, ...context }, `could not ${what} the delivery`);
    }
  };

  /** Resolves with the first answer for `run`, or `fallback` after `ms` (null: never). */
  const waitFor = (run: Delivered, ms: number | null, fallback: Answer | null): Promise<Answer | null> => {
    if (state !== 'started') return Promise.resolve('shutdown');
    return new Promise((resolve) => {
      const timer = ms === null ? null : setTimeout(() => done(fallback), ms);
      const done = (answer: Answer | null) => {
        if (timer) clearTimeout(timer);
        run.wake = null;
        resolve(answer);
      };
      run.wake = (answer) => done(answer);
    });
  };

  /** Asks the api whether this run may hold the build, again every askAgainMs until it answers. */
  const ask = async (job: BuildJob, run: Delivered): Promise<Answer> => {
    for (;;) {
      const started: RunnerEvent = {
        type: 'build.started',
        runner: opts.name,
        waiting: true,
        buildId: job.buildId,
        attempt: run.attempt,
        lease: run.lease,
        at: now().toISOString(),
      };
      const asking = waitFor(run, askAgainMs, null);
      try {
        await broker.publish('event', [started]);
      } catch (error) {
        run.wake?.('shutdown');
        throw error;
      }
      const answer = await asking;
      if (answer) return answer;
    }
  };

  const run = async (delivery: BuildDelivery): Promise<void> => {
    const { message: job, attempt } = delivery;
    const context = { buildId: job.buildId, number: job.number, attempt };
    if (state !== 'started') {
      await settle('requeue', () => delivery.requeue(), context);
      return;
    }
    if (delivered.has(job.buildId)) {
      // A second publish of a build this runner already runs (an outbox republish): this run reports
      // the build; running it twice here would only be fenced off.
      logger.warn(context, 'build delivered again while running here; dropping the duplicate');
      await settle('ack', () => delivery.ack(), context);
      return;
    }

    const entry: Delivered = {
      attempt,
      lease: randomUUID(),
      executing: false,
      controller: new AbortController(),
      told: null,
      wake: null,
    };
    delivered.set(job.buildId, entry);
    const driver = opts.drivers.get(job.driver.type) ?? unavailableDriver(job.driver.type);
    let careful = attempt > 1;
    /** One run: asks first when careful, then executes; says how it ended. */
    const once = async (): Promise<'finished' | Answer> => {
      if (careful) {
        const answer = await ask(job, entry);
        if (answer !== 'go') return answer;
      }
      logger.info(
        { ...context, queue: job.queue, driver: job.driver.type, lease: entry.lease },
        careful ? 'build taken after the api said go' : 'build taken',
      );
      entry.executing = true;
      try {
        const result = await executeBuild({
          job,
          attempt,
          lease: entry.lease,
          announced: careful,
          driver,
          emit: (events) => broker.publish('event', events),
          signal: entry.controller.signal,
          runnerName: opts.name,
          now,
          logger,
          objects: job.objects ? httpObjectSource(job.objects) : undefined,
          artifacts: job.artifacts ? httpArtifactSink(job.buildId, job.artifacts) : undefined,
        });
        if (result.status === 'QUEUED') return entry.told ?? 'shutdown';
        logger.info({ ...context, status: result.status, reason: result.reason }, 'build finished');
        return 'finished';
      } finally {
        entry.executing = false;
      }
    };
    try {
      for (;;) {
        let outcome = await once();
        if (outcome === 'wait') {
          // Another run holds the build: ask again later, as a new run, unless told otherwise first.
          outcome = (await waitFor(entry, retryMs, 'go')) ?? 'go';
          if (outcome === 'go') {
            careful = true;
            entry.lease = randomUUID();
            entry.controller = new AbortController();
            entry.told = null;
            continue;
          }
        }
        if (outcome === 'finished' || outcome === 'kill') {
          if (outcome === 'kill') logger.info(context, 'the build is over or was run already: dropping it');
          await settle('ack', () => delivery.ack(), context);
          return;
        }
        logger.info(context, 'build handed back');
        await release(job, entry, context);
        await settle('requeue', () => delivery.requeue(), context);
        return;
      }
    } catch (error) {
      logger.error({ err: error, ...context }, 'build stopped before its end; handing it back');
      await settle('requeue', () => delivery.requeue(), context);
    } finally {
      delivered.delete(job.buildId);
    }
  };

  /** Gives the run's lease up at once, so the next run need not wait for it to lapse. */
  const release = async (job: BuildJob, entry: Delivered, context: object): Promise<void> => {
    const released: RunnerEvent = {
      type: 'build.released',
      buildId: job.buildId,
      attempt: entry.attempt,
      lease: entry.lease,
      at: now().toISOString(),
    };
    await broker
      .publish('event', [released])
      .catch((error: unknown) => logger.warn({ err: error, ...context }, 'could not release the build'));
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
    for (const entry of delivered.values()) {
      if (entry.executing) entry.controller.abort('shutdown');
      else entry.wake?.('shutdown');
    }
  };

  const shutdown = async (drain: boolean): Promise<void> => {
    state = 'stopping';
    await builds
      ?.cancel()
      .catch((error: unknown) => logger.warn({ err: error }, 'could not cancel the consumer'));
    // Deliveries waiting for the api or for their turn are handed back at once: nothing runs there.
    for (const entry of delivered.values()) if (!entry.executing) entry.wake?.('shutdown');
    if (drain && tasks.size > 0) {
      logger.info({ running: delivered.size, drainTimeoutMs }, 'draining: waiting for running builds');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        allDone(),
        new Promise((resolve) => (timer = setTimeout(resolve, drainTimeoutMs))),
      ]);
      clearTimeout(timer);
    }
    if (delivered.size > 0) logger.info({ running: delivered.size }, 'handing back the running builds');
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
      return { ready: state === 'started' && broker.isReady(), running: delivered.size };
    },
  };
}

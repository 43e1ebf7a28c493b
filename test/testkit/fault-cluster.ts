/**
 * The fault suites' stage: a private PostgreSQL and a private RabbitMQ (started for the test file,
 * never the machine's shared ones), and `kiln serve` and `kiln runner` processes on them. A test
 * may stop, kill and restart any of them.
 *
 *   const ready = privateServicesAvailable();
 *   describe.runIf(ready)('…', () => {
 *     let stage: FaultCluster;
 *     beforeAll(async () => { stage = await startFaultCluster({ serves: 2, runners: 2 }); }, 180_000);
 *     afterAll(() => stage?.remove());
 *     it('…', async () => {
 *       await stage.postgres.stop(); …; await stage.postgres.start();
 *       await stage.rabbitmq.stop(); …; await stage.rabbitmq.start();
 *       await stage.kill(stage.runners[0]!);
 *     });
 *   });
 */

import { type KilnCluster, startKilnCluster } from './kiln-cluster.ts';
import { isRunning } from './pids.ts';
import { type PrivatePostgres, postgresBinDir, startPrivatePostgres } from './private-postgres.ts';
import { type PrivateRabbitMQ, rabbitmqBinDir, startPrivateRabbitMQ } from './private-rabbitmq.ts';
import { required, type ServiceName } from './services.ts';
import { processTree } from './system.ts';

export interface FaultCluster extends KilnCluster {
  readonly postgres: PrivatePostgres;
  readonly rabbitmq: PrivateRabbitMQ;
  /** Every process started here (kiln processes, their jobs, PostgreSQL's, RabbitMQ's) seen so far. */
  pids(): number[];
  /** Stops the kiln processes, then RabbitMQ and PostgreSQL, and deletes every directory. */
  remove(): Promise<void>;
}

/**
 * Whether the fault suites can run here: PostgreSQL's server programs and RabbitMQ's are installed.
 * When not, prints why and returns false (the suite skips), unless KILN_REQUIRE names postgres or
 * rabbitmq: then it throws, so CI cannot pass by skipping.
 */
export function privateServicesAvailable(): boolean {
  const missing: { name: ServiceName; why: string }[] = [];
  if (!postgresBinDir()) {
    missing.push({ name: 'postgres', why: 'initdb not found under /usr/lib/postgresql/<version>/bin' });
  }
  if (!rabbitmqBinDir()) missing.push({ name: 'rabbitmq', why: 'rabbitmq-server and rabbitmqctl not found' });
  if (missing.length === 0) return true;
  const why = missing.map((m) => `${m.name}: ${m.why}`).join('; ');
  const needed = required();
  if (missing.some((m) => needed.has(m.name))) {
    throw new Error(`the fault suites need private services (KILN_REQUIRE): ${why}`);
  }
  console.warn(`skipping the fault suite: cannot start private services (${why})`);
  return false;
}

export async function startFaultCluster(
  opts: { serves?: number; runners?: number; env?: Record<string, string> } = {},
): Promise<FaultCluster> {
  const [pgResult, mqResult] = await Promise.allSettled([startPrivatePostgres(), startPrivateRabbitMQ()]);
  if (pgResult.status === 'rejected' || mqResult.status === 'rejected') {
    if (pgResult.status === 'fulfilled') await pgResult.value.remove();
    if (mqResult.status === 'fulfilled') await mqResult.value.remove();
    throw pgResult.status === 'rejected' ? pgResult.reason : (mqResult as PromiseRejectedResult).reason;
  }
  const postgres = pgResult.value;
  const rabbitmq = mqResult.value;
  const seen = new Set<number>();
  const rememberServices = () => {
    for (const pid of [postgres.pid(), rabbitmq.pid()]) {
      if (pid !== null) for (const p of processTree(pid)) seen.add(p);
    }
  };
  rememberServices();
  let cluster: KilnCluster;
  try {
    const databaseUrl = await postgres.createDatabase('kiln');
    cluster = await startKilnCluster({
      databaseUrl,
      amqpUrl: rabbitmq.url,
      serves: opts.serves,
      runners: opts.runners,
      env: opts.env,
    });
  } catch (error) {
    await rabbitmq.remove();
    await postgres.remove();
    throw error;
  }
  return {
    ...cluster,
    postgres,
    rabbitmq,
    pids() {
      rememberServices();
      return [...new Set([...cluster.pids(), ...seen])];
    },
    async remove() {
      rememberServices();
      const errors: unknown[] = [];
      for (const step of [() => cluster.stop(), () => rabbitmq.remove(), () => postgres.remove()]) {
        await step().catch((error: unknown) => errors.push(error));
      }
      if (errors.length > 0) throw new AggregateError(errors, 'the fault cluster did not come down cleanly');
    },
  };
}

/** The pids among `pids` still running: what a clean teardown leaves is none. */
export function stillRunning(pids: number[]): number[] {
  return pids.filter(isRunning);
}

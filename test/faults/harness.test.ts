/**
 * The fault suites' harness, checked on its own: a private PostgreSQL and RabbitMQ, one serve and
 * one runner on them run a build; both services stop and start again with their data; and nothing
 * is left running afterwards.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FaultCluster,
  privateServicesAvailable,
  startFaultCluster,
  stillRunning,
} from '../testkit/fault-cluster.ts';
import { countedLines, lineCheck } from '../testkit/log-lines.ts';
import { waitUntil } from '../testkit/system.ts';

const ready = privateServicesAvailable();

describe.runIf(ready)('the fault harness', () => {
  let stage: FaultCluster;

  beforeAll(async () => {
    stage = await startFaultCluster({ serves: 1, runners: 1 });
  }, 180_000);

  afterAll(async () => {
    await stage?.remove();
  }, 120_000);

  const readyz = async () => {
    try {
      return (await fetch(`${stage.serves[0]!.url}/readyz`)).status === 200;
    } catch {
      return false;
    }
  };

  it('runs a build to PASSED on its own PostgreSQL and RabbitMQ, never the shared ones', async () => {
    expect(stage.postgres.port).not.toBe(5432);
    expect(stage.rabbitmq.port).not.toBe(5672);
    expect(stage.rabbitmq.node).toMatch(/^kiln-fault-[0-9a-f]+@localhost$/);
    const kiln = stage.client();
    const build = await kiln.submit(countedLines(200));
    const final = await kiln.waitForFinal(build.id, 60_000);
    expect(final.status).toBe('PASSED');
    const stored = (await kiln.storedLog(build.id)).flatMap((c) => c.lines);
    expect(lineCheck(stored, 200)).toEqual(lineCheck.clean(200));
  });

  it('stops and starts PostgreSQL on the same port with the same data, and after a SIGKILL', async () => {
    const query = async (sql: string) => {
      const client = new pg.Client({ connectionString: stage.postgres.urlFor('kiln') });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    };
    const [before] = await query('select count(*)::int as n from builds');
    expect(before).toEqual({ n: 1 });

    await stage.postgres.stop();
    expect(stage.postgres.pid()).toBeNull();
    await expect(query('select 1')).rejects.toThrow();
    await waitUntil(async () => !(await readyz()), 'serve still ready with its database stopped', 15_000);
    await stage.postgres.start();
    expect(await query('select count(*)::int as n from builds')).toEqual([before]);

    await stage.postgres.kill();
    await stage.postgres.start();
    expect(await query('select count(*)::int as n from builds')).toEqual([before]);
    await waitUntil(readyz, 'serve not ready again after PostgreSQL came back', 30_000);
  });

  it('stops and starts RabbitMQ (the app, then the whole node) keeping a quorum queue and its messages', async () => {
    const queue = 'kiln-fault-harness';
    const publishOne = async () => {
      const conn = await amqp.connect(stage.rabbitmq.url);
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      ch.sendToQueue(queue, Buffer.from('kept'), { persistent: true });
      await ch.waitForConfirms();
      await conn.close();
    };
    const count = async () => {
      const conn = await amqp.connect(stage.rabbitmq.url);
      try {
        const ch = await conn.createChannel();
        return (await ch.checkQueue(queue)).messageCount;
      } finally {
        await conn.close();
      }
    };
    await publishOne();
    expect(await count()).toBe(1);

    await stage.rabbitmq.stop();
    await expect(amqp.connect(stage.rabbitmq.url)).rejects.toThrow();
    await stage.rabbitmq.start();
    expect(await count()).toBe(1);

    await stage.rabbitmq.stop({ node: true });
    expect(stage.rabbitmq.pid()).toBeNull();
    await stage.rabbitmq.start();
    expect(await count()).toBe(1);
    await waitUntil(readyz, 'serve not ready again after RabbitMQ came back', 30_000);
  });

  it('leaves no process running once removed', async () => {
    const pids = stage.pids();
    // serve, runner, postmaster and RabbitMQ's VM at least.
    expect(pids.length).toBeGreaterThanOrEqual(4);
    await stage.remove();
    expect(stillRunning(pids)).toEqual([]);
  });
});

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AMQP_URL, available } from '../../test/testkit/services.ts';
import type { BrokerLogger, WorkDelivery } from '../contract/broker.ts';
import type { BuildJob } from '../contract/messages.ts';
import { AmqpBroker, type AmqpBrokerOptions } from './amqp/amqp-broker.ts';
import { deleteTopology } from './amqp/topology.ts';
import {
  type BrokerWorld,
  brokerContract,
  buildJob,
  logChunk,
  type WorldOptions,
} from './broker.contract.ts';
import { createBroker } from './create-broker.ts';
import { MemoryBroker } from './memory/memory-broker.ts';

type BuildDelivery = WorkDelivery<BuildJob>;

const WAIT = { timeout: 15_000, interval: 20 };
const hasRabbit = available('rabbitmq');

brokerContract('memory', async (options) => {
  const root = new MemoryBroker(options);
  const opened: MemoryBroker[] = [];
  return {
    async open() {
      const broker = root.connect();
      opened.push(broker);
      await broker.start();
      return broker;
    },
    kill: (broker) => broker.close(),
    async dispose() {
      for (const broker of opened) await broker.close();
      await root.close();
    },
  };
});

interface AmqpWorld extends BrokerWorld {
  prefix: string;
  open(extra?: Partial<AmqpBrokerOptions>): Promise<AmqpBroker>;
}

async function amqpWorld(options: WorldOptions): Promise<AmqpWorld> {
  const prefix = `test-${randomBytes(4).toString('hex')}`;
  const opened: AmqpBroker[] = [];
  return {
    prefix,
    async open(extra = {}) {
      const broker = new AmqpBroker({ url: AMQP_URL, prefix, ...options, ...extra });
      opened.push(broker);
      await broker.start();
      return broker;
    },
    kill: (broker) => broker.close(),
    async dispose() {
      for (const broker of opened) await broker.close();
      await deleteTopology(
        AMQP_URL,
        prefix,
        new Set(opened.flatMap((broker) => [...broker.declaredWorkQueues])),
      );
    },
  };
}

if (hasRabbit) brokerContract('amqp', amqpWorld);

describe('createBroker', () => {
  it('makes the in-process broker without a URL and the RabbitMQ one with a URL', () => {
    expect(createBroker({})).toBeInstanceOf(MemoryBroker);
    expect(createBroker({ url: '' })).toBeInstanceOf(MemoryBroker);
    expect(createBroker({ url: AMQP_URL, prefix: 'unused' })).toBeInstanceOf(AmqpBroker);
  });
});

describe.runIf(hasRabbit)('amqp broker', () => {
  let world: AmqpWorld;
  let messages: string[];
  const logger: BrokerLogger = {
    warn: (_obj, msg) => messages.push(msg),
    error: (_obj, msg) => messages.push(msg),
  };

  const open = async (extra: Partial<AmqpBrokerOptions> = {}) => {
    messages = [];
    world = await amqpWorld({ deliveryLimit: 3, logger });
    return world.open(extra);
  };

  afterEach(async () => {
    await world.dispose();
  });

  it('keeps its consumers, fanout and control bindings after RabbitMQ drops its connection', async () => {
    const runner = await open();
    const publisher = await world.open();
    const jobs: string[] = [];
    await runner.consume('build', ['default'], 2, async (delivery) => {
      jobs.push(delivery.message.buildId);
      await delivery.ack();
    });
    const events: number[] = [];
    await runner.subscribe('event', (event) => {
      if (event.type === 'log.chunk') events.push(event.seq);
    });
    const kills: string[] = [];
    await runner.subscribe('control', (message) => kills.push(message.buildId));

    await dropConnection(runner.connectionName);
    await vi.waitFor(() => expect(messages).toContain('rabbitmq connection re-established'), WAIT);
    expect(runner.isReady()).toBe(true);

    const job = buildJob();
    await publisher.publish('build', [job]);
    await publisher.publish('event', [logChunk('b-watched', 1), logChunk('b-watched', 2)]);
    await publisher.publish('control', [{ type: 'kill', buildId: 'b-watched' }]);
    await vi.waitFor(() => expect(jobs).toEqual([job.buildId]), WAIT);
    await vi.waitFor(() => expect(events).toEqual([1, 2]), WAIT);
    await vi.waitFor(() => expect(kills).toEqual(['b-watched']), WAIT);
  });

  it('completes a publish made during an outage once the connection is back', async () => {
    const publisher = await open({ reconnectDelayMs: 800 });
    const dropping = dropConnection(publisher.connectionName);
    await vi.waitFor(() => expect(publisher.isReady()).toBe(false), { ...WAIT, interval: 5 });
    const job = buildJob();
    const publishing = publisher.publish('build', [job]);
    expect(publisher.isReady()).toBe(false);
    await publishing;
    expect(publisher.isReady()).toBe(true);
    await dropping;
    const consumer = await world.open();
    const received: string[] = [];
    await consumer.consume('build', ['default'], 1, async (delivery) => {
      received.push(delivery.message.buildId);
      await delivery.ack();
    });
    await vi.waitFor(() => expect(received).toEqual([job.buildId]), WAIT);
  });

  it('does not run a job twice when its connection drops mid-run; the late ack settles the redelivery', async () => {
    const runner = await open();
    const held: BuildDelivery[] = [];
    await runner.consume('build', ['default'], 1, async (delivery) => {
      held.push(delivery);
    });
    const job = buildJob();
    await runner.publish('build', [job]);
    await vi.waitFor(() => expect(held).toHaveLength(1), WAIT);
    await dropConnection(runner.connectionName);
    await vi.waitFor(
      () => expect(messages).toContain('build redelivered while still running here: kept'),
      WAIT,
    );
    expect(held).toHaveLength(1);
    expect(held[0]?.attempt).toBe(1);
    await held[0]?.ack();
    await runner.close();
    const other = await world.open();
    const later: BuildDelivery[] = [];
    await other.consume('build', ['default'], 1, async (delivery) => {
      later.push(delivery);
    });
    // A job published now comes after the first one in the queue: once it arrives, the first one,
    // had it been left there, would have arrived before it.
    const marker = buildJob();
    await other.publish('build', [marker]);
    await vi.waitFor(() => expect(later).toHaveLength(1), WAIT);
    expect(later.map((delivery) => delivery.message.buildId)).toEqual([marker.buildId]);
    expect(await readyMessages(`${world.prefix}.builds.default`)).toBe(0);
  });

  it('resolves a publish once RabbitMQ holds the job in its queue', async () => {
    const publisher = await open();
    await publisher.publish('build', [buildJob({ queue: 'confirmed' })]);
    expect(await readyMessages(`${world.prefix}.builds.confirmed`)).toBe(1);
  });
});

/** Messages ready in a queue, as RabbitMQ counts them, seen from a connection of its own. */
async function readyMessages(queue: string): Promise<number> {
  const conn = await amqp.connect(AMQP_URL);
  try {
    const channel = await conn.createChannel();
    const { messageCount } = await channel.checkQueue(queue);
    await channel.close();
    return messageCount;
  } finally {
    await conn.close();
  }
}

const run = promisify(execFile);

/** Makes RabbitMQ close the connection named `name`, as a broker restart or a network cut would. */
async function dropConnection(name: string): Promise<void> {
  const { stdout } = await run('rabbitmqctl', ['list_connections', '--silent', 'pid', 'client_properties']);
  const line = stdout.split('\n').find((row) => row.includes(`{"connection_name","${name}"}`));
  const pid = line?.split('\t')[0];
  if (!pid) throw new Error(`no RabbitMQ connection named ${name}`);
  await run('rabbitmqctl', ['close_connection', pid, 'kiln broker test']);
}

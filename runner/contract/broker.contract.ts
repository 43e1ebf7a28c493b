/**
 * The behaviour every Broker implementation shares (see broker.ts), as vitest tests registered by
 * `brokerContract(name, world)`. `broker.test.ts` runs it against the in-process and the RabbitMQ
 * broker. Each test gets a fresh world (a new prefix on RabbitMQ) and disposes of it.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker, BrokerLogger, BuildDelivery, DeadLetter, EventDelivery } from './broker.ts';
import type { RawExchange } from './memory-broker.ts';
import type { BuildJob, ControlMessage, LogChunkEvent, RunnerEvent } from './messages.ts';

/** A broker with the test-only raw publish both implementations have. */
export interface TestBroker extends Broker {
  publishRaw(exchange: RawExchange, routingKey: string, body: string): Promise<void>;
}

/** One broker installation: every broker opened on it sees the same queues. */
export interface BrokerWorld {
  /** A started broker: a new connection (RabbitMQ) or a new in-process connection (memory). */
  open(): Promise<TestBroker>;
  /** The broker goes away without settling what it holds, as a dying process does. */
  kill(broker: TestBroker): Promise<void>;
  /** Closes every broker opened and removes what the world left behind. */
  dispose(): Promise<void>;
}

export interface WorldOptions {
  deliveryLimit: number;
  logger: BrokerLogger;
}

/** Long enough for a message that should not come to have come, on a slow shared machine. */
const QUIET_MS = 250;
const WAIT = { timeout: 10_000, interval: 20 };

export function brokerContract(
  name: string,
  makeWorld: (options: WorldOptions) => Promise<BrokerWorld>,
): void {
  describe(`${name} broker contract`, () => {
    let world: BrokerWorld;
    let warnings: string[];

    beforeEach(async () => {
      warnings = [];
      const logger: BrokerLogger = {
        warn: (_obj, msg) => warnings.push(msg),
        error: (_obj, msg) => warnings.push(msg),
      };
      world = await makeWorld({ deliveryLimit: 3, logger });
    });

    afterEach(async () => {
      await world.dispose();
    });

    it('delivers a published build job once, as attempt 1, with its payload', async () => {
      const broker = await world.open();
      const received: BuildDelivery[] = [];
      await broker.consumeBuilds(['default'], 2, async (delivery) => {
        received.push(delivery);
        await delivery.ack();
      });
      const sent = buildJob();
      await broker.publishBuild(sent);
      await vi.waitFor(() => expect(received).toHaveLength(1), WAIT);
      await quiet();
      expect(received).toHaveLength(1);
      expect(received[0]?.attempt).toBe(1);
      expect(received[0]?.job).toEqual(sent);
      expect(broker.isReady()).toBe(true);
    });

    it('keeps a job for a queue without consumers until one consumes it', async () => {
      const broker = await world.open();
      const sent = buildJob({ queue: 'later' });
      await broker.publishBuild(sent);
      const received: string[] = [];
      await broker.consumeBuilds(['later'], 1, async (delivery) => {
        received.push(delivery.job.buildId);
        await delivery.ack();
      });
      await vi.waitFor(() => expect(received).toEqual([sent.buildId]), WAIT);
    });

    it('holds at most prefetch unacked jobs per consumer', async () => {
      const broker = await world.open();
      const held: BuildDelivery[] = [];
      await broker.consumeBuilds(['default'], 1, async (delivery) => {
        held.push(delivery);
      });
      const jobs = [buildJob(), buildJob(), buildJob()];
      for (const job of jobs) await broker.publishBuild(job);
      for (let n = 1; n <= 3; n += 1) {
        await vi.waitFor(() => expect(held).toHaveLength(n), WAIT);
        if (n < 3) {
          await quiet();
          expect(held).toHaveLength(n);
        }
        await held[n - 1]?.ack();
      }
      expect(held.map((delivery) => delivery.job.buildId)).toEqual(jobs.map((job) => job.buildId));
    });

    it('delivers the job of a consumer that died without acking to another one, as attempt 2', async () => {
      const publisher = await world.open();
      const dying = await world.open();
      const survivor = await world.open();
      const first: BuildDelivery[] = [];
      await dying.consumeBuilds(['default'], 1, async (delivery) => {
        first.push(delivery);
      });
      const sent = buildJob();
      await publisher.publishBuild(sent);
      await vi.waitFor(() => expect(first).toHaveLength(1), WAIT);
      const second: BuildDelivery[] = [];
      await survivor.consumeBuilds(['default'], 1, async (delivery) => {
        second.push(delivery);
      });
      await world.kill(dying);
      await vi.waitFor(() => expect(second).toHaveLength(1), WAIT);
      expect(second[0]?.job.buildId).toBe(sent.buildId);
      expect(second[0]?.attempt).toBe(2);
      expect(first[0]?.attempt).toBe(1);
      expect(dying.isReady()).toBe(false);
    });

    it('dead-letters a job past the delivery limit with reason delivery_limit', async () => {
      const broker = await world.open();
      const attempts: number[] = [];
      await broker.consumeBuilds(['default'], 1, async (delivery) => {
        attempts.push(delivery.attempt);
        await delivery.requeue();
      });
      const letters = await collectDeadLetters(broker);
      const sent = buildJob();
      await broker.publishBuild(sent);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(attempts).toEqual([1, 2, 3]);
      expect(letters[0]?.reason).toBe('delivery_limit');
      expect(JSON.parse(letters[0]?.body ?? '')).toEqual(sent);
    });

    it('dead-letters a rejected job with reason rejected', async () => {
      const broker = await world.open();
      const attempts: number[] = [];
      await broker.consumeBuilds(['default'], 1, async (delivery) => {
        attempts.push(delivery.attempt);
        await delivery.reject();
      });
      const letters = await collectDeadLetters(broker);
      const sent = buildJob();
      await broker.publishBuild(sent);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(attempts).toEqual([1]);
      expect(letters[0]?.reason).toBe('rejected');
      expect(JSON.parse(letters[0]?.body ?? '').buildId).toBe(sent.buildId);
    });

    it('dead-letters the job of a handler that throws, and reports the error', async () => {
      const broker = await world.open();
      await broker.consumeBuilds(['default'], 1, async () => {
        throw new Error('runner bug');
      });
      const letters = await collectDeadLetters(broker);
      await broker.publishBuild(buildJob());
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(letters[0]?.reason).toBe('rejected');
      expect(warnings.some((message) => message.includes('build handler failed'))).toBe(true);
    });

    it('dead-letters invalid build payloads without calling the handler', async () => {
      const broker = await world.open();
      const handled: BuildDelivery[] = [];
      await broker.consumeBuilds(['default'], 5, async (delivery) => {
        handled.push(delivery);
      });
      const letters = await collectDeadLetters(broker);
      const invalid = JSON.stringify({ kind: 'build', buildId: 'b-1' });
      await broker.publishRaw('builds', 'default', invalid);
      await broker.publishRaw('builds', 'default', 'not json {');
      await vi.waitFor(() => expect(letters).toHaveLength(2), WAIT);
      expect(letters.map((letter) => letter.body).sort()).toEqual([invalid, 'not json {'].sort());
      expect(letters.map((letter) => letter.reason)).toEqual(['rejected', 'rejected']);
      expect(handled).toEqual([]);
    });

    it('delivers jobs only to consumers of their queue', async () => {
      const broker = await world.open();
      const byConsumer: Record<string, string[]> = { a: [], b: [], both: [] };
      const consume = (label: string, queues: string[]) =>
        broker.consumeBuilds(queues, 5, async (delivery) => {
          byConsumer[label]?.push(`${delivery.job.queue}:${delivery.job.buildId}`);
          await delivery.ack();
        });
      await consume('a', ['q-a']);
      await consume('b', ['q-b']);
      const a = [buildJob({ queue: 'q-a' }), buildJob({ queue: 'q-a' })];
      const b = buildJob({ queue: 'q-b' });
      for (const job of [...a, b]) await broker.publishBuild(job);
      await vi.waitFor(() => expect(byConsumer.a?.length).toBe(2), WAIT);
      await vi.waitFor(() => expect(byConsumer.b?.length).toBe(1), WAIT);
      await quiet();
      expect(byConsumer.a).toEqual(a.map((job) => `q-a:${job.buildId}`));
      expect(byConsumer.b).toEqual([`q-b:${b.buildId}`]);

      const c = buildJob({ queue: 'q-c' });
      await consume('both', ['q-c', 'q-d']);
      const d = buildJob({ queue: 'q-d' });
      await broker.publishBuild(c);
      await broker.publishBuild(d);
      await vi.waitFor(() => expect(byConsumer.both?.length).toBe(2), WAIT);
      expect(byConsumer.both?.sort()).toEqual([`q-c:${c.buildId}`, `q-d:${d.buildId}`].sort());
    });

    it('lets a cancelled consumer settle the jobs it holds while new jobs go elsewhere', async () => {
      const broker = await world.open();
      const other = await world.open();
      const held: BuildDelivery[] = [];
      const consumer = await broker.consumeBuilds(['default'], 2, async (delivery) => {
        held.push(delivery);
      });
      const first = buildJob();
      await broker.publishBuild(first);
      await vi.waitFor(() => expect(held).toHaveLength(1), WAIT);
      await consumer.cancel();
      const elsewhere: BuildDelivery[] = [];
      await other.consumeBuilds(['default'], 2, async (delivery) => {
        elsewhere.push(delivery);
        await delivery.ack();
      });
      const second = buildJob();
      await broker.publishBuild(second);
      await vi.waitFor(() => expect(elsewhere).toHaveLength(1), WAIT);
      await held[0]?.ack();
      await world.kill(broker);
      await quiet();
      expect(held.map((delivery) => delivery.job.buildId)).toEqual([first.buildId]);
      expect(elsewhere.map((delivery) => delivery.job.buildId)).toEqual([second.buildId]);
    });

    it('sends every event to every fanout consumer in order and to exactly one store consumer', async () => {
      const publisher = await world.open();
      const apis = [await world.open(), await world.open()];
      const fanned: string[][] = [[], []];
      const stored: string[][] = [[], []];
      const batchSizes: number[] = [];
      for (const [i, api] of apis.entries()) {
        await api.consumeEventsFanout((event) => fanned[i]?.push(eventKey(event)));
        await api.consumeEventsToStore(
          async (deliveries) => {
            batchSizes.push(deliveries.length);
            for (const delivery of deliveries) {
              stored[i]?.push(eventKey(delivery.event));
              await delivery.ack();
            }
          },
          { batchSize: 10 },
        );
      }
      const events = Array.from({ length: 100 }, (_, i) => logChunk('b-events', i + 1));
      for (let i = 0; i < events.length; i += 25) await publisher.publishEvents(events.slice(i, i + 25));
      const keys = events.map(eventKey);
      await vi.waitFor(() => expect(fanned).toEqual([keys, keys]), WAIT);
      await vi.waitFor(() => expect((stored[0]?.length ?? 0) + (stored[1]?.length ?? 0)).toBe(100), WAIT);
      await quiet();
      const union = [...(stored[0] ?? []), ...(stored[1] ?? [])];
      expect(union).toHaveLength(100);
      expect(new Set(union)).toEqual(new Set(keys));
      expect(Math.max(...batchSizes)).toBeLessThanOrEqual(10);
    });

    it('keeps the order of publishEvents calls that do not wait for each other', async () => {
      const publisher = await world.open();
      const api = await world.open();
      const fanned: string[] = [];
      await api.consumeEventsFanout((event) => fanned.push(eventKey(event)));
      // The first calls may find the publishing channel not open yet, the later ones open.
      const events = Array.from({ length: 60 }, (_, i) => logChunk('b-pipelined', i + 1));
      await Promise.all(events.map((event) => publisher.publishEvents([event])));
      await vi.waitFor(() => expect(fanned).toEqual(events.map(eventKey)), WAIT);
    });

    it('sends build.updated to fanout consumers only, not to the store', async () => {
      const broker = await world.open();
      const stored: string[] = [];
      const fanned: string[] = [];
      await broker.consumeEventsToStore(async (deliveries) => {
        for (const delivery of deliveries) {
          stored.push(delivery.event.type);
          await delivery.ack();
        }
      });
      await broker.consumeEventsFanout((event) => fanned.push(event.type));
      const updated: RunnerEvent = {
        type: 'build.updated',
        buildId: 'b-updated',
        status: 'RUNNING',
        attempt: 1,
        reason: null,
        startedAt: null,
        finishedAt: null,
        jobs: [],
        at: new Date().toISOString(),
      };
      await broker.publishEvents([updated, logChunk('b-updated', 1)]);
      await vi.waitFor(() => expect(fanned).toEqual(['build.updated', 'log.chunk']), WAIT);
      await vi.waitFor(() => expect(stored).toEqual(['log.chunk']), WAIT);
      await quiet();
      expect(stored).toEqual(['log.chunk']);
    });

    it('hands a batch whose store handler threw to the store again', async () => {
      const broker = await world.open();
      const calls: string[][] = [];
      await broker.consumeEventsToStore(async (deliveries: EventDelivery[]) => {
        calls.push(deliveries.map((delivery) => eventKey(delivery.event)));
        if (calls.length === 1) throw new Error('database hiccup');
        for (const delivery of deliveries) await delivery.ack();
      });
      const events = [logChunk('b-retry', 1), logChunk('b-retry', 2), logChunk('b-retry', 3)];
      await broker.publishEvents(events);
      await vi.waitFor(
        () => expect(new Set(calls.slice(1).flat())).toEqual(new Set(events.map(eventKey))),
        WAIT,
      );
      const failed = calls[0] ?? [];
      expect(failed.length).toBeGreaterThan(0);
      expect(calls.slice(1).flat()).toEqual(expect.arrayContaining(failed));
    });

    it('drops invalid events with a warning and keeps delivering valid ones', async () => {
      const broker = await world.open();
      const stored: string[] = [];
      const fanned: string[] = [];
      await broker.consumeEventsToStore(async (deliveries) => {
        for (const delivery of deliveries) {
          stored.push(eventKey(delivery.event));
          await delivery.ack();
        }
      });
      await broker.consumeEventsFanout((event) => fanned.push(eventKey(event)));
      await broker.publishRaw('events', 'log.chunk', JSON.stringify({ type: 'log.chunk', buildId: 'b-bad' }));
      await broker.publishRaw('events', 'log.chunk', '{ not json');
      const valid = logChunk('b-good', 1);
      await broker.publishEvents([valid]);
      await vi.waitFor(() => expect(stored).toEqual([eventKey(valid)]), WAIT);
      await vi.waitFor(() => expect(fanned).toEqual([eventKey(valid)]), WAIT);
      // Two invalid events, each seen by the store and the fanout consumer.
      expect(warnings.filter((message) => message.startsWith('event '))).toHaveLength(4);
    });

    it('sends control messages only to the watchers of their build, until they unwatch', async () => {
      const publisher = await world.open();
      const runnerA = await world.open();
      const runnerB = await world.open();
      const seenA: string[] = [];
      const seenB: string[] = [];
      const a = await runnerA.consumeControl((message: ControlMessage) => seenA.push(message.buildId));
      const b = await runnerB.consumeControl((message: ControlMessage) => seenB.push(message.buildId));
      await a.watch('b-1');
      await b.watch('b-2');
      await publisher.publishControl({ type: 'kill', buildId: 'b-1' });
      await publisher.publishControl({ type: 'kill', buildId: 'b-2' });
      await publisher.publishControl({ type: 'kill', buildId: 'b-nobody' });
      await vi.waitFor(() => expect(seenA).toEqual(['b-1']), WAIT);
      await vi.waitFor(() => expect(seenB).toEqual(['b-2']), WAIT);
      await a.unwatch('b-1');
      await a.watch('b-3');
      await publisher.publishControl({ type: 'kill', buildId: 'b-1' });
      await publisher.publishControl({ type: 'kill', buildId: 'b-3' });
      // Control messages keep their order, so b-3 arriving means the unwatched b-1 never will.
      await vi.waitFor(() => expect(seenA).toEqual(['b-1', 'b-3']), WAIT);
      expect(seenB).toEqual(['b-2']);
    });

    it('is ready once started and not after close', async () => {
      const broker = await world.open();
      expect(broker.isReady()).toBe(true);
      await broker.close();
      expect(broker.isReady()).toBe(false);
      await expect(broker.publishBuild(buildJob())).rejects.toThrow();
    });
  });
}

export function buildJob(overrides: Partial<BuildJob> = {}): BuildJob {
  return {
    kind: 'build',
    buildId: randomUUID(),
    number: 7,
    queue: 'default',
    driver: { type: 'os', image: 'none' },
    stages: [
      {
        name: 'test',
        canFail: false,
        jobs: [
          {
            id: randomUUID(),
            name: 'unit',
            commands: ['echo hello'],
            artifacts: [{ src: 'out', name: 'o' }],
          },
        ],
      },
    ],
    variables: [{ key: 'TOKEN', value: 's3cr3t', masked: true }],
    timeoutMs: 60_000,
    submittedAt: new Date().toISOString(),
    ...overrides,
  };
}

export function logChunk(buildId: string, seq: number): LogChunkEvent {
  return {
    type: 'log.chunk',
    buildId,
    attempt: 1,
    at: new Date().toISOString(),
    jobId: 'job-1',
    seq,
    firstLine: seq,
    lines: [`line ${seq}`],
  };
}

function eventKey(event: RunnerEvent): string {
  return event.type === 'log.chunk' ? `${event.buildId}#${event.seq}` : `${event.type}:${event.at}`;
}

async function collectDeadLetters(broker: Broker): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  await broker.consumeDeadLetters(async (letter) => {
    letters.push(letter);
    await letter.ack();
  });
  return letters;
}

function quiet(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, QUIET_MS));
}

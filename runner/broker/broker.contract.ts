/**
 * The behaviour every Broker implementation shares (see broker.ts), as vitest tests registered by
 * `brokerContract(name, world)`. `broker.test.ts` runs it against the in-process and the RabbitMQ
 * broker. Each test gets a fresh world (a new prefix on RabbitMQ) and disposes of it.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker, BrokerLogger, DeadLetter, StoredDelivery, WorkDelivery } from '../contract/broker.ts';
import type { MessageKind } from '../contract/catalog.ts';
import type { BuildJob, ControlMessage, LogChunkEvent, RunnerEvent } from '../contract/messages.ts';

type BuildDelivery = WorkDelivery<BuildJob>;
type EventDelivery = StoredDelivery<RunnerEvent>;

/** A broker with the test-only raw publish both implementations have. */
export interface TestBroker extends Broker {
  publishRaw(kind: MessageKind, routingKey: string, body: string): Promise<void>;
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
    let warningObjects: object[];

    beforeEach(async () => {
      warnings = [];
      warningObjects = [];
      const logger: BrokerLogger = {
        warn: (obj, msg) => {
          warnings.push(msg);
          warningObjects.push(obj);
        },
        error: (obj, msg) => {
          warnings.push(msg);
          warningObjects.push(obj);
        },
      };
      world = await makeWorld({ deliveryLimit: 3, logger });
    });

    afterEach(async () => {
      await world.dispose();
    });

    it('delivers a published build job once, as attempt 1, with its payload', async () => {
      const broker = await world.open();
      const received: BuildDelivery[] = [];
      await broker.consume('build', ['default'], 2, async (delivery) => {
        received.push(delivery);
        await delivery.ack();
      });
      const sent = buildJob();
      await broker.publish('build', [sent]);
      await vi.waitFor(() => expect(received).toHaveLength(1), WAIT);
      await quiet();
      expect(received).toHaveLength(1);
      expect(received[0]?.attempt).toBe(1);
      expect(received[0]?.message).toEqual(sent);
      expect(broker.isReady()).toBe(true);
    });

    it('keeps a job for a queue without consumers until one consumes it', async () => {
      const broker = await world.open();
      const sent = buildJob({ queue: 'later' });
      await broker.publish('build', [sent]);
      const received: string[] = [];
      await broker.consume('build', ['later'], 1, async (delivery) => {
        received.push(delivery.message.buildId);
        await delivery.ack();
      });
      await vi.waitFor(() => expect(received).toEqual([sent.buildId]), WAIT);
    });

    it('holds at most prefetch unacked jobs per consumer', async () => {
      const broker = await world.open();
      const held: BuildDelivery[] = [];
      await broker.consume('build', ['default'], 1, async (delivery) => {
        held.push(delivery);
      });
      const jobs = [buildJob(), buildJob(), buildJob()];
      for (const job of jobs) await broker.publish('build', [job]);
      for (let n = 1; n <= 3; n += 1) {
        await vi.waitFor(() => expect(held).toHaveLength(n), WAIT);
        if (n < 3) {
          await quiet();
          expect(held).toHaveLength(n);
        }
        await held[n - 1]?.ack();
      }
      expect(held.map((delivery) => delivery.message.buildId)).toEqual(jobs.map((job) => job.buildId));
    });

    it('delivers the job of a consumer that died without acking to another one, as attempt 2', async () => {
      const publisher = await world.open();
      const dying = await world.open();
      const survivor = await world.open();
      const first: BuildDelivery[] = [];
      await dying.consume('build', ['default'], 1, async (delivery) => {
        first.push(delivery);
      });
      const sent = buildJob();
      await publisher.publish('build', [sent]);
      await vi.waitFor(() => expect(first).toHaveLength(1), WAIT);
      const second: BuildDelivery[] = [];
      await survivor.consume('build', ['default'], 1, async (delivery) => {
        second.push(delivery);
      });
      await world.kill(dying);
      await vi.waitFor(() => expect(second).toHaveLength(1), WAIT);
      expect(second[0]?.message.buildId).toBe(sent.buildId);
      expect(second[0]?.attempt).toBe(2);
      expect(first[0]?.attempt).toBe(1);
      expect(dying.isReady()).toBe(false);
    });

    it('dead-letters a job past the delivery limit with reason delivery_limit', async () => {
      const broker = await world.open();
      const attempts: number[] = [];
      await broker.consume('build', ['default'], 1, async (delivery) => {
        attempts.push(delivery.attempt);
        await delivery.requeue();
      });
      const letters = await collectDeadLetters(broker);
      const sent = buildJob();
      await broker.publish('build', [sent]);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(attempts).toEqual([1, 2, 3]);
      expect(letters[0]?.reason).toBe('delivery_limit');
      expect(JSON.parse(letters[0]?.body ?? '')).toEqual(sent);
    });

    it('dead-letters a rejected job with reason rejected', async () => {
      const broker = await world.open();
      const attempts: number[] = [];
      await broker.consume('build', ['default'], 1, async (delivery) => {
        attempts.push(delivery.attempt);
        await delivery.reject();
      });
      const letters = await collectDeadLetters(broker);
      const sent = buildJob();
      await broker.publish('build', [sent]);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(attempts).toEqual([1]);
      expect(letters[0]?.reason).toBe('rejected');
      expect(JSON.parse(letters[0]?.body ?? '').buildId).toBe(sent.buildId);
    });

    it('dead-letters the job of a handler that throws, and reports the error', async () => {
      const broker = await world.open();
      await broker.consume('build', ['default'], 1, async () => {
        throw new Error('runner bug');
      });
      const letters = await collectDeadLetters(broker);
      await broker.publish('build', [buildJob()]);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      expect(letters[0]?.reason).toBe('rejected');
      expect(warnings.some((message) => message.includes('build handler failed'))).toBe(true);
    });

    it('dead-letters invalid build payloads without calling the handler', async () => {
      const broker = await world.open();
      const handled: BuildDelivery[] = [];
      await broker.consume('build', ['default'], 5, async (delivery) => {
        handled.push(delivery);
      });
      const letters = await collectDeadLetters(broker);
      const invalid = JSON.stringify({ kind: 'build', buildId: 'b-1' });
      await broker.publishRaw('build', 'default', invalid);
      await broker.publishRaw('build', 'default', 'not json {');
      await vi.waitFor(() => expect(letters).toHaveLength(2), WAIT);
      expect(letters.map((letter) => letter.body).sort()).toEqual([invalid, 'not json {'].sort());
      expect(letters.map((letter) => letter.reason)).toEqual(['rejected', 'rejected']);
      expect(handled).toEqual([]);
    });

    it('delivers jobs only to consumers of their queue', async () => {
      const broker = await world.open();
      const byConsumer: Record<string, string[]> = { a: [], b: [], both: [] };
      const consume = (label: string, queues: string[]) =>
        broker.consume('build', queues, 5, async (delivery) => {
          byConsumer[label]?.push(`${delivery.message.queue}:${delivery.message.buildId}`);
          await delivery.ack();
        });
      await consume('a', ['q-a']);
      await consume('b', ['q-b']);
      const a = [buildJob({ queue: 'q-a' }), buildJob({ queue: 'q-a' })];
      const b = buildJob({ queue: 'q-b' });
      for (const job of [...a, b]) await broker.publish('build', [job]);
      await vi.waitFor(() => expect(byConsumer.a?.length).toBe(2), WAIT);
      await vi.waitFor(() => expect(byConsumer.b?.length).toBe(1), WAIT);
      await quiet();
      expect(byConsumer.a).toEqual(a.map((job) => `q-a:${job.buildId}`));
      expect(byConsumer.b).toEqual([`q-b:${b.buildId}`]);

      const c = buildJob({ queue: 'q-c' });
      await consume('both', ['q-c', 'q-d']);
      const d = buildJob({ queue: 'q-d' });
      await broker.publish('build', [c]);
      await broker.publish('build', [d]);
      await vi.waitFor(() => expect(byConsumer.both?.length).toBe(2), WAIT);
      expect(byConsumer.both?.sort()).toEqual([`q-c:${c.buildId}`, `q-d:${d.buildId}`].sort());
    });

    it('lets a cancelled consumer settle the jobs it holds while new jobs go elsewhere', async () => {
      const broker = await world.open();
      const other = await world.open();
      const held: BuildDelivery[] = [];
      const consumer = await broker.consume('build', ['default'], 2, async (delivery) => {
        held.push(delivery);
      });
      const first = buildJob();
      await broker.publish('build', [first]);
      await vi.waitFor(() => expect(held).toHaveLength(1), WAIT);
      await consumer.cancel();
      const elsewhere: BuildDelivery[] = [];
      await other.consume('build', ['default'], 2, async (delivery) => {
        elsewhere.push(delivery);
        await delivery.ack();
      });
      const second = buildJob();
      await broker.publish('build', [second]);
      await vi.waitFor(() => expect(elsewhere).toHaveLength(1), WAIT);
      await held[0]?.ack();
      await world.kill(broker);
      await quiet();
      expect(held.map((delivery) => delivery.message.buildId)).toEqual([first.buildId]);
      expect(elsewhere.map((delivery) => delivery.message.buildId)).toEqual([second.buildId]);
    });

    it('sends every event to every fanout consumer in order and to exactly one store consumer', async () => {
      const publisher = await world.open();
      const apis = [await world.open(), await world.open()];
      const fanned: string[][] = [[], []];
      const stored: string[][] = [[], []];
      const batchSizes: number[] = [];
      for (const [i, api] of apis.entries()) {
        await api.subscribe('event', (event) => fanned[i]?.push(eventKey(event)));
        await api.consumeStored(
          'event',
          async (deliveries) => {
            batchSizes.push(deliveries.length);
            for (const delivery of deliveries) {
              stored[i]?.push(eventKey(delivery.message));
              await delivery.ack();
            }
          },
          { batchSize: 10 },
        );
      }
      const events = Array.from({ length: 100 }, (_, i) => logChunk('b-events', i + 1));
      for (let i = 0; i < events.length; i += 25) await publisher.publish('event', events.slice(i, i + 25));
      const keys = events.map(eventKey);
      await vi.waitFor(() => expect(fanned).toEqual([keys, keys]), WAIT);
      await vi.waitFor(() => expect((stored[0]?.length ?? 0) + (stored[1]?.length ?? 0)).toBe(100), WAIT);
      await quiet();
      const union = [...(stored[0] ?? []), ...(stored[1] ?? [])];
      expect(union).toHaveLength(100);
      expect(new Set(union)).toEqual(new Set(keys));
      expect(Math.max(...batchSizes)).toBeLessThanOrEqual(10);
    });

    it('keeps the order of publish calls that do not wait for each other', async () => {
      const publisher = await world.open();
      const api = await world.open();
      const fanned: string[] = [];
      await api.subscribe('event', (event) => fanned.push(eventKey(event)));
      // The first calls may find the publishing channel not open yet, the later ones open.
      const events = Array.from({ length: 60 }, (_, i) => logChunk('b-pipelined', i + 1));
      await Promise.all(events.map((event) => publisher.publish('event', [event])));
      await vi.waitFor(() => expect(fanned).toEqual(events.map(eventKey)), WAIT);
    });

    it('sends build.updated to fanout consumers only, not to the store', async () => {
      const broker = await world.open();
      const stored: string[] = [];
      const fanned: string[] = [];
      await broker.consumeStored('event', async (deliveries) => {
        for (const delivery of deliveries) {
          stored.push(delivery.message.type);
          await delivery.ack();
        }
      });
      await broker.subscribe('event', (event) => fanned.push(event.type));
      const updated: RunnerEvent = {
        type: 'build.updated',
        buildId: 'b-updated',
        status: 'RUNNING',
        attempt: 1,
        lease: 'lease-1',
        reason: null,
        startedAt: null,
        finishedAt: null,
        jobs: [],
        at: new Date().toISOString(),
      };
      await broker.publish('event', [updated, logChunk('b-updated', 1)]);
      await vi.waitFor(() => expect(fanned).toEqual(['build.updated', 'log.chunk']), WAIT);
      await vi.waitFor(() => expect(stored).toEqual(['log.chunk']), WAIT);
      await quiet();
      expect(stored).toEqual(['log.chunk']);
    });

    it('hands a batch whose store handler threw to the store again', async () => {
      const broker = await world.open();
      const calls: string[][] = [];
      await broker.consumeStored('event', async (deliveries: EventDelivery[]) => {
        calls.push(deliveries.map((delivery) => eventKey(delivery.message)));
        if (calls.length === 1) throw new Error('database hiccup');
        for (const delivery of deliveries) await delivery.ack();
      });
      const events = [logChunk('b-retry', 1), logChunk('b-retry', 2), logChunk('b-retry', 3)];
      await broker.publish('event', events);
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
      await broker.consumeStored('event', async (deliveries) => {
        for (const delivery of deliveries) {
          stored.push(eventKey(delivery.message));
          await delivery.ack();
        }
      });
      await broker.subscribe('event', (event) => fanned.push(eventKey(event)));
      await broker.publishRaw('event', 'log.chunk', JSON.stringify({ type: 'log.chunk', buildId: 'b-bad' }));
      await broker.publishRaw('event', 'log.chunk', '{ not json');
      const valid = logChunk('b-good', 1);
      await broker.publish('event', [valid]);
      await vi.waitFor(() => expect(stored).toEqual([eventKey(valid)]), WAIT);
      await vi.waitFor(() => expect(fanned).toEqual([eventKey(valid)]), WAIT);
      // Two invalid events, each seen by the store and the fanout consumer.
      expect(warnings.filter((message) => message.startsWith('event '))).toHaveLength(4);
    });

    it('sends every control message to every subscriber, in order', async () => {
      const publisher = await world.open();
      const runnerA = await world.open();
      const runnerB = await world.open();
      const seenA: string[] = [];
      const seenB: string[] = [];
      await runnerA.subscribe('control', (message: ControlMessage) => seenA.push(message.buildId));
      const b = await runnerB.subscribe('control', (message: ControlMessage) => seenB.push(message.buildId));
      await publisher.publish('control', [
        { type: 'kill', buildId: 'b-1' },
        { type: 'kill', buildId: 'b-2' },
      ]);
      await vi.waitFor(() => expect(seenA).toEqual(['b-1', 'b-2']), WAIT);
      await vi.waitFor(() => expect(seenB).toEqual(['b-1', 'b-2']), WAIT);
      await b.cancel();
      await publisher.publish('control', [{ type: 'kill', buildId: 'b-3' }]);
      await publisher.publish('control', [{ type: 'kill', buildId: 'b-4' }]);
      // Control messages keep their order, so b-4 arriving at A means B's cancel was in place for both.
      await vi.waitFor(() => expect(seenA).toEqual(['b-1', 'b-2', 'b-3', 'b-4']), WAIT);
      expect(seenB).toEqual(['b-1', 'b-2']);
    });

    it('holds a stored batch whose handler keeps failing, in order, until the handler stores it', async () => {
      const publisher = await world.open();
      const api = await world.open();
      let failuresLeft = 4;
      const stored: string[] = [];
      let calls = 0;
      await api.consumeStored(
        'event',
        async (deliveries: EventDelivery[]) => {
          calls += 1;
          if (failuresLeft > 0) {
            failuresLeft -= 1;
            throw new Error('database away');
          }
          for (const delivery of deliveries) {
            stored.push(eventKey(delivery.message));
            await delivery.ack();
          }
        },
        { batchSize: 5, retryDelayMs: 5, maxRetryDelayMs: 20 },
      );
      const events = Array.from({ length: 12 }, (_, i) => logChunk('b-outage', i + 1));
      await publisher.publish('event', events);
      await vi.waitFor(() => expect(stored).toEqual(events.map(eventKey)), WAIT);
      expect(calls).toBeGreaterThanOrEqual(5);
      expect(warnings.filter((message) => message.includes('holding it and retrying')).length).toBe(1);
    });

    it('gives a held stored batch to another consumer when its consumer goes away', async () => {
      const publisher = await world.open();
      const failing = await world.open();
      const survivor = await world.open();
      const attempts: string[][] = [];
      await failing.consumeStored(
        'event',
        async (deliveries: EventDelivery[]) => {
          attempts.push(deliveries.map((delivery) => eventKey(delivery.message)));
          throw new Error('database away');
        },
        { retryDelayMs: 5, maxRetryDelayMs: 10 },
      );
      const events = [logChunk('b-handover', 1), logChunk('b-handover', 2)];
      await publisher.publish('event', events);
      await vi.waitFor(() => expect(attempts.length).toBeGreaterThanOrEqual(2), WAIT);
      const stored: string[] = [];
      await survivor.consumeStored('event', async (deliveries: EventDelivery[]) => {
        for (const delivery of deliveries) {
          stored.push(eventKey(delivery.message));
          await delivery.ack();
        }
      });
      await world.kill(failing);
      await vi.waitFor(() => expect(stored).toEqual(events.map(eventKey)), WAIT);
    });

    it('dead-letters a stored delivery its handler gives up on, with its kind and reason', async () => {
      const broker = await world.open();
      const stored: string[] = [];
      await broker.consumeStored('event', async (deliveries: EventDelivery[]) => {
        for (const delivery of deliveries) {
          if (delivery.message.type === 'log.chunk' && delivery.message.seq === 2) {
            await delivery.deadLetter('violates a constraint');
          } else {
            stored.push(eventKey(delivery.message));
            await delivery.ack();
          }
        }
      });
      const letters = await collectDeadLetters(broker);
      const events = [logChunk('b-poison', 1), logChunk('b-poison', 2), logChunk('b-poison', 3)];
      await broker.publish('event', events);
      await vi.waitFor(() => expect(letters).toHaveLength(1), WAIT);
      await vi.waitFor(() => expect(stored).toEqual([eventKey(events[0]!), eventKey(events[2]!)]), WAIT);
      expect(letters[0]?.kind).toBe('event');
      expect(letters[0]?.reason).toBe('violates a constraint');
      expect(JSON.parse(letters[0]?.body ?? '')).toEqual(events[1]);
    });

    it('names the kind of a dead-lettered job and never logs a payload', async () => {
      const broker = await world.open();
      const logged: string[] = [];
      const letters = await collectDeadLetters(broker);
      await broker.consume('build', ['default'], 1, async (delivery) => {
        await delivery.reject();
      });
      const secretJob = buildJob({ variables: [{ key: 'TOKEN', value: 'hunter2-secret', masked: true }] });
      await broker.publish('build', [secretJob]);
      await broker.publishRaw('build', 'default', JSON.stringify({ ...secretJob, stages: 'hunter2-secret' }));
      await vi.waitFor(() => expect(letters).toHaveLength(2), WAIT);
      expect(letters.map((letter) => letter.kind)).toEqual(['build', 'build']);
      logged.push(...warningObjects.map((obj) => JSON.stringify(obj)));
      expect(logged.some((line) => line.includes('stages'))).toBe(true);
      expect(logged.join('\n')).not.toContain('hunter2');
    });

    it('is ready once started and not after close', async () => {
      const broker = await world.open();
      expect(broker.isReady()).toBe(true);
      await broker.close();
      expect(broker.isReady()).toBe(false);
      await expect(broker.publish('build', [buildJob()])).rejects.toThrow();
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
    lease: 'lease-1',
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

/**
 * The in-process broker of the embedded default (no `KILN_AMQP_URL`): the same semantics as the
 * RabbitMQ broker (`../amqp/`), without a network, for every kind of the catalog. `broker.contract.ts`
 * holds both to them.
 *
 * - A MemoryBroker is one connection to an in-process World of queues (`world.ts`). `connect()` opens
 *   another connection to the same world; `close()` of one connection hands its unacked deliveries
 *   back (delivery count + 1), as RabbitMQ does when a process dies, and leaves the world to the others.
 * - Work queues are created on first publish or consume and shared round-robin by their consumers.
 *   reject() and invalid payloads are dead-lettered with reason `rejected`.
 * - Consumer.cancel() stops new deliveries; those already handed out stay the consumer's to settle
 *   (a runner's drain acks or requeues them), until its connection closes.
 * - Payloads travel as JSON and are validated with the catalog's schemas on delivery, so a Date
 *   becomes a string exactly as over RabbitMQ.
 */
import {
  type Broker,
  type BrokerOptions,
  type Consumer,
  DEFAULT_DELIVERY_LIMIT,
  type DeadLetter,
  type StoredDelivery,
  type StoredOptions,
  type WorkDelivery,
} from '../../contract/broker.ts';
import {
  type BroadcastKind,
  broadcastKind,
  type MessageKind,
  type MessageOf,
  routingKeyOf,
  type StoredKind,
  type WorkKind,
} from '../../contract/catalog.ts';
import { decode, silentLogger } from '../payload.ts';
import { StoredBatches } from '../stored-batches.ts';
import { type Envelope, Subscription, type Tap, World } from './world.ts';

/** Dead letters a consumer holds at once, as the amqp broker's prefetch on `<prefix>.dead`. */
const DEAD_LETTER_PREFETCH = 16;

export class MemoryBroker implements Broker {
  private readonly world: World;
  private readonly subscriptions = new Set<Subscription>();
  private readonly removals = new Set<() => void>();
  private readonly batchers = new Set<StoredBatches<Envelope, unknown>>();
  private open = true;

  constructor(options: BrokerOptions = {}, world?: World) {
    this.world =
      world ?? new World(options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT, options.logger ?? silentLogger);
  }

  /** Another connection to the same in-process broker, e.g. for a second runner in a test. */
  connect(): MemoryBroker {
    return new MemoryBroker({}, this.world);
  }

  async start(): Promise<void> {
    this.ensureOpen();
  }

  async publish<K extends MessageKind>(kind: K, messages: readonly MessageOf<K>[]): Promise<void> {
    this.ensureOpen();
    for (const message of messages) this.route(kind, routingKeyOf(kind, message), JSON.stringify(message));
  }

  async consume<K extends WorkKind>(
    kind: K,
    queues: readonly string[],
    prefetch: number,
    handler: (delivery: WorkDelivery<MessageOf<K>>) => Promise<void>,
  ): Promise<Consumer> {
    this.ensureOpen();
    const subscription: Subscription = new Subscription(this.world, Math.max(1, prefetch), (envelope) =>
      this.deliverWork(kind, subscription, envelope, handler),
    );
    this.subscriptions.add(subscription);
    for (const queue of new Set(queues)) subscription.subscribe(this.world.workQueue(kind, queue));
    return { cancel: async () => subscription.cancel() };
  }

  async subscribe<K extends BroadcastKind>(
    kind: K,
    handler: (message: MessageOf<K>) => void,
  ): Promise<Consumer> {
    this.ensureOpen();
    const taps = this.world.tapsOf(kind);
    const tap: Tap = (body) => {
      const message = decode(kind, body, this.world.logger);
      if (message === undefined) return;
      try {
        handler(message);
      } catch (err) {
        this.world.logger.error({ err, kind }, `${kind} subscriber failed`);
      }
    };
    taps.add(tap);
    const remove = (): void => {
      taps.delete(tap);
    };
    this.removals.add(remove);
    return { cancel: async () => remove() };
  }

  async consumeStored<K extends StoredKind>(
    kind: K,
    handler: (batch: StoredDelivery<MessageOf<K>>[]) => Promise<void>,
    opts?: StoredOptions,
  ): Promise<Consumer> {
    this.ensureOpen();
    let subscription: Subscription | null = null;
    const batches = new StoredBatches<Envelope, MessageOf<K>>(
      kind,
      (envelope) => decode(kind, envelope.body, this.world.logger),
      handler,
      {
        ack: (envelope) => subscription?.ack(envelope),
        deadLetter: (envelope, reason) => subscription?.reject(envelope, reason),
      },
      this.world.logger,
      opts,
      undefined,
      (envelope) => envelope.body.length,
    );
    subscription = new Subscription(this.world, 2 * batches.batchSize, (envelope) => batches.push(envelope));
    this.subscriptions.add(subscription);
    this.batchers.add(batches as StoredBatches<Envelope, unknown>);
    subscription.subscribe(this.world.storedQueue(kind));
    return {
      cancel: async () => {
        subscription.cancel();
        for (const envelope of batches.stop()) subscription.requeue(envelope);
      },
    };
  }

  async consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer> {
    this.ensureOpen();
    const subscription: Subscription = new Subscription(this.world, DEAD_LETTER_PREFETCH, (envelope) => {
      const letter: DeadLetter = {
        kind: envelope.kind,
        body: envelope.body,
        reason: envelope.reason ?? 'unknown',
        ack: async () => {
          subscription.ack(envelope);
        },
      };
      void call(handler, letter).catch((err: unknown) => {
        if (!subscription.owns(envelope)) return;
        // A throwing handler (its database is away): the letter waits in the queue for another try.
        this.world.logger.error(
          { err, kind: envelope.kind, reason: letter.reason },
          'dead-letter handler failed; the letter stays queued',
        );
        setTimeout(() => subscription.requeue(envelope), 1_000).unref();
      });
    });
    this.subscriptions.add(subscription);
    subscription.subscribe(this.world.dead);
    return { cancel: async () => subscription.cancel() };
  }

  isReady(): boolean {
    return this.open;
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    for (const remove of this.removals) remove();
    this.removals.clear();
    for (const batches of this.batchers) batches.forget();
    this.batchers.clear();
    for (const subscription of this.subscriptions) subscription.drop();
    this.subscriptions.clear();
  }

  /** For tests: publish a body as is, valid or not, as a foreign or buggy publisher would. */
  async publishRaw(kind: MessageKind, routingKey: string, body: string): Promise<void> {
    this.ensureOpen();
    this.route(kind, routingKey, body);
  }

  private route(kind: MessageKind, routingKey: string, body: string): void {
    const spec = broadcastKindOrNull(kind);
    if (!spec) {
      this.world.workQueue(kind, routingKey).push(this.world.envelope(kind, body));
      return;
    }
    if (spec.stored?.routingKeys.includes(routingKey)) {
      this.world.storedQueue(kind).push(this.world.envelope(kind, body));
    }
    const taps = this.world.tapsOf(kind);
    for (const tap of taps) {
      this.world.later(() => {
        if (taps.has(tap)) tap(body);
      });
    }
  }

  private deliverWork<K extends WorkKind>(
    kind: K,
    subscription: Subscription,
    envelope: Envelope,
    handler: (delivery: WorkDelivery<MessageOf<K>>) => Promise<void>,
  ): void {
    const message = decode(kind, envelope.body, this.world.logger);
    if (message === undefined) {
      subscription.reject(envelope);
      return;
    }
    const settle = (how: 'ack' | 'requeue' | 'reject') => async (): Promise<void> => {
      if (!subscription.owns(envelope)) return;
      subscription[how](envelope);
    };
    const delivery: WorkDelivery<MessageOf<K>> = {
      message,
      attempt: envelope.deliveryCount + 1,
      ack: settle('ack'),
      requeue: settle('requeue'),
      reject: settle('reject'),
    };
    void call(handler, delivery).catch((err: unknown) => {
      this.world.logger.error({ err, kind }, `${kind} handler failed, dead-lettering the message`);
      subscription.reject(envelope);
    });
  }

  private ensureOpen(): void {
    if (!this.open) throw new Error('broker closed');
  }
}

function broadcastKindOrNull(kind: MessageKind) {
  const spec = broadcastKind(kind as BroadcastKind);
  return spec.pattern === 'broadcast' ? spec : null;
}

async function call<T>(handler: (value: T) => Promise<void>, value: T): Promise<void> {
  await handler(value);
}

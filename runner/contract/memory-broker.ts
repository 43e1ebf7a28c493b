/**
 * The in-process broker of the embedded default (no `KILN_AMQP_URL`): the same semantics as the
 * RabbitMQ topology in `amqp-broker.ts`, without a network. `broker.contract.ts` holds both to them.
 *
 * - A MemoryBroker is one connection to an in-process world of queues. `connect()` opens another
 *   connection to the same world; `close()` of one connection hands its unacked deliveries back
 *   (delivery count + 1), as RabbitMQ does when a process dies, and leaves the world to the others.
 * - Build queues are FIFO, created on first publish or consume, shared round-robin by their consumers,
 *   each consumer holding at most `prefetch` unacked deliveries across all its queues. A delivery
 *   that comes back (requeue(), its connection closed) counts like a quorum queue's `x-delivery-count`:
 *   at `deliveryLimit` deliveries it is dead-lettered with reason `delivery_limit`; reject() and
 *   invalid payloads are dead-lettered with reason `rejected`. Returned deliveries go out first.
 * - Consumer.cancel() stops new deliveries; those already handed out stay the consumer's to settle
 *   (a runner's drain acks or requeues them), until its connection closes.
 * - Events go to one store queue (competing consumers, batches, requeued once when the handler throws;
 *   only STORED_EVENT_TYPES) and to every fanout consumer; control messages to the consumers watching their build id.
 * - Payloads travel as JSON and are validated with the zod schemas on delivery, so a Date becomes a
 *   string exactly as over RabbitMQ. Delivery is always asynchronous, never inside publish.
 */
import {
  type Broker,
  type BrokerLogger,
  type BrokerOptions,
  type BuildDelivery,
  type Consumer,
  type ControlConsumer,
  DEFAULT_DELIVERY_LIMIT,
  type DeadLetter,
  type EventDelivery,
} from './broker.ts';
import {
  type BuildJob,
  BuildJobSchema,
  type ControlMessage,
  ControlMessageSchema,
  type RunnerEvent,
  RunnerEventSchema,
  STORED_EVENT_TYPES,
} from './messages.ts';

const STORED: ReadonlySet<string> = new Set(STORED_EVENT_TYPES);

const silent: BrokerLogger = { warn() {}, error() {} };

/** Dead letters a consumer holds at once, as the amqp broker's prefetch on `<prefix>.dead`. */
const DEAD_LETTER_PREFETCH = 16;

interface Envelope {
  readonly id: number;
  readonly body: string;
  /** Times it came back to its queue (RabbitMQ's `x-delivery-count`). */
  deliveryCount: number;
  /** Why it was dead-lettered, on envelopes of the dead-letter queue. */
  readonly reason?: string;
}

/** What a raw publish targets; the names of the RabbitMQ exchanges without their prefix. */
export type RawExchange = 'builds' | 'events' | 'control';

class World {
  readonly buildQueues = new Map<string, MemoryQueue>();
  readonly dead: MemoryQueue;
  readonly store: MemoryQueue;
  readonly fanouts = new Set<(body: string) => void>();
  readonly controls = new Set<ControlTap>();
  private tasks: Array<() => void> = [];
  private scheduled = false;
  private lastId = 0;

  constructor(
    readonly deliveryLimit: number,
    readonly logger: BrokerLogger,
  ) {
    this.dead = new MemoryQueue(this, null);
    this.store = new MemoryQueue(this, null);
  }

  envelope(body: string, reason?: string): Envelope {
    this.lastId += 1;
    return reason === undefined
      ? { id: this.lastId, body, deliveryCount: 0 }
      : { id: this.lastId, body, deliveryCount: 0, reason };
  }

  buildQueue(name: string): MemoryQueue {
    let queue = this.buildQueues.get(name);
    if (!queue) {
      queue = new MemoryQueue(this, (envelope, reason) =>
        this.dead.push(this.envelope(envelope.body, reason)),
      );
      this.buildQueues.set(name, queue);
    }
    return queue;
  }

  /** Runs `task` after the current call returns, in order with every other task. */
  later(task: () => void): void {
    this.tasks.push(task);
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const tasks = this.tasks;
      this.tasks = [];
      for (const task of tasks) task();
      for (const queue of this.buildQueues.values()) queue.dispatch();
      this.store.dispatch();
      this.dead.dispatch();
    });
  }
}

class MemoryQueue {
  private readonly ready: Envelope[] = [];
  /** Deliveries handed back, served before `ready` (quorum queues do the same), oldest first. */
  private readonly returned: Envelope[] = [];
  private readonly subscriptions: Subscription[] = [];
  private next = 0;

  constructor(
    private readonly world: World,
    /** Null for queues without a dead-letter exchange and delivery limit (store, dead). */
    readonly deadLetter: ((envelope: Envelope, reason: string) => void) | null,
  ) {}

  push(envelope: Envelope): void {
    this.ready.push(envelope);
    this.world.schedule();
  }

  giveBack(envelope: Envelope): void {
    envelope.deliveryCount += 1;
    if (this.deadLetter && envelope.deliveryCount >= this.world.deliveryLimit) {
      this.deadLetter(envelope, 'delivery_limit');
    } else {
      const at = this.returned.findIndex((other) => other.id > envelope.id);
      this.returned.splice(at === -1 ? this.returned.length : at, 0, envelope);
    }
    this.world.schedule();
  }

  attach(subscription: Subscription): void {
    if (!this.subscriptions.includes(subscription)) this.subscriptions.push(subscription);
    this.world.schedule();
  }

  detach(subscription: Subscription): void {
    const at = this.subscriptions.indexOf(subscription);
    if (at !== -1) this.subscriptions.splice(at, 1);
  }

  dispatch(): void {
    while (this.returned.length + this.ready.length > 0) {
      const subscription = this.nextWithRoom();
      if (!subscription) return;
      const envelope = this.returned.shift() ?? this.ready.shift();
      if (envelope) subscription.take(this, envelope);
    }
  }

  private nextWithRoom(): Subscription | undefined {
    const count = this.subscriptions.length;
    for (let i = 0; i < count; i += 1) {
      const index = (this.next + i) % count;
      const subscription = this.subscriptions[index];
      if (subscription?.hasRoom()) {
        this.next = index + 1;
        return subscription;
      }
    }
    return undefined;
  }
}

/** A consumer's hold on one or more queues: its prefetch window and the deliveries it has not settled. */
class Subscription {
  private readonly unacked = new Map<Envelope, MemoryQueue>();
  private readonly queues: MemoryQueue[] = [];
  private active = true;

  constructor(
    private readonly world: World,
    private readonly prefetch: number,
    private readonly onDelivery: (envelope: Envelope) => void,
  ) {}

  subscribe(queue: MemoryQueue): void {
    this.queues.push(queue);
    queue.attach(this);
  }

  hasRoom(): boolean {
    return this.active && this.unacked.size < this.prefetch;
  }

  take(queue: MemoryQueue, envelope: Envelope): void {
    this.unacked.set(envelope, queue);
    this.onDelivery(envelope);
  }

  /** False when the envelope is no longer this subscription's (settled, or its connection closed). */
  ack(envelope: Envelope): boolean {
    if (!this.unacked.delete(envelope)) return false;
    this.world.schedule();
    return true;
  }

  requeue(envelope: Envelope): boolean {
    const queue = this.unacked.get(envelope);
    if (!queue) return false;
    this.unacked.delete(envelope);
    queue.giveBack(envelope);
    return true;
  }

  reject(envelope: Envelope): boolean {
    const queue = this.unacked.get(envelope);
    if (!queue) return false;
    this.unacked.delete(envelope);
    queue.deadLetter?.(envelope, 'rejected');
    this.world.schedule();
    return true;
  }

  owns(envelope: Envelope): boolean {
    return this.unacked.has(envelope);
  }

  cancel(): void {
    this.active = false;
    for (const queue of this.queues) queue.detach(this);
  }

  /** The connection went away: everything unsettled goes back to its queue. */
  drop(): void {
    this.cancel();
    const unacked = [...this.unacked];
    this.unacked.clear();
    for (const [envelope, queue] of unacked) queue.giveBack(envelope);
  }
}

interface ControlTap {
  readonly watched: Set<string>;
  deliver(body: string): void;
}

export class MemoryBroker implements Broker {
  private readonly world: World;
  private readonly subscriptions = new Set<Subscription>();
  private readonly taps = new Set<() => void>();
  private open = true;

  constructor(options: BrokerOptions = {}, world?: World) {
    this.world =
      world ?? new World(options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT, options.logger ?? silent);
  }

  /** Another connection to the same in-process broker, e.g. for a second runner in a test. */
  connect(): MemoryBroker {
    return new MemoryBroker({}, this.world);
  }

  async start(): Promise<void> {
    this.ensureOpen();
  }

  async publishBuild(job: BuildJob): Promise<void> {
    this.ensureOpen();
    this.world.buildQueue(job.queue).push(this.world.envelope(JSON.stringify(job)));
  }

  async consumeBuilds(
    queues: string[],
    prefetch: number,
    handler: (delivery: BuildDelivery) => Promise<void>,
  ): Promise<Consumer> {
    this.ensureOpen();
    const subscription: Subscription = new Subscription(this.world, Math.max(1, prefetch), (envelope) =>
      this.deliverBuild(subscription, envelope, handler),
    );
    this.subscriptions.add(subscription);
    for (const queue of new Set(queues)) subscription.subscribe(this.world.buildQueue(queue));
    return { cancel: async () => subscription.cancel() };
  }

  async publishEvents(events: RunnerEvent[]): Promise<void> {
    this.ensureOpen();
    for (const event of events) this.routeEvent(event.type, JSON.stringify(event));
  }

  async consumeEventsToStore(
    handler: (deliveries: EventDelivery[]) => Promise<void>,
    opts?: { batchSize?: number },
  ): Promise<Consumer> {
    this.ensureOpen();
    const batchSize = Math.max(1, opts?.batchSize ?? 500);
    const buffer: Envelope[] = [];
    let busy = false;
    let flushQueued = false;
    let cancelled = false;
    const flush = (): void => {
      flushQueued = false;
      if (busy || cancelled || !this.open || buffer.length === 0) return;
      busy = true;
      void this.storeBatch(subscription, buffer.splice(0, batchSize), handler).finally(() => {
        busy = false;
        flush();
      });
    };
    // Everything dispatched in one pass of the queue is one batch: flush once that pass is over.
    const subscription: Subscription = new Subscription(this.world, 2 * batchSize, (envelope) => {
      buffer.push(envelope);
      if (!flushQueued) {
        flushQueued = true;
        queueMicrotask(flush);
      }
    });
    this.subscriptions.add(subscription);
    subscription.subscribe(this.world.store);
    return {
      cancel: async () => {
        cancelled = true;
        subscription.cancel();
        for (const envelope of buffer.splice(0)) subscription.requeue(envelope);
      },
    };
  }

  async consumeEventsFanout(handler: (event: RunnerEvent) => void): Promise<Consumer> {
    this.ensureOpen();
    const tap = (body: string): void => {
      const event = this.parse(body, RunnerEventSchema, 'event');
      if (!event) return;
      try {
        handler(event);
      } catch (err) {
        this.world.logger.error({ err, type: event.type }, 'fanout handler failed');
      }
    };
    this.world.fanouts.add(tap);
    const remove = (): void => {
      this.world.fanouts.delete(tap);
    };
    this.taps.add(remove);
    return { cancel: async () => remove() };
  }

  async publishControl(message: ControlMessage): Promise<void> {
    this.ensureOpen();
    this.routeControl(message.buildId, JSON.stringify(message));
  }

  async consumeControl(handler: (message: ControlMessage) => void): Promise<ControlConsumer> {
    this.ensureOpen();
    const tap: ControlTap = {
      watched: new Set(),
      deliver: (body) => {
        const message = this.parse(body, ControlMessageSchema, 'control message');
        if (!message) return;
        try {
          handler(message);
        } catch (err) {
          this.world.logger.error({ err, buildId: message.buildId }, 'control handler failed');
        }
      },
    };
    this.world.controls.add(tap);
    const remove = (): void => {
      this.world.controls.delete(tap);
    };
    this.taps.add(remove);
    return {
      watch: async (buildId) => {
        tap.watched.add(buildId);
      },
      unwatch: async (buildId) => {
        tap.watched.delete(buildId);
      },
      cancel: async () => remove(),
    };
  }

  async consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer> {
    this.ensureOpen();
    const subscription: Subscription = new Subscription(this.world, DEAD_LETTER_PREFETCH, (envelope) => {
      const letter: DeadLetter = {
        body: envelope.body,
        reason: envelope.reason ?? 'unknown',
        ack: async () => {
          subscription.ack(envelope);
        },
      };
      void call(handler, letter).catch((err: unknown) => {
        if (!subscription.owns(envelope)) return;
        // A throwing handler is a bug: one more chance, then the letter is dropped, loudly.
        const again = envelope.deliveryCount > 0;
        this.world.logger.error(
          { err, body: envelope.body.slice(0, 200) },
          again
            ? 'dead-letter handler failed again, dropping'
            : 'dead-letter handler failed, requeueing once',
        );
        if (again) subscription.ack(envelope);
        else subscription.requeue(envelope);
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
    for (const remove of this.taps) remove();
    this.taps.clear();
    for (const subscription of this.subscriptions) subscription.drop();
    this.subscriptions.clear();
  }

  /** For tests: publish a body as is, valid or not, as a foreign or buggy publisher would. */
  async publishRaw(exchange: RawExchange, routingKey: string, body: string): Promise<void> {
    this.ensureOpen();
    switch (exchange) {
      case 'builds':
        this.world.buildQueue(routingKey).push(this.world.envelope(body));
        return;
      case 'events':
        this.routeEvent(routingKey, body);
        return;
      case 'control':
        if (routingKey.startsWith('build.')) this.routeControl(routingKey.slice('build.'.length), body);
        return;
    }
  }

  private routeEvent(type: string, body: string): void {
    if (STORED.has(type)) this.world.store.push(this.world.envelope(body));
    for (const tap of this.world.fanouts) {
      this.world.later(() => {
        if (this.world.fanouts.has(tap)) tap(body);
      });
    }
  }

  private routeControl(buildId: string, body: string): void {
    for (const tap of this.world.controls) {
      if (!tap.watched.has(buildId)) continue;
      this.world.later(() => {
        if (this.world.controls.has(tap)) tap.deliver(body);
      });
    }
  }

  private deliverBuild(
    subscription: Subscription,
    envelope: Envelope,
    handler: (delivery: BuildDelivery) => Promise<void>,
  ): void {
    const job = this.parse(envelope.body, BuildJobSchema, 'build job');
    if (!job) {
      subscription.reject(envelope);
      return;
    }
    const settle = (how: 'ack' | 'requeue' | 'reject') => async (): Promise<void> => {
      if (!subscription.owns(envelope)) return;
      subscription[how](envelope);
    };
    const delivery: BuildDelivery = {
      job,
      attempt: envelope.deliveryCount + 1,
      ack: settle('ack'),
      requeue: settle('requeue'),
      reject: settle('reject'),
    };
    void call(handler, delivery).catch((err: unknown) => {
      this.world.logger.error({ err, buildId: job.buildId }, 'build handler failed, dead-lettering the job');
      subscription.reject(envelope);
    });
  }

  private async storeBatch(
    subscription: Subscription,
    batch: Envelope[],
    handler: (deliveries: EventDelivery[]) => Promise<void>,
  ): Promise<void> {
    const deliveries: EventDelivery[] = [];
    for (const envelope of batch) {
      const event = this.parse(envelope.body, RunnerEventSchema, 'event');
      if (!event) {
        subscription.ack(envelope);
        continue;
      }
      deliveries.push({
        event,
        ack: async () => {
          subscription.ack(envelope);
        },
      });
    }
    if (deliveries.length === 0) return;
    try {
      await handler(deliveries);
    } catch (err) {
      // A throwing handler is a bug: each event gets one more chance, then it is dropped, loudly.
      const left = batch.filter((envelope) => subscription.owns(envelope));
      const again = left.filter((envelope) => envelope.deliveryCount > 0);
      this.world.logger.error(
        { err, requeued: left.length - again.length, dropped: again.length },
        'event batch handler failed',
      );
      for (const envelope of left) {
        if (envelope.deliveryCount === 0) subscription.requeue(envelope);
        else subscription.ack(envelope);
      }
    }
  }

  private parse<T>(
    body: string,
    schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: unknown } },
    what: string,
  ): T | undefined {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      this.world.logger.warn({ err, body: body.slice(0, 200) }, `${what} is not JSON`);
      return undefined;
    }
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    this.world.logger.warn({ err: result.error, body: body.slice(0, 200) }, `${what} fails its schema`);
    return undefined;
  }

  private ensureOpen(): void {
    if (!this.open) throw new Error('broker closed');
  }
}

async function call<T>(handler: (value: T) => Promise<void>, value: T): Promise<void> {
  await handler(value);
}

/**
 * The queues of the in-process broker: what RabbitMQ keeps on its side of the connection. Several
 * MemoryBroker connections share one World, as processes share one RabbitMQ.
 *
 * - A MemoryQueue is FIFO; deliveries handed back (requeue, a closed connection) go out first, oldest
 *   first, and count like a quorum queue's `x-delivery-count`: a queue with a dead-letter target sends
 *   them there at `deliveryLimit` deliveries.
 * - A Subscription is one consumer's hold on one or more queues: at most `prefetch` unsettled
 *   deliveries, served round-robin among the queue's subscriptions.
 * - Delivery is always asynchronous (setImmediate), never inside the publish call.
 */
import type { BrokerLogger } from '../../contract/broker.ts';
import type { MessageKind } from '../../contract/catalog.ts';

export interface Envelope {
  readonly id: number;
  readonly kind: MessageKind | null;
  readonly body: string;
  /** Times it came back to its queue (RabbitMQ's `x-delivery-count`). */
  deliveryCount: number;
  /** Why it was dead-lettered, on envelopes of the dead-letter queue. */
  readonly reason?: string;
}

/** Broadcast subscribers: each gets every message of its kind. */
export type Tap = (body: string) => void;

export class World {
  private readonly workQueues = new Map<string, MemoryQueue>();
  private readonly storedQueues = new Map<string, MemoryQueue>();
  readonly dead: MemoryQueue;
  private readonly taps = new Map<MessageKind, Set<Tap>>();
  private tasks: Array<() => void> = [];
  private scheduled = false;
  private lastId = 0;

  constructor(
    readonly deliveryLimit: number,
    readonly logger: BrokerLogger,
  ) {
    this.dead = new MemoryQueue(this, null);
  }

  envelope(kind: MessageKind | null, body: string, reason?: string): Envelope {
    this.lastId += 1;
    return reason === undefined
      ? { id: this.lastId, kind, body, deliveryCount: 0 }
      : { id: this.lastId, kind, body, deliveryCount: 0, reason };
  }

  deadLetter(envelope: Envelope, reason: string): void {
    this.dead.push(this.envelope(envelope.kind, envelope.body, reason));
  }

  /** The work queue `name` of `kind`, made on first use (with a dead-letter target). */
  workQueue(kind: MessageKind, name: string): MemoryQueue {
    const key = `${kind}\u0000${name}`;
    let queue = this.workQueues.get(key);
    if (!queue) {
      queue = new MemoryQueue(this, (envelope, reason) => this.deadLetter(envelope, reason));
      this.workQueues.set(key, queue);
    }
    return queue;
  }

  storedQueue(kind: MessageKind): MemoryQueue {
    let queue = this.storedQueues.get(kind);
    if (!queue) {
      queue = new MemoryQueue(this, null);
      this.storedQueues.set(kind, queue);
    }
    return queue;
  }

  tapsOf(kind: MessageKind): Set<Tap> {
    let taps = this.taps.get(kind);
    if (!taps) {
      taps = new Set();
      this.taps.set(kind, taps);
    }
    return taps;
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
      for (const queue of this.workQueues.values()) queue.dispatch();
      for (const queue of this.storedQueues.values()) queue.dispatch();
      this.dead.dispatch();
    });
  }
}

export class MemoryQueue {
  private readonly ready: Envelope[] = [];
  /** Deliveries handed back, served before `ready` (quorum queues do the same), oldest first. */
  private readonly returned: Envelope[] = [];
  private readonly subscriptions: Subscription[] = [];
  private next = 0;

  constructor(
    private readonly world: World,
    /** Null for queues without a dead-letter target and delivery limit (stored, dead). */
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
export class Subscription {
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

  /** To the dead-letter queue with `reason`, whether or not its queue has a dead-letter target. */
  reject(envelope: Envelope, reason = 'rejected'): boolean {
    const queue = this.unacked.get(envelope);
    if (!queue) return false;
    this.unacked.delete(envelope);
    if (queue.deadLetter) queue.deadLetter(envelope, reason);
    else this.world.deadLetter(envelope, reason);
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

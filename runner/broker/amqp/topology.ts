/**
 * RabbitMQ names and declarations for the catalog's kinds, every name prefixed with `prefix` (`<p>`):
 *
 * - work kind with exchange `x` (e.g. `builds`): `<p>.x` (direct, durable) → one quorum queue
 *   `<p>.x.<queue>` per queue name, bound with routing key `<queue>`, `x-delivery-limit` =
 *   deliveryLimit − 1 (five deliveries by default: the fifth return dead-letters it), dead-lettered to
 *   `<p>.dlx`. Declared on first publish or consume of that queue name.
 * - broadcast kind with exchange `x` (e.g. `events`, `control`): `<p>.x` (topic, durable); each
 *   subscription binds an exclusive, auto-delete, server-named queue with `#`. A stored kind also has
 *   `<p>.x.store`, a quorum queue with a single active consumer, bound to its stored routing keys.
 * - `<p>.dlx` (fanout) → quorum queue `<p>.dead`.
 */
import amqp, { type Channel } from 'amqplib';
import {
  broadcastKind,
  MESSAGE_KIND_NAMES,
  MESSAGE_KINDS,
  type MessageKind,
  type StoredKind,
} from '../../contract/catalog.ts';

export const QUORUM = { 'x-queue-type': 'quorum' };

export class Topology {
  readonly dlx: string;
  readonly dead: string;

  constructor(readonly prefix: string) {
    this.dlx = `${prefix}.dlx`;
    this.dead = `${prefix}.dead`;
  }

  exchange(kind: MessageKind): string {
    return `${this.prefix}.${MESSAGE_KINDS[kind].exchange}`;
  }

  workQueue(kind: MessageKind, queue: string): string {
    return `${this.exchange(kind)}.${queue}`;
  }

  storedQueue(kind: StoredKind): string {
    return `${this.exchange(kind)}.store`;
  }

  /** The kind whose exchange is `exchange` (a dead letter's origin), or null. */
  kindOfExchange(exchange: unknown): MessageKind | null {
    return MESSAGE_KIND_NAMES.find((kind) => this.exchange(kind) === exchange) ?? null;
  }

  /** Declares every exchange, the dead-letter queue and the stored queues (idempotent). */
  async declare(channel: Channel): Promise<void> {
    await channel.assertExchange(this.dlx, 'fanout', { durable: true });
    await channel.assertQueue(this.dead, { durable: true, arguments: QUORUM });
    await channel.bindQueue(this.dead, this.dlx, '');
    for (const kind of MESSAGE_KIND_NAMES) {
      const spec = MESSAGE_KINDS[kind];
      await channel.assertExchange(this.exchange(kind), spec.pattern === 'work' ? 'direct' : 'topic', {
        durable: true,
      });
      const stored = spec.pattern === 'broadcast' ? broadcastKind(kind as 'event').stored : null;
      if (!stored) continue;
      const queue = this.storedQueue(kind as StoredKind);
      // One consumer at a time (the others stand by): messages are stored in the order they were
      // published, which status transitions rely on.
      await channel.assertQueue(queue, {
        durable: true,
        arguments: { ...QUORUM, 'x-single-active-consumer': true },
      });
      for (const key of stored.routingKeys) await channel.bindQueue(queue, this.exchange(kind), key);
      // Topologies of earlier versions bound everything, build.updated included.
      await channel.unbindQueue(queue, this.exchange(kind), '#');
    }
  }

  async declareWorkQueue(channel: Channel, kind: MessageKind, queue: string, deliveryLimit: number) {
    const name = this.workQueue(kind, queue);
    await channel.assertQueue(name, {
      durable: true,
      arguments: { ...QUORUM, 'x-delivery-limit': deliveryLimit - 1, 'x-dead-letter-exchange': this.dlx },
    });
    await channel.bindQueue(name, this.exchange(kind), queue);
  }
}

/**
 * Deletes the exchanges and queues of `prefix` (tests: leave nothing behind), including the work
 * queues named `queues` of every work kind.
 */
export async function deleteTopology(
  url: string,
  prefix: string,
  queues: Iterable<string> = [],
): Promise<void> {
  const names = new Topology(prefix);
  const conn = await amqp.connect(url);
  conn.on('error', () => {});
  try {
    const channel = await conn.createChannel();
    channel.on('error', () => {});
    const doomed = [names.dead];
    for (const kind of MESSAGE_KIND_NAMES) {
      const spec = MESSAGE_KINDS[kind];
      if (spec.pattern === 'work') for (const queue of queues) doomed.push(names.workQueue(kind, queue));
      else if (broadcastKind(kind as 'event').stored) doomed.push(names.storedQueue(kind as StoredKind));
    }
    for (const queue of new Set(doomed)) await channel.deleteQueue(queue);
    for (const kind of MESSAGE_KIND_NAMES) await channel.deleteExchange(names.exchange(kind));
    await channel.deleteExchange(names.dlx);
    await channel.close();
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * The RabbitMQ broker (amqplib): the Broker interface over one lasting connection (`connection.ts`),
 * the catalog's topology (`topology.ts`) and one consumer class per delivery pattern. Work messages
 * are published persistent and mandatory (publish rejects when no queue takes the job); broadcasts
 * persistent when their kind says so. attempt = `x-delivery-count` + 1; requeue() counts as a
 * delivery.
 */
import type {
  Broker,
  Consumer,
  DeadLetter,
  StoredDelivery,
  StoredOptions,
  WorkDelivery,
} from '../../contract/broker.ts';
import {
  type BroadcastKind,
  broadcastKind,
  MESSAGE_KINDS,
  type MessageKind,
  type MessageOf,
  routingKeyOf,
  type StoredKind,
  type WorkKind,
} from '../../contract/catalog.ts';
import { encode } from '../payload.ts';
import { BroadcastAttachment } from './broadcast-consumer.ts';
import { AmqpConnection } from './connection.ts';
import { DeadLetterAttachment } from './dead-letter-consumer.ts';
import { StoredAttachment } from './stored-consumer.ts';
import { WorkAttachment } from './work-consumer.ts';

export type { AmqpBrokerOptions } from './connection.ts';

export class AmqpBroker extends AmqpConnection implements Broker {
  async publish<K extends MessageKind>(kind: K, messages: readonly MessageOf<K>[]): Promise<void> {
    if (messages.length === 0) return;
    const outgoing = messages.map((message) => ({
      routingKey: routingKeyOf(kind, message),
      body: encode(message),
    }));
    const spec = MESSAGE_KINDS[kind];
    if (spec.pattern === 'work') {
      // One queue a publish call: each is declared before its messages go out.
      const byQueue = new Map<string, typeof outgoing>();
      for (const message of outgoing)
        byQueue.set(message.routingKey, [...(byQueue.get(message.routingKey) ?? []), message]);
      for (const [queue, group] of byQueue) {
        await this.publishMany(this.names.exchange(kind), group, {
          persistent: true,
          mandatory: true,
          declare: { kind, queue },
        });
      }
      return;
    }
    await this.publishMany(this.names.exchange(kind), outgoing, {
      persistent: broadcastKind(kind as BroadcastKind).persistent,
      mandatory: false,
    });
  }

  async consume<K extends WorkKind>(
    kind: K,
    queues: readonly string[],
    prefetch: number,
    handler: (delivery: WorkDelivery<MessageOf<K>>) => Promise<void>,
  ): Promise<Consumer> {
    const attachment = new WorkAttachment(this, kind, [...new Set(queues)], Math.max(1, prefetch), handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async subscribe<K extends BroadcastKind>(
    kind: K,
    handler: (message: MessageOf<K>) => void,
  ): Promise<Consumer> {
    const attachment = new BroadcastAttachment(this, kind, handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async consumeStored<K extends StoredKind>(
    kind: K,
    handler: (batch: StoredDelivery<MessageOf<K>>[]) => Promise<void>,
    opts?: StoredOptions,
  ): Promise<Consumer> {
    const attachment = new StoredAttachment(this, kind, handler, opts);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer> {
    const attachment = new DeadLetterAttachment(this, handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  /** For tests: publish a body as is, valid or not, as a foreign or buggy publisher would. */
  async publishRaw(kind: MessageKind, routingKey: string, body: string): Promise<void> {
    const work = MESSAGE_KINDS[kind].pattern === 'work';
    await this.publishMany(this.names.exchange(kind), [{ routingKey, body: Buffer.from(body) }], {
      persistent: true,
      mandatory: work,
      ...(work ? { declare: { kind, queue: routingKey } } : {}),
    });
  }
}

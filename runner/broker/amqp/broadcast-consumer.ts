/**
 * Subscribes this process to every broadcast of a kind: an exclusive, auto-delete, server-named queue
 * bound with `#`. Each message is acked once handled, with a prefetch, so RabbitMQ sends no more than
 * BROADCAST_PREFETCH ahead of what this process has handled: a burst of events (a build printing
 * fast) waits in RabbitMQ, not in this process's memory. Invalid payloads are dropped with a warning.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { BroadcastKind, MessageOf } from '../../contract/catalog.ts';
import { decode } from '../payload.ts';
import { Attachment, type AttachmentHost, alive } from './attachment.ts';

/** Messages RabbitMQ sends a subscription ahead of its acks. */
const BROADCAST_PREFETCH = 256;

export class BroadcastAttachment<K extends BroadcastKind> extends Attachment {
  constructor(
    host: AttachmentHost,
    private readonly kind: K,
    private readonly handler: (message: MessageOf<K>) => void,
  ) {
    super(host);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(BROADCAST_PREFETCH);
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, this.host.names.exchange(this.kind), '#');
    await this.consume(channel, queue, (message) => this.onMessage(channel, message));
  }

  private onMessage(channel: Channel, raw: ConsumeMessage): void {
    const message = decode(this.kind, raw.content, this.host.logger);
    if (message !== undefined && !this.cancelled) {
      try {
        this.handler(message);
      } catch (err) {
        this.host.logger.error({ err, kind: this.kind }, `${this.kind} subscriber failed`);
      }
    }
    if (alive(channel)) channel.ack(raw);
  }
}

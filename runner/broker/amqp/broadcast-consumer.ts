/**
 * Subscribes this process to every broadcast of a kind: an exclusive, auto-delete, server-named queue
 * bound with `#`, without acks. Invalid payloads are dropped with a warning.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { BroadcastKind, MessageOf } from '../../contract/catalog.ts';
import { decode } from '../payload.ts';
import { Attachment, type AttachmentHost } from './attachment.ts';

export class BroadcastAttachment<K extends BroadcastKind> extends Attachment {
  constructor(
    host: AttachmentHost,
    private readonly kind: K,
    private readonly handler: (message: MessageOf<K>) => void,
  ) {
    super(host);
  }

  protected async setup(channel: Channel): Promise<void> {
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, this.host.names.exchange(this.kind), '#');
    await this.consume(channel, queue, (message) => this.onMessage(message), { noAck: true });
  }

  private onMessage(raw: ConsumeMessage): void {
    const message = decode(this.kind, raw.content, this.host.logger);
    if (message === undefined || this.cancelled) return;
    try {
      this.handler(message);
    } catch (err) {
      this.host.logger.error({ err, kind: this.kind }, `${this.kind} subscriber failed`);
    }
  }
}

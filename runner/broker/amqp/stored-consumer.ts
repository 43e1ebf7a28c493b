/**
 * Consumes a stored queue (single active consumer: one api process stores at a time, in publish
 * order, the others stand by) through StoredBatches, with a prefetch of two batches. A delivery the
 * handler dead-letters is published to the dead-letter exchange with its reason and kind, then acked.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { StoredDelivery, StoredOptions } from '../../contract/broker.ts';
import type { MessageOf, StoredKind } from '../../contract/catalog.ts';
import { decode } from '../payload.ts';
import { StoredBatches } from '../stored-batches.ts';
import { Attachment, type AttachmentHost, alive } from './attachment.ts';

interface Received {
  channel: Channel;
  message: ConsumeMessage;
}

/** Headers of a dead letter published by Kiln itself rather than by RabbitMQ. */
export const KIND_HEADER = 'x-kiln-kind';
export const REASON_HEADER = 'x-kiln-reason';

export class StoredAttachment<K extends StoredKind> extends Attachment {
  private readonly batches: StoredBatches<Received, MessageOf<K>>;

  constructor(
    host: AttachmentHost,
    private readonly kind: K,
    handler: (batch: StoredDelivery<MessageOf<K>>[]) => Promise<void>,
    opts: StoredOptions | undefined,
  ) {
    super(host);
    this.batches = new StoredBatches<Received, MessageOf<K>>(
      kind,
      (item) => decode(kind, item.message.content, host.logger),
      handler,
      {
        ack: (item) => {
          if (alive(item.channel)) item.channel.ack(item.message);
        },
        deadLetter: (item, reason) => this.deadLetter(item, reason),
      },
      host.logger,
      opts,
      () => this.closeWhenIdle(),
      (item) => item.message.content.length,
    );
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(2 * this.batches.batchSize);
    await this.consume(channel, this.host.names.storedQueue(this.kind), (message) =>
      this.onMessage(channel, message),
    );
  }

  protected override unsettled(): number {
    return this.batches.unsettled();
  }

  protected override release(_channel: Channel): void {
    for (const { channel, message } of this.batches.stop()) {
      if (alive(channel)) channel.nack(message, false, true);
    }
  }

  protected override detached(): void {
    this.batches.forget();
  }

  private onMessage(channel: Channel, message: ConsumeMessage): void {
    if (this.cancelled) {
      if (alive(channel)) channel.nack(message, false, true);
      return;
    }
    this.batches.push({ channel, message });
  }

  private deadLetter(item: Received, reason: string): void {
    const { channel, message } = item;
    if (!alive(channel)) return;
    // Published on the consumer's own channel before the ack: were the ack lost, the message comes
    // back and is dead-lettered again, never lost.
    channel.publish(this.host.names.dlx, '', message.content, {
      persistent: true,
      contentType: 'application/json',
      headers: { [KIND_HEADER]: this.kind, [REASON_HEADER]: reason },
    });
    channel.ack(message);
  }
}

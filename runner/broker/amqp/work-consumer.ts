/**
 * Consumes work (e.g. build jobs) from one or more work queues. With several queues, RabbitMQ's
 * prefetch is per queue (quorum queues have no channel-wide prefetch): deliveries past `prefetch` wait
 * here, unacked, until one of the running ones is settled. A message's redelivery that arrives while
 * the handler still runs its first delivery (the connection was lost and is back) is not run twice:
 * the running handler's settlement goes to the redelivery instead.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { WorkDelivery } from '../../contract/broker.ts';
import { type MessageOf, type WorkKind, workKind } from '../../contract/catalog.ts';
import { decode } from '../payload.ts';
import { Attachment, type AttachmentHost, alive, deliveryCount } from './attachment.ts';

export class WorkAttachment<K extends WorkKind> extends Attachment {
  private inFlight = 0;
  private waiting: Array<{ channel: Channel; message: ConsumeMessage; body: MessageOf<K> }> = [];
  /** Where each running message's settlement goes, by its identity: its delivery, or its redelivery. */
  private readonly running = new Map<string, { channel: Channel; message: ConsumeMessage }>();

  constructor(
    host: AttachmentHost,
    private readonly kind: K,
    private readonly queues: string[],
    private readonly prefetch: number,
    private readonly handler: (delivery: WorkDelivery<MessageOf<K>>) => Promise<void>,
  ) {
    super(host);
  }

  private identity(message: MessageOf<K>): string {
    return workKind(this.kind).identity(message);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(this.prefetch);
    for (const queue of this.queues) await this.host.declareWorkQueue(channel, this.kind, queue);
    for (const queue of this.queues) {
      await this.consume(channel, this.host.names.workQueue(this.kind, queue), (message) =>
        this.onMessage(channel, message),
      );
    }
  }

  protected override unsettled(): number {
    return this.inFlight;
  }

  protected override release(channel: Channel): void {
    for (const { message } of this.waiting.splice(0)) channel.nack(message, false, true);
  }

  protected override detached(): void {
    this.waiting = [];
  }

  private onMessage(channel: Channel, message: ConsumeMessage): void {
    if (this.cancelled) {
      if (alive(channel)) channel.nack(message, false, true);
      return;
    }
    const body = decode(this.kind, message.content, this.host.logger);
    if (body === undefined) {
      channel.nack(message, false, false);
      return;
    }
    const id = this.identity(body);
    const running = this.running.get(id);
    if (running && !alive(running.channel)) {
      // Our own work, back after a lost connection while the handler still runs it: it is not run
      // twice here; the handler's ack or reject settles the redelivery instead.
      running.channel = channel;
      running.message = message;
      this.host.logger.warn(
        { kind: this.kind, id },
        `${this.kind} redelivered while still running here: kept`,
      );
      return;
    }
    if (this.inFlight >= this.prefetch) this.waiting.push({ channel, message, body });
    else this.run(channel, message, body);
  }

  private run(channel: Channel, message: ConsumeMessage, body: MessageOf<K>): void {
    this.inFlight += 1;
    const id = this.identity(body);
    const target = { channel, message };
    this.running.set(id, target);
    let settled = false;
    const settle = (how: 'ack' | 'requeue' | 'reject') => async (): Promise<void> => {
      if (settled) return;
      settled = true;
      this.inFlight -= 1;
      if (this.running.get(id) === target) this.running.delete(id);
      if (!alive(target.channel)) {
        this.host.logger.warn(
          { kind: this.kind, id },
          `cannot ${how} the ${this.kind}: its connection is gone and RabbitMQ delivers it again`,
        );
      } else if (how === 'ack') target.channel.ack(target.message);
      else target.channel.nack(target.message, false, how === 'requeue');
      this.pump();
      this.closeWhenIdle();
    };
    const delivery: WorkDelivery<MessageOf<K>> = {
      message: body,
      attempt: deliveryCount(message) + 1,
      ack: settle('ack'),
      requeue: settle('requeue'),
      reject: settle('reject'),
    };
    void (async () => {
      try {
        await this.handler(delivery);
      } catch (err) {
        this.host.logger.error(
          { err, kind: this.kind, id },
          `${this.kind} handler failed, dead-lettering it`,
        );
        await delivery.reject();
      }
    })();
  }

  private pump(): void {
    while (this.inFlight < this.prefetch && this.waiting.length > 0 && !this.cancelled) {
      const next = this.waiting.shift();
      if (next && alive(next.channel)) this.run(next.channel, next.message, next.body);
    }
  }
}

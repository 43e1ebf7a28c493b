/**
 * A consumer's presence on one RabbitMQ connection: its own channel (so its prefetch is its own and
 * closing it hands its unacked deliveries back), set up again on each new connection. cancel() stops
 * deliveries at once and closes the channel when nothing handed out is unsettled. One subclass per
 * consumer kind: work, stored, broadcast, dead letters.
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { BrokerLogger } from '../../contract/broker.ts';
import type { MessageKind } from '../../contract/catalog.ts';
import type { Topology } from './topology.ts';

/** What an attachment needs of the connection that owns it. */
export interface AttachmentHost {
  readonly logger: BrokerLogger;
  readonly names: Topology;
  /** Consumer channels not closed yet, including those of cancelled consumers still settling. */
  readonly channels: Set<Channel>;
  declareWorkQueue(channel: Channel, kind: MessageKind, queue: string): Promise<void>;
  isClosing(): boolean;
  /** Attach it again once its channel alone was closed by the server (e.g. its queue was deleted). */
  reattachLater(attachment: Attachment): void;
  forget(attachment: Attachment): void;
}

/** Channels that are closed, whatever closed them: settling on them is pointless. */
const closedChannels = new WeakSet<Channel>();
const closingChannels = new WeakMap<Channel, Promise<void>>();

/**
 * Closes a channel once, however many ask. RabbitMQ handles an ack sent before channel.close, but
 * may drop one still in flight when the whole connection closes: close channels first.
 */
export function closeChannel(channel: Channel): Promise<void> {
  let closing = closingChannels.get(channel);
  if (!closing) {
    closing = closedChannels.has(channel) ? Promise.resolve() : channel.close().catch(() => {});
    closingChannels.set(channel, closing);
  }
  return closing;
}

export function alive(channel: Channel): boolean {
  return !closedChannels.has(channel);
}

/** Times RabbitMQ delivered it before (quorum queues count; classic ones only say "redelivered"). */
export function deliveryCount(message: ConsumeMessage): number {
  const count: unknown = message.properties.headers?.['x-delivery-count'];
  return typeof count === 'number' ? count : message.fields.redelivered ? 1 : 0;
}

export abstract class Attachment {
  connection: ChannelModel | null = null;
  channel: Channel | null = null;
  protected cancelled = false;
  private tags: string[] = [];

  constructor(protected readonly host: AttachmentHost) {}

  async attach(conn: ChannelModel): Promise<void> {
    this.connection = conn;
    let settingUp = true;
    let channel: Channel;
    try {
      channel = await conn.createChannel();
    } catch (err) {
      if (this.connection === conn) this.connection = null;
      throw err;
    }
    channel.on('error', (err: Error) => this.host.logger.warn({ err }, 'rabbitmq consumer channel error'));
    this.host.channels.add(channel);
    channel.on('close', () => {
      closedChannels.add(channel);
      this.host.channels.delete(channel);
      if (this.channel !== channel) return;
      this.channel = null;
      if (this.connection === conn) this.connection = null;
      this.detached();
      if (settingUp || this.cancelled || this.host.isClosing()) return;
      // The connection's own loss is the reconnect's business; a channel closed alone needs us.
      this.host.reattachLater(this);
    });
    this.channel = channel;
    this.tags = [];
    try {
      await this.setup(channel);
      settingUp = false;
    } catch (err) {
      settingUp = false;
      if (this.channel === channel) this.channel = null;
      if (this.connection === conn) this.connection = null;
      await closeChannel(channel);
      throw err;
    }
  }

  async cancel(): Promise<void> {
    if (this.cancelled) return;
    this.cancelled = true;
    this.host.forget(this);
    const channel = this.channel;
    if (!channel || !alive(channel)) return;
    this.release(channel);
    for (const tag of this.tags) await channel.cancel(tag).catch(() => {});
    this.closeWhenIdle();
  }

  protected abstract setup(channel: Channel): Promise<void>;

  protected async consume(
    channel: Channel,
    queue: string,
    onMessage: (message: ConsumeMessage) => void,
    options: { noAck?: boolean } = {},
  ): Promise<void> {
    const { consumerTag } = await channel.consume(
      queue,
      (message) => {
        if (message) onMessage(message);
        else this.serverCancelled(channel);
      },
      options,
    );
    this.tags.push(consumerTag);
  }

  /** Deliveries handed to the handler and not settled yet. */
  protected unsettled(): number {
    return 0;
  }

  /** On cancel(): hand back what was received but not given to the handler. */
  protected release(_channel: Channel): void {}

  /** The channel is gone: drop what belonged to it (RabbitMQ has it back). */
  protected detached(): void {}

  protected closeWhenIdle(): void {
    if (!this.cancelled || this.unsettled() > 0) return;
    const channel = this.channel;
    this.channel = null;
    this.connection = null;
    if (channel) void closeChannel(channel);
  }

  /** A server-side cancel (its queue was deleted): close the channel so it is attached again. */
  private serverCancelled(channel: Channel): void {
    if (this.cancelled) return;
    this.host.logger.warn({}, 'rabbitmq cancelled a consumer, re-attaching');
    void closeChannel(channel);
  }
}

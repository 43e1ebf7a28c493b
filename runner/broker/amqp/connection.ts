/**
 * One RabbitMQ connection that lasts: connects with backoff, re-establishes a connection lost by
 * anything but close() (100 ms doubling to 5 s), declares the topology again and re-attaches every
 * active consumer. Deliveries of the lost connection are RabbitMQ's again: settling them later is a
 * logged no-op.
 *
 * Publishing goes through one confirm channel: a publish resolves on RabbitMQ's confirm, and messages
 * published one call after another go out in call order without waiting for each other's confirm.
 * Publishes wait for the connection (up to `connectTimeoutMs`) and are repeated when the connection
 * drops before the confirm, so a publish is at least once (every consumer is idempotent). A mandatory
 * message no queue takes is refused with UnroutableError.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { type BrokerLogger, type BrokerOptions, DEFAULT_DELIVERY_LIMIT } from '../../contract/broker.ts';
import type { MessageKind } from '../../contract/catalog.ts';
import { silentLogger } from '../payload.ts';
import { type Attachment, type AttachmentHost, closeChannel } from './attachment.ts';
import { Topology } from './topology.ts';

export interface AmqpBrokerOptions extends BrokerOptions {
  /** `amqp://user:password@host:port/vhost`, amqplib URL parameters allowed (e.g. `?heartbeat=10`). */
  url: string;
  /** Shown by `rabbitmqctl list_connections`; unique per broker by default. */
  connectionName?: string;
  /** First delay before reconnecting, doubled on each failure up to maxReconnectDelayMs. Default 100. */
  reconnectDelayMs?: number;
  /** Default 5000. */
  maxReconnectDelayMs?: number;
  /** How long start() and publishes wait for a connection before failing. Default 30000. */
  connectTimeoutMs?: number;
}

export class UnroutableError extends Error {}

export interface OutgoingMessage {
  routingKey: string;
  body: Buffer;
}

export interface PublishOptions {
  persistent: boolean;
  mandatory: boolean;
  /** A work queue to declare (once per connection) before publishing: its kind and name. */
  declare?: { kind: MessageKind; queue: string };
}

export class AmqpConnection implements AttachmentHost {
  readonly connectionName: string;
  /** Work queue names this connection declared, so tests can delete them (see deleteTopology). */
  readonly declaredWorkQueues = new Set<string>();
  readonly names: Topology;
  readonly logger: BrokerLogger;
  readonly channels = new Set<Channel>();
  protected readonly deliveryLimit: number;
  private readonly url: string;
  private readonly reconnectDelayMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly connectTimeoutMs: number;
  private conn: ChannelModel | null = null;
  private publisher: {
    conn: ChannelModel;
    channel: Promise<ConfirmChannel>;
    /** The channel once open: publishes on it go out synchronously, in call order. */
    ready: ConfirmChannel | null;
  } | null = null;
  /** Work queues declared on the current connection, by `<kind> <queue>`. */
  private declared = new Map<string, Promise<void>>();
  private readonly attachments = new Set<Attachment>();
  /** Waiting for a connection (publishes) or for a backoff delay to pass; all woken by close(). */
  private readonly waiters = new Set<() => void>();
  private readonly returned = new Set<string>();
  private started: Promise<void> | null = null;
  private closing = false;
  private published = 0;

  constructor(options: AmqpBrokerOptions) {
    this.url = options.url;
    this.names = new Topology(options.prefix ?? 'kiln');
    this.deliveryLimit = Math.max(1, options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT);
    this.logger = options.logger ?? silentLogger;
    this.connectionName =
      options.connectionName ?? `kiln-${options.prefix ?? 'kiln'}-${randomUUID().slice(0, 8)}`;
    this.reconnectDelayMs = options.reconnectDelayMs ?? 100;
    this.maxReconnectDelayMs = options.maxReconnectDelayMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  }

  start(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('broker closed'));
    if (!this.started) {
      const started = this.connectUntil(Date.now() + this.connectTimeoutMs);
      this.started = started;
      // A failed start may be tried again.
      started.catch(() => {
        if (this.started === started) this.started = null;
      });
    }
    return this.started;
  }

  isReady(): boolean {
    return this.conn !== null && !this.closing;
  }

  isClosing(): boolean {
    return this.closing;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const wake of [...this.waiters]) wake();
    this.attachments.clear();
    const conn = this.conn;
    const publisher = this.publisher;
    this.conn = null;
    this.publisher = null;
    // RabbitMQ takes back what was not acked when the channels close.
    const channels = [...this.channels];
    const publishing = await publisher?.channel.catch(() => undefined);
    if (publishing) channels.push(publishing);
    await Promise.all(channels.map(closeChannel));
    if (conn) await conn.close().catch(() => {});
  }

  /** Declares the work queue `queue` of `kind` and its binding, once per connection. */
  declareWorkQueue(channel: Channel, kind: MessageKind, queue: string): Promise<void> {
    const key = `${kind} ${queue}`;
    let declared = this.declared.get(key);
    if (!declared) {
      this.declaredWorkQueues.add(queue);
      declared = this.names.declareWorkQueue(channel, kind, queue, this.deliveryLimit);
      const map = this.declared;
      map.set(key, declared);
      declared.catch(() => map.delete(key));
    }
    return declared;
  }

  reattachLater(attachment: Attachment): void {
    void (async () => {
      let delay = this.reconnectDelayMs;
      while (!this.closing && this.attachments.has(attachment)) {
        await this.pause(delay);
        const conn = this.conn;
        // No connection: the reconnect attaches it. Same connection: someone already did.
        if (!conn || attachment.connection === conn || this.closing || !this.attachments.has(attachment))
          return;
        try {
          await attachment.attach(conn);
          return;
        } catch (err) {
          this.logger.warn({ err }, 'rabbitmq consumer could not be re-attached, retrying');
          delay = Math.min(delay * 2, this.maxReconnectDelayMs);
        }
      }
    })();
  }

  forget(attachment: Attachment): void {
    this.attachments.delete(attachment);
  }

  /** Attaches a consumer now (or on the next connection) and keeps it attached until cancelled. */
  protected async add(attachment: Attachment): Promise<void> {
    if (this.closing) throw new Error('broker closed');
    if (!this.started) throw new Error('broker not started');
    this.attachments.add(attachment);
    const conn = this.conn;
    if (!conn) return; // attached by the reconnect
    try {
      await attachment.attach(conn);
    } catch (err) {
      // Lost with its connection: the reconnect attaches it. Otherwise RabbitMQ refused it.
      if (this.conn !== conn && !this.closing) return;
      this.attachments.delete(attachment);
      throw err;
    }
  }

  protected async publishMany(
    exchange: string,
    messages: OutgoingMessage[],
    options: PublishOptions,
  ): Promise<void> {
    const deadline = Date.now() + this.connectTimeoutMs;
    // While connected with the channel open, the messages go out before this call returns: calls
    // made one after another are published in that order without waiting for each other's confirm.
    const publisher = this.publisher;
    if (options.declare === undefined && publisher?.ready && publisher.conn === this.conn && !this.closing) {
      try {
        await this.confirmAll(publisher.ready, exchange, messages, options);
        return;
      } catch (err) {
        if (err instanceof UnroutableError) throw err;
        await new Promise((resolve) => setImmediate(resolve));
        if (this.conn === publisher.conn) throw err;
        // Lost before the confirm: published again below, on the next connection.
      }
    }
    for (;;) {
      const conn = await this.connected(deadline);
      try {
        const channel = await this.publisherOn(conn);
        if (options.declare)
          await this.declareWorkQueue(channel, options.declare.kind, options.declare.queue);
        await this.confirmAll(channel, exchange, messages, options);
        return;
      } catch (err) {
        if (err instanceof UnroutableError || this.closing) throw err;
        // A lost connection closes its channels before it reports itself: let it.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.conn === conn) throw err; // the connection is fine: this is RabbitMQ's answer
        if (Date.now() >= deadline) throw err;
        // Lost before the confirm: RabbitMQ may or may not have it. Publish again (at least once).
      }
    }
  }

  private async connectUntil(deadline: number): Promise<void> {
    let delay = this.reconnectDelayMs;
    for (;;) {
      try {
        await this.connectOnce();
        return;
      } catch (err) {
        if (this.closing || Date.now() + delay > deadline) throw err;
        this.logger.warn({ err }, 'rabbitmq unreachable, retrying');
        await this.pause(delay);
        delay = Math.min(delay * 2, this.maxReconnectDelayMs);
      }
    }
  }

  private async reconnect(): Promise<void> {
    let delay = this.reconnectDelayMs;
    while (!this.closing) {
      await this.pause(delay);
      if (this.closing) return;
      try {
        await this.connectOnce();
        this.logger.warn({ connection: this.connectionName }, 'rabbitmq connection re-established');
        return;
      } catch (err) {
        this.logger.warn({ err }, 'rabbitmq reconnect failed, retrying');
        delay = Math.min(delay * 2, this.maxReconnectDelayMs);
      }
    }
  }

  private async connectOnce(): Promise<void> {
    const conn = await amqp.connect(this.url, {
      clientProperties: { connection_name: this.connectionName },
      // Without it Nagle's algorithm holds a publish behind the unacknowledged segment before it
      // (RabbitMQ acks after a delayed-ACK pause): a 2–60 KB message took ~45 ms to confirm, not ~1.
      noDelay: true,
    });
    let lost = false;
    conn.on('error', (err: Error) => this.logger.warn({ err }, 'rabbitmq connection error'));
    conn.on('close', () => {
      lost = true;
      this.onClose(conn);
    });
    try {
      const channel = await conn.createChannel();
      channel.on('error', () => {});
      await this.names.declare(channel);
      await channel.close();
      this.declared = new Map();
      // Consumers added while this loop awaits are attached by a later pass; the last check and the
      // assignment below run without an await between them, so none is missed.
      for (;;) {
        const pending = [...this.attachments].filter((attachment) => attachment.connection !== conn);
        if (pending.length === 0) break;
        for (const attachment of pending) {
          if (this.attachments.has(attachment)) await attachment.attach(conn);
        }
      }
    } catch (err) {
      await conn.close().catch(() => {});
      throw err;
    }
    if (lost) throw new Error('rabbitmq connection lost while setting up');
    if (this.closing) {
      await conn.close().catch(() => {});
      throw new Error('broker closed');
    }
    this.conn = conn;
    for (const wake of [...this.waiters]) wake();
  }

  private onClose(conn: ChannelModel): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.publisher = null;
    this.declared = new Map();
    if (this.closing) return;
    this.logger.warn({ connection: this.connectionName }, 'rabbitmq connection lost, reconnecting');
    void this.reconnect();
  }

  /** Resolves after `ms`, or at once when the broker connects or closes. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      this.waiters.add(wake);
    });
  }

  private async connected(deadline: number): Promise<ChannelModel> {
    for (;;) {
      if (this.closing) throw new Error('broker closed');
      if (!this.started) throw new Error('broker not started');
      if (this.conn) return this.conn;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`rabbitmq unavailable for ${this.connectTimeoutMs} ms`);
      await this.pause(left);
    }
  }

  private publisherOn(conn: ChannelModel): Promise<ConfirmChannel> {
    if (this.publisher?.conn === conn) return this.publisher.channel;
    const channel = conn.createConfirmChannel().then((ch) => {
      ch.on('error', (err: Error) => this.logger.warn({ err }, 'rabbitmq publish channel error'));
      ch.on('return', (message: { properties: { messageId?: string } }) => {
        if (message.properties.messageId) this.returned.add(message.properties.messageId);
      });
      ch.on('close', () => {
        if (this.publisher?.channel === channel) this.publisher = null;
      });
      return ch;
    });
    const publisher: NonNullable<typeof this.publisher> = { conn, channel, ready: null };
    this.publisher = publisher;
    channel.then(
      (ch) => {
        publisher.ready = ch;
      },
      () => {
        if (this.publisher === publisher) this.publisher = null;
      },
    );
    return channel;
  }

  private confirmAll(
    channel: ConfirmChannel,
    exchange: string,
    messages: OutgoingMessage[],
    options: PublishOptions,
  ): Promise<unknown> {
    return Promise.all(
      messages.map((message) =>
        this.confirm(channel, exchange, message, options.persistent, options.mandatory),
      ),
    );
  }

  private confirm(
    channel: ConfirmChannel,
    exchange: string,
    { routingKey, body }: OutgoingMessage,
    persistent: boolean,
    mandatory: boolean,
  ): Promise<void> {
    this.published += 1;
    const messageId = `${this.connectionName}.${this.published}`;
    return new Promise((resolve, reject) => {
      try {
        channel.publish(
          exchange,
          routingKey,
          body,
          { persistent, mandatory, messageId, contentType: 'application/json' },
          (err: unknown) => {
            // RabbitMQ sends basic.return before the confirm of an unroutable mandatory message.
            const unroutable = this.returned.delete(messageId);
            if (err) reject(err instanceof Error ? err : new Error(String(err)));
            else if (unroutable)
              reject(new UnroutableError(`no queue bound to ${exchange} for ${routingKey}`));
            else resolve();
          },
        );
      } catch (err) {
        reject(err);
      }
    });
  }
}

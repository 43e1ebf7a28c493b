/**
 * The RabbitMQ broker (amqplib). Topology, every name prefixed with `prefix` (`<p>`, default `kiln`):
 *
 * - `<p>.builds` (direct, durable) → one quorum queue `<p>.builds.<queue>` per runner queue name, bound
 *   with routing key `<queue>`, `x-delivery-limit` = deliveryLimit − 1 (default deliveryLimit 5:
 *   five deliveries, the fifth return dead-letters it), dead-lettered to `<p>.dlx`. Build queues are
 *   declared on first publish or consume, so a job for a queue without a runner yet waits in its queue.
 *   Jobs are published persistent and mandatory on a confirm channel: publishBuild rejects when
 *   RabbitMQ does not take the job. attempt = `x-delivery-count` + 1; requeue() counts as a delivery.
 * - `<p>.dlx` (fanout) → quorum queue `<p>.dead`; DeadLetter.reason is the `x-death` reason
 *   (`rejected`, `delivery_limit`, …).
 * - `<p>.events` (topic, routing key = event type) → quorum queue `<p>.events.store` bound to each
 *   type runners publish (STORED_EVENT_TYPES, not the api's build.updated), with a single active
 *   consumer (one api process stores at a time, in publish order, the others stand by; prefetch
 *   2 × batchSize, a batch is what arrived before the socket went quiet)
 *   and one exclusive, auto-delete, server-named queue per consumeEventsFanout call (no ack).
 * - `<p>.control` (topic, routing key `build.<id>`) → one exclusive server-named queue per
 *   consumeControl call, bound `build.*`; the consumer keeps the messages of the builds it watches.
 *
 * Each consumer has its own channel, so its prefetch is its own and closing it hands its unacked
 * deliveries back. Consumer.cancel() stops new deliveries; those already handed out can still be
 * settled, and the channel closes when the last one is. With several queues, RabbitMQ's prefetch is
 * per queue (quorum queues have no channel-wide prefetch): deliveries past `prefetch` wait in the
 * consumer, unacked, until one of the running ones is settled.
 *
 * A connection lost by anything but close() is re-established with backoff (100 ms doubling to 5 s),
 * the topology declared again and every active consumer re-attached.
 * Deliveries of the lost connection are RabbitMQ's again: settling them later is a logged no-op.
 * Publishes wait for the connection (up to 30 s) and are retried when the connection drops before
 * the confirm, so a publish is at least once; every message is idempotent on the consumer side.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
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
import type { RawExchange } from './memory-broker.ts';
import {
  type BuildJob,
  BuildJobSchema,
  type ControlMessage,
  ControlMessageSchema,
  type RunnerEvent,
  RunnerEventSchema,
  STORED_EVENT_TYPES,
} from './messages.ts';

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

const silent: BrokerLogger = { warn() {}, error() {} };

/** Dead letters handled at once by one consumer. */
const DEAD_LETTER_PREFETCH = 16;

interface Topology {
  builds: string;
  dlx: string;
  dead: string;
  events: string;
  store: string;
  control: string;
  buildQueue(queue: string): string;
}

function topologyOf(prefix: string): Topology {
  return {
    builds: `${prefix}.builds`,
    dlx: `${prefix}.dlx`,
    dead: `${prefix}.dead`,
    events: `${prefix}.events`,
    store: `${prefix}.events.store`,
    control: `${prefix}.control`,
    buildQueue: (queue) => `${prefix}.builds.${queue}`,
  };
}

const QUORUM = { 'x-queue-type': 'quorum' };

class UnroutableError extends Error {}

/** Channels that are closed, whatever closed them: settling on them is pointless. */
const closedChannels = new WeakSet<Channel>();
const closingChannels = new WeakMap<Channel, Promise<void>>();

/**
 * Closes a channel once, however many ask. RabbitMQ handles an ack sent before channel.close, but
 * may drop one still in flight when the whole connection closes: close channels first.
 */
function closeChannel(channel: Channel): Promise<void> {
  let closing = closingChannels.get(channel);
  if (!closing) {
    closing = closedChannels.has(channel) ? Promise.resolve() : channel.close().catch(() => {});
    closingChannels.set(channel, closing);
  }
  return closing;
}

export class AmqpBroker implements Broker {
  readonly connectionName: string;
  /** Build queue names this broker declared, so tests can delete them (see deleteTopology). */
  readonly declaredBuildQueues = new Set<string>();
  readonly names: Topology;
  readonly logger: BrokerLogger;
  private readonly url: string;
  private readonly deliveryLimit: number;
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
  /** Build queues declared on the current connection. */
  private declared = new Map<string, Promise<void>>();
  private readonly attachments = new Set<Attachment>();
  /** Consumer channels not closed yet, including those of cancelled consumers still settling. */
  readonly channels = new Set<Channel>();
  /** Waiting for a connection (publishes) or for a backoff delay to pass; all woken by close(). */
  private readonly waiters = new Set<() => void>();
  private readonly returned = new Set<string>();
  private started: Promise<void> | null = null;
  private closing = false;
  private published = 0;

  constructor(options: AmqpBrokerOptions) {
    this.url = options.url;
    this.names = topologyOf(options.prefix ?? 'kiln');
    this.deliveryLimit = Math.max(1, options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT);
    this.logger = options.logger ?? silent;
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

  async publishBuild(job: BuildJob): Promise<void> {
    await this.publish(this.names.builds, job.queue, [Buffer.from(JSON.stringify(job))], {
      persistent: true,
      mandatory: true,
      declare: job.queue,
    });
  }

  async consumeBuilds(
    queues: string[],
    prefetch: number,
    handler: (delivery: BuildDelivery) => Promise<void>,
  ): Promise<Consumer> {
    const attachment = new BuildAttachment(this, [...new Set(queues)], Math.max(1, prefetch), handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async publishEvents(events: RunnerEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.publishMany(
      this.names.events,
      events.map((event) => ({ routingKey: event.type, body: Buffer.from(JSON.stringify(event)) })),
      { persistent: true, mandatory: false },
    );
  }

  async consumeEventsToStore(
    handler: (deliveries: EventDelivery[]) => Promise<void>,
    opts?: { batchSize?: number },
  ): Promise<Consumer> {
    const attachment = new StoreAttachment(this, Math.max(1, opts?.batchSize ?? 500), handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async consumeEventsFanout(handler: (event: RunnerEvent) => void): Promise<Consumer> {
    const attachment = new FanoutAttachment(this, handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  async publishControl(message: ControlMessage): Promise<void> {
    await this.publish(
      this.names.control,
      `build.${message.buildId}`,
      [Buffer.from(JSON.stringify(message))],
      {
        persistent: false,
        mandatory: false,
      },
    );
  }

  async consumeControl(handler: (message: ControlMessage) => void): Promise<ControlConsumer> {
    const attachment = new ControlAttachment(this, handler);
    await this.add(attachment);
    return {
      watch: (buildId) => attachment.watch(buildId),
      unwatch: (buildId) => attachment.unwatch(buildId),
      cancel: () => attachment.cancel(),
    };
  }

  async consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer> {
    const attachment = new DeadLetterAttachment(this, handler);
    await this.add(attachment);
    return { cancel: () => attachment.cancel() };
  }

  isReady(): boolean {
    return this.conn !== null && !this.closing;
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

  /** For tests: publish a body as is, valid or not, as a foreign or buggy publisher would. */
  async publishRaw(exchange: RawExchange, routingKey: string, body: string): Promise<void> {
    const target = { builds: this.names.builds, events: this.names.events, control: this.names.control }[
      exchange
    ];
    await this.publish(target, routingKey, [Buffer.from(body)], {
      persistent: true,
      mandatory: exchange === 'builds',
      ...(exchange === 'builds' ? { declare: routingKey } : {}),
    });
  }

  /** Declares the build queue `queue` and its binding, once per connection. */
  declareBuildQueue(channel: Channel, queue: string): Promise<void> {
    let declared = this.declared.get(queue);
    if (!declared) {
      const name = this.names.buildQueue(queue);
      declared = (async () => {
        this.declaredBuildQueues.add(queue);
        await channel.assertQueue(name, {
          durable: true,
          arguments: {
            ...QUORUM,
            'x-delivery-limit': this.deliveryLimit - 1,
            'x-dead-letter-exchange': this.names.dlx,
          },
        });
        await channel.bindQueue(name, this.names.builds, queue);
      })();
      const map = this.declared;
      map.set(queue, declared);
      declared.catch(() => map.delete(queue));
    }
    return declared;
  }

  isClosing(): boolean {
    return this.closing;
  }

  /** Re-attaches a consumer whose channel alone was closed by the server (e.g. its queue was deleted). */
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

  private async add(attachment: Attachment): Promise<void> {
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
      await this.declareTopology(channel);
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

  private async declareTopology(channel: Channel): Promise<void> {
    const names = this.names;
    await channel.assertExchange(names.builds, 'direct', { durable: true });
    await channel.assertExchange(names.dlx, 'fanout', { durable: true });
    await channel.assertQueue(names.dead, { durable: true, arguments: QUORUM });
    await channel.bindQueue(names.dead, names.dlx, '');
    await channel.assertExchange(names.events, 'topic', { durable: true });
    // One consumer at a time (the others stand by): events of a build are stored in the order the
    // runner published them, which status transitions rely on.
    await channel.assertQueue(names.store, {
      durable: true,
      arguments: { ...QUORUM, 'x-single-active-consumer': true },
    });
    for (const type of STORED_EVENT_TYPES) await channel.bindQueue(names.store, names.events, type);
    // Topologies of earlier versions bound everything, build.updated included.
    await channel.unbindQueue(names.store, names.events, '#');
    await channel.assertExchange(names.control, 'topic', { durable: true });
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

  private publish(
    exchange: string,
    routingKey: string,
    bodies: Buffer[],
    options: { persistent: boolean; mandatory: boolean; declare?: string },
  ): Promise<void> {
    return this.publishMany(
      exchange,
      bodies.map((body) => ({ routingKey, body })),
      options,
    );
  }

  private async publishMany(
    exchange: string,
    messages: Array<{ routingKey: string; body: Buffer }>,
    options: { persistent: boolean; mandatory: boolean; declare?: string },
  ): Promise<void> {
    const deadline = Date.now() + this.connectTimeoutMs;
    // While connected with the channel open, the messages go out before this call returns: calls
    // made one after another are published in that order without waiting for each other's confirm.
    const publisher = this.publisher;
    if (options.declare === undefined && publisher?.ready && publisher.conn === this.conn && !this.closing) {
      const confirms = this.confirmAll(publisher.ready, exchange, messages, options);
      try {
        await confirms;
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
        if (options.declare !== undefined) await this.declareBuildQueue(channel, options.declare);
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

  private confirmAll(
    channel: ConfirmChannel,
    exchange: string,
    messages: Array<{ routingKey: string; body: Buffer }>,
    options: { persistent: boolean; mandatory: boolean },
  ): Promise<unknown> {
    return Promise.all(
      messages.map((message) =>
        this.confirm(channel, exchange, message.routingKey, message.body, {
          persistent: options.persistent,
          mandatory: options.mandatory,
        }),
      ),
    );
  }

  private confirm(
    channel: ConfirmChannel,
    exchange: string,
    routingKey: string,
    body: Buffer,
    options: { persistent: boolean; mandatory: boolean },
  ): Promise<void> {
    this.published += 1;
    const messageId = `${this.connectionName}.${this.published}`;
    return new Promise((resolve, reject) => {
      try {
        channel.publish(
          exchange,
          routingKey,
          body,
          { ...options, messageId, contentType: 'application/json' },
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

/**
 * A consumer's presence on one connection: its own channel, set up again on each new connection.
 * cancel() stops deliveries at once and closes the channel when nothing handed out is unsettled.
 */
abstract class Attachment {
  connection: ChannelModel | null = null;
  channel: Channel | null = null;
  protected cancelled = false;
  private tags: string[] = [];

  constructor(protected readonly broker: AmqpBroker) {}

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
    channel.on('error', (err: Error) => this.broker.logger.warn({ err }, 'rabbitmq consumer channel error'));
    this.broker.channels.add(channel);
    channel.on('close', () => {
      closedChannels.add(channel);
      this.broker.channels.delete(channel);
      if (this.channel !== channel) return;
      this.channel = null;
      if (this.connection === conn) this.connection = null;
      this.detached();
      if (settingUp || this.cancelled || this.broker.isClosing()) return;
      // The connection's own loss is the reconnect's business; a channel closed alone needs us.
      this.broker.reattachLater(this);
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
    this.broker.forget(this);
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
    this.broker.logger.warn({}, 'rabbitmq cancelled a consumer, re-attaching');
    void closeChannel(channel);
  }

  protected parse<T>(
    content: Buffer,
    schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: unknown } },
    what: string,
  ): T | undefined {
    const body = content.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      this.broker.logger.warn({ err, body: body.slice(0, 200) }, `${what} is not JSON`);
      return undefined;
    }
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    this.broker.logger.warn({ err: result.error, body: body.slice(0, 200) }, `${what} fails its schema`);
    return undefined;
  }
}

function alive(channel: Channel): boolean {
  return !closedChannels.has(channel);
}

function deliveryCount(message: ConsumeMessage): number {
  const count: unknown = message.properties.headers?.['x-delivery-count'];
  return typeof count === 'number' ? count : message.fields.redelivered ? 1 : 0;
}

class BuildAttachment extends Attachment {
  private inFlight = 0;
  private waiting: Array<{ channel: Channel; message: ConsumeMessage; job: BuildJob }> = [];
  /** Where each running job's settlement goes, by build id: its delivery, or its redelivery. */
  private readonly running = new Map<string, { channel: Channel; message: ConsumeMessage }>();

  constructor(
    broker: AmqpBroker,
    private readonly queues: string[],
    private readonly prefetch: number,
    private readonly handler: (delivery: BuildDelivery) => Promise<void>,
  ) {
    super(broker);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(this.prefetch);
    for (const queue of this.queues) await this.broker.declareBuildQueue(channel, queue);
    for (const queue of this.queues) {
      await this.consume(channel, this.broker.names.buildQueue(queue), (message) =>
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
    const job = this.parse(message.content, BuildJobSchema, 'build job');
    if (!job) {
      channel.nack(message, false, false);
      return;
    }
    const running = this.running.get(job.buildId);
    if (running && !alive(running.channel)) {
      // Our own job, back after a lost connection while the handler still runs it: it is not run
      // twice here; the handler's ack or reject settles the redelivery instead.
      running.channel = channel;
      running.message = message;
      this.broker.logger.warn(
        { buildId: job.buildId },
        'build job redelivered while still running here: kept',
      );
      return;
    }
    if (this.inFlight >= this.prefetch) this.waiting.push({ channel, message, job });
    else this.run(channel, message, job);
  }

  private run(channel: Channel, message: ConsumeMessage, job: BuildJob): void {
    this.inFlight += 1;
    const target = { channel, message };
    this.running.set(job.buildId, target);
    let settled = false;
    const settle = (how: 'ack' | 'requeue' | 'reject') => async (): Promise<void> => {
      if (settled) return;
      settled = true;
      this.inFlight -= 1;
      if (this.running.get(job.buildId) === target) this.running.delete(job.buildId);
      if (!alive(target.channel)) {
        this.broker.logger.warn(
          { buildId: job.buildId },
          `cannot ${how} the build job: its connection is gone and RabbitMQ delivers it again`,
        );
      } else if (how === 'ack') target.channel.ack(target.message);
      else target.channel.nack(target.message, false, how === 'requeue');
      this.pump();
      this.closeWhenIdle();
    };
    const delivery: BuildDelivery = {
      job,
      attempt: deliveryCount(message) + 1,
      ack: settle('ack'),
      requeue: settle('requeue'),
      reject: settle('reject'),
    };
    void (async () => {
      try {
        await this.handler(delivery);
      } catch (err) {
        this.broker.logger.error(
          { err, buildId: job.buildId },
          'build handler failed, dead-lettering the job',
        );
        await delivery.reject();
      }
    })();
  }

  private pump(): void {
    while (this.inFlight < this.prefetch && this.waiting.length > 0 && !this.cancelled) {
      const next = this.waiting.shift();
      if (next && alive(next.channel)) this.run(next.channel, next.message, next.job);
    }
  }
}

interface Received {
  channel: Channel;
  message: ConsumeMessage;
}

class StoreAttachment extends Attachment {
  private buffer: Received[] = [];
  private inBatch = 0;
  private busy = false;
  private flushQueued = false;

  constructor(
    broker: AmqpBroker,
    private readonly batchSize: number,
    private readonly handler: (deliveries: EventDelivery[]) => Promise<void>,
  ) {
    super(broker);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(2 * this.batchSize);
    await this.consume(channel, this.broker.names.store, (message) => this.onMessage(channel, message));
  }

  protected override unsettled(): number {
    return this.inBatch;
  }

  protected override release(channel: Channel): void {
    for (const { message } of this.buffer.splice(0)) channel.nack(message, false, true);
  }

  protected override detached(): void {
    this.buffer = [];
  }

  private onMessage(channel: Channel, message: ConsumeMessage): void {
    if (this.cancelled) {
      if (alive(channel)) channel.nack(message, false, true);
      return;
    }
    this.buffer.push({ channel, message });
    if (this.buffer.length >= this.batchSize) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      // A batch is what arrived before the socket went quiet: flush after this round of I/O.
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.busy || this.buffer.length === 0) return;
    this.busy = true;
    const batch = this.buffer.splice(0, this.batchSize);
    void this.handle(batch).finally(() => {
      this.busy = false;
      this.flush();
    });
  }

  private async handle(batch: Received[]): Promise<void> {
    const unsettled = new Set(batch);
    this.inBatch = unsettled.size;
    const settle = (item: Received, requeue?: boolean): void => {
      if (!unsettled.delete(item)) return;
      this.inBatch = unsettled.size;
      if (!alive(item.channel)) return;
      if (requeue) item.channel.nack(item.message, false, true);
      else item.channel.ack(item.message);
    };
    const deliveries: EventDelivery[] = [];
    for (const item of batch) {
      const event = this.parse(item.message.content, RunnerEventSchema, 'event');
      if (!event) settle(item);
      else deliveries.push({ event, ack: async () => settle(item) });
    }
    try {
      if (deliveries.length > 0) await this.handler(deliveries);
    } catch (err) {
      // A throwing handler is a bug: each event gets one more chance, then it is dropped, loudly.
      const left = [...unsettled];
      const again = left.filter((item) => deliveryCount(item.message) > 0);
      this.broker.logger.error(
        { err, requeued: left.length - again.length, dropped: again.length },
        'event batch handler failed',
      );
      for (const item of left) settle(item, deliveryCount(item.message) === 0);
    } finally {
      this.closeWhenIdle();
    }
  }
}

class FanoutAttachment extends Attachment {
  constructor(
    broker: AmqpBroker,
    private readonly handler: (event: RunnerEvent) => void,
  ) {
    super(broker);
  }

  protected async setup(channel: Channel): Promise<void> {
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, this.broker.names.events, '#');
    await this.consume(channel, queue, (message) => this.onMessage(message), { noAck: true });
  }

  private onMessage(message: ConsumeMessage): void {
    const event = this.parse(message.content, RunnerEventSchema, 'event');
    if (!event || this.cancelled) return;
    try {
      this.handler(event);
    } catch (err) {
      this.broker.logger.error({ err, type: event.type }, 'fanout handler failed');
    }
  }
}

class ControlAttachment extends Attachment {
  private readonly watched = new Set<string>();

  constructor(
    broker: AmqpBroker,
    private readonly handler: (message: ControlMessage) => void,
  ) {
    super(broker);
  }

  // Watching is local: the queue takes every build's control messages (they are rare: a kill), and
  // those of builds not running here are dropped. A per-build binding would cost a round trip to
  // RabbitMQ before each build could start.
  async watch(buildId: string): Promise<void> {
    this.watched.add(buildId);
  }

  async unwatch(buildId: string): Promise<void> {
    this.watched.delete(buildId);
  }

  protected async setup(channel: Channel): Promise<void> {
    const { queue: name } = await channel.assertQueue('', {
      exclusive: true,
      autoDelete: true,
      durable: false,
    });
    await channel.bindQueue(name, this.broker.names.control, 'build.*');
    await this.consume(channel, name, (message) => this.onMessage(message), { noAck: true });
  }

  private onMessage(message: ConsumeMessage): void {
    const control = this.parse(message.content, ControlMessageSchema, 'control message');
    if (!control || this.cancelled || !this.watched.has(control.buildId)) return;
    try {
      this.handler(control);
    } catch (err) {
      this.broker.logger.error({ err, buildId: control.buildId }, 'control handler failed');
    }
  }
}

class DeadLetterAttachment extends Attachment {
  private held = 0;

  constructor(
    broker: AmqpBroker,
    private readonly handler: (letter: DeadLetter) => Promise<void>,
  ) {
    super(broker);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(DEAD_LETTER_PREFETCH);
    await this.consume(channel, this.broker.names.dead, (message) => this.onMessage(channel, message));
  }

  protected override unsettled(): number {
    return this.held;
  }

  private onMessage(channel: Channel, message: ConsumeMessage): void {
    if (this.cancelled) {
      if (alive(channel)) channel.nack(message, false, true);
      return;
    }
    this.held += 1;
    let settled = false;
    const settle = (requeue: boolean): void => {
      if (settled) return;
      settled = true;
      this.held -= 1;
      if (alive(channel)) {
        if (requeue) channel.nack(message, false, true);
        else channel.ack(message);
      }
      this.closeWhenIdle();
    };
    const letter: DeadLetter = {
      body: message.content.toString('utf8'),
      reason: deathReason(message.properties.headers),
      ack: async () => settle(false),
    };
    void (async () => {
      try {
        await this.handler(letter);
      } catch (err) {
        if (settled) return;
        // A throwing handler is a bug: one more chance, then the letter is dropped, loudly.
        const again = deliveryCount(message) > 0;
        this.broker.logger.error(
          { err, body: letter.body.slice(0, 200) },
          again
            ? 'dead-letter handler failed again, dropping'
            : 'dead-letter handler failed, requeueing once',
        );
        settle(!again);
      }
    })();
  }
}

function deathReason(headers: Record<string, unknown> | undefined): string {
  const deaths = headers?.['x-death'];
  if (Array.isArray(deaths)) {
    const reason: unknown = (deaths[0] as { reason?: unknown } | undefined)?.reason;
    if (typeof reason === 'string') return reason;
  }
  const first = headers?.['x-first-death-reason'];
  return typeof first === 'string' ? first : 'unknown';
}

/**
 * Deletes the exchanges and queues of `prefix` (tests: leave nothing behind). Build queues are named
 * by their runner queue names, e.g. from AmqpBroker.declaredBuildQueues.
 */
export async function deleteTopology(
  url: string,
  prefix: string,
  buildQueues: Iterable<string> = [],
): Promise<void> {
  const names = topologyOf(prefix);
  const conn = await amqp.connect(url);
  conn.on('error', () => {});
  try {
    const channel = await conn.createChannel();
    channel.on('error', () => {});
    for (const queue of [names.dead, names.store, ...[...buildQueues].map(names.buildQueue)]) {
      await channel.deleteQueue(queue);
    }
    for (const exchange of [names.builds, names.dlx, names.events, names.control]) {
      await channel.deleteExchange(exchange);
    }
    await channel.close();
  } finally {
    await conn.close().catch(() => {});
  }
}

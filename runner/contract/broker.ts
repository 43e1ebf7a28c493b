/**
 * The broker between api and runners: one interface, two implementations in `runner/broker/`
 * (RabbitMQ through amqplib in `amqp/`; in-process in `memory/` for the embedded default), both
 * serving every message kind of the catalog (`catalog.ts`) by its delivery pattern. One contract test
 * suite (`runner/broker/broker.contract.ts`) runs against both, so they behave alike:
 *
 * - publish resolves only once the broker has every message (RabbitMQ: publisher confirms). Calls
 *   made one after another keep their order, also without waiting for the first to resolve.
 * - Work messages (`consume`) are delivered to one consumer at a time, at most `prefetch` unacked per
 *   consumer. A delivery that is neither acked nor rejected when its consumer's connection goes away
 *   (close(), process death) is delivered again with attempt + 1. Past `deliveryLimit` deliveries,
 *   and on reject(), it goes to the dead-letter queue instead.
 * - Broadcast messages go to every `subscribe`r (one exclusive queue per subscription, no acks) and,
 *   for stored kinds, those with a stored routing key also to one of the `consumeStored` consumers
 *   (competing, shared, durable, one active at a time).
 * - A stored batch is held (unacked) until its handler acks each delivery; a handler that throws
 *   leaves the whole batch held, and it is handed to the handler again after a backoff, however long
 *   that takes: nothing is stored out of order or dropped. A delivery the handler cannot ever store
 *   goes to the dead-letter queue by `deadLetter(reason)`.
 * - Handlers of work that throw are bugs: the delivery is rejected to the dead-letter queue and the
 *   error is logged.
 * - Payloads are validated before a handler sees them; logs name the kind, size and the failing
 *   paths of an invalid payload, never its content (build jobs carry secrets).
 *
 * Names carry `prefix` (default `kiln`), so tests can share one RabbitMQ without seeing each other.
 */
import type { BroadcastKind, MessageKind, MessageOf, StoredKind, WorkKind } from './catalog.ts';

export interface WorkDelivery<T> {
  message: T;
  /** 1 on the first delivery, N+1 on the Nth redelivery. */
  attempt: number;
  /** Done: the work is finished and its results are confirmed. */
  ack(): Promise<void>;
  /** Hand it back for another consumer (SIGTERM drain); counts as a delivery. */
  requeue(): Promise<void>;
  /** Give up: the payload cannot be handled; it goes to the dead-letter queue. */
  reject(): Promise<void>;
}

export interface StoredDelivery<T> {
  message: T;
  /** Stored: the broker forgets it. */
  ack(): Promise<void>;
  /**
   * It can never be stored (the store refuses it while working): it moves to the dead-letter queue
   * with `reason`, where the api records it, instead of blocking the queue behind it.
   */
  deadLetter(reason: string): Promise<void>;
}

export interface DeadLetter {
  /** The kind it was published as, when known. */
  kind: MessageKind | null;
  /** The raw payload; may be invalid JSON or fail its schema. */
  body: string;
  /** Why it was dead-lettered: `rejected`, `delivery_limit`, or the reason given to deadLetter(). */
  reason: string;
  ack(): Promise<void>;
}

export interface Consumer {
  /**
   * Stops new deliveries. Deliveries already handed out stay settleable (a draining runner acks or
   * requeues them); unsettled ones go back to the queue when the broker closes.
   */
  cancel(): Promise<void>;
}

export interface StoredOptions {
  /** Most deliveries handed to the handler at once; default 500. */
  batchSize?: number;
  /** First wait before a failed batch is handed over again, doubled up to maxRetryDelayMs. Default 100. */
  retryDelayMs?: number;
  /** Default 5000. */
  maxRetryDelayMs?: number;
}

export interface Broker {
  /** Declares exchanges and queues (idempotent). Called once before anything else. */
  start(): Promise<void>;
  publish<K extends MessageKind>(kind: K, messages: readonly MessageOf<K>[]): Promise<void>;
  /** Work of `kind` from `queues`, at most `prefetch` unsettled at once. */
  consume<K extends WorkKind>(
    kind: K,
    queues: readonly string[],
    prefetch: number,
    handler: (delivery: WorkDelivery<MessageOf<K>>) => Promise<void>,
  ): Promise<Consumer>;
  /** Every broadcast of `kind` from now on, to this process, without acks. */
  subscribe<K extends BroadcastKind>(kind: K, handler: (message: MessageOf<K>) => void): Promise<Consumer>;
  /** The stored queue of `kind`, shared by all api processes, in batches (see StoredDelivery). */
  consumeStored<K extends StoredKind>(
    kind: K,
    handler: (batch: StoredDelivery<MessageOf<K>>[]) => Promise<void>,
    opts?: StoredOptions,
  ): Promise<Consumer>;
  consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer>;
  /** True while connected (RabbitMQ) or open (memory). Used by /readyz. */
  isReady(): boolean;
  close(): Promise<void>;
}

/** Deliveries of a work message before it is dead-lettered, unless BrokerOptions.deliveryLimit says otherwise. */
export const DEFAULT_DELIVERY_LIMIT = 5;

export interface BrokerOptions {
  /** Prefix of every exchange and queue name. */
  prefix?: string;
  /** Deliveries of one work message before it is dead-lettered (RabbitMQ `x-delivery-limit` + 1). Default 5. */
  deliveryLimit?: number;
  /** Where dropped payloads and handler errors are reported; pino-compatible. Default: silent. */
  logger?: BrokerLogger;
}

/** The two levels a broker reports at (a pino logger fits). */
export interface BrokerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

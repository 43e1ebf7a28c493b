/**
 * The broker between api and runners: one interface, two implementations (RabbitMQ through amqplib
 * in `amqp-broker.ts`; in-process in `memory-broker.ts` for the embedded default). One contract test
 * suite (`broker.contract.ts`) runs against both, so they behave alike:
 *
 * - publish* resolves only once the broker has the message (RabbitMQ: publisher confirm).
 * - Build jobs are delivered to one consumer at a time, at most `prefetch` unacked per consumer. A
 *   delivery that is neither acked nor rejected when its consumer's connection goes away (close(),
 *   process death) is delivered again with `deliveryCount` + 1. Past `deliveryLimit` deliveries, and
 *   on reject(), the job goes to the dead-letter queue instead.
 * - Events go to every `fanout` consumer (one per api process, exclusive) and to one of the `store`
 *   consumers (competing, shared, durable). Order is kept per publisher, also between publishEvents
 *   calls made one after another without waiting for the first to resolve.
 * - Control messages reach the consumers that watch that build id.
 * - Handlers that throw are bugs: the delivery is rejected to the dead-letter queue (builds) or
 *   requeued once (events) and the error is logged by the caller.
 *
 * Names carry `prefix` (default `kiln`), so tests can share one RabbitMQ without seeing each other.
 */
import type { BuildJob, ControlMessage, RunnerEvent } from './messages.ts';

export interface BuildDelivery {
  job: BuildJob;
  /** 1 on the first delivery, N+1 on the Nth redelivery. */
  attempt: number;
  /** Done: the build is finished and its final events are confirmed. */
  ack(): Promise<void>;
  /** Hand the job back for another runner (SIGTERM drain), without counting as a failure if possible. */
  requeue(): Promise<void>;
  /** Give up: the payload cannot be run; it goes to the dead-letter queue. */
  reject(): Promise<void>;
}

export interface DeadLetter {
  /** The raw payload; may be invalid JSON or fail the BuildJob schema. */
  body: string;
  /** Why RabbitMQ (or the memory broker) dead-lettered it: `rejected` or `delivery_limit`. */
  reason: string;
  ack(): Promise<void>;
}

export interface EventDelivery {
  event: RunnerEvent;
  ack(): Promise<void>;
}

export interface Consumer {
  /**
   * Stops new deliveries. Deliveries already handed out stay settleable (a draining runner acks or
   * requeues them); unsettled ones go back to the queue when the broker closes.
   */
  cancel(): Promise<void>;
}

export interface ControlConsumer extends Consumer {
  watch(buildId: string): Promise<void>;
  unwatch(buildId: string): Promise<void>;
}

export interface Broker {
  /** Declares exchanges and queues (idempotent). Called once before anything else. */
  start(): Promise<void>;
  publishBuild(job: BuildJob): Promise<void>;
  consumeBuilds(
    queues: string[],
    prefetch: number,
    handler: (delivery: BuildDelivery) => Promise<void>,
  ): Promise<Consumer>;
  publishEvents(events: RunnerEvent[]): Promise<void>;
  /**
   * A durable queue shared by all api processes: each event is handled by one of them, in batches of
   * up to `batchSize`, and acked by the handler once stored.
   */
  consumeEventsToStore(
    handler: (deliveries: EventDelivery[]) => Promise<void>,
    opts?: { batchSize?: number },
  ): Promise<Consumer>;
  /** An exclusive queue of this process: every event, auto-acked, for live fan-out. */
  consumeEventsFanout(handler: (event: RunnerEvent) => void): Promise<Consumer>;
  publishControl(message: ControlMessage): Promise<void>;
  consumeControl(handler: (message: ControlMessage) => void): Promise<ControlConsumer>;
  consumeDeadLetters(handler: (letter: DeadLetter) => Promise<void>): Promise<Consumer>;
  /** True while connected (RabbitMQ) or open (memory). Used by /readyz. */
  isReady(): boolean;
  close(): Promise<void>;
}

/** Deliveries of a build job before it is dead-lettered, unless BrokerOptions.deliveryLimit says otherwise. */
export const DEFAULT_DELIVERY_LIMIT = 5;

export interface BrokerOptions {
  /** Prefix of every exchange and queue name. */
  prefix?: string;
  /** Deliveries of one build job before it is dead-lettered (RabbitMQ `x-delivery-limit` + 1). Default 5. */
  deliveryLimit?: number;
  /** Where dropped payloads and handler errors are reported; pino-compatible. Default: silent. */
  logger?: BrokerLogger;
}

/** The two levels a broker reports at (a pino logger fits). */
export interface BrokerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

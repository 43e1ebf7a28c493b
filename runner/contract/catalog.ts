/**
 * The catalog of message kinds that cross the broker: each kind once, with its zod schema, its
 * exchange, how it is routed and how it is delivered. Both broker implementations (runner/broker/)
 * serve every kind from this table, so a new kind is one entry here plus its consumer.
 *
 * Two delivery patterns:
 *
 * - `work`: a job for one worker. Routed by `queueOf(message)` to a durable queue of that name
 *   (declared on first publish or consume, so a job for a queue without workers waits in it),
 *   published persistent and mandatory, consumed by competing workers with a prefetch. A worker acks
 *   when done; a delivery left unsettled when its worker's connection goes away is delivered again as
 *   the next attempt; past the delivery limit, and on reject, it goes to the dead-letter queue.
 * - `broadcast`: news for everyone listening. Every subscribed process gets every message, at most
 *   once, without acks; a process that is not listening misses it. A broadcast kind may also be
 *   `stored`: one durable queue shared by all api processes gets the messages whose routing key is in
 *   `stored.routingKeys`, one active consumer at a time (the others stand by) so they are handled in
 *   publish order, in batches, each acked once stored.
 *
 * Every payload is validated against its schema before a handler sees it; an invalid one is never
 * handed to a handler (a work job goes to the dead-letter queue, a broadcast is dropped with a
 * warning that names the kind, size and failing paths, never the body: jobs carry secrets).
 */
import type { z } from 'zod';
import { BuildJobSchema, ControlMessageSchema, RunnerEventSchema, STORED_EVENT_TYPES } from './messages.ts';

/** What the brokers need of a zod schema. */
export type MessageSchema<T> = z.ZodType<T, unknown>;

export interface WorkKindSpec<T> {
  readonly pattern: 'work';
  readonly schema: MessageSchema<T>;
  /** Exchange name without the broker's prefix; work queues are `<prefix>.<exchange>.<queue>`. */
  readonly exchange: string;
  /** The queue a message goes to. */
  queueOf(message: T): string;
  /** What makes two deliveries the same work, e.g. the build a job runs: a consumer never runs one twice at once. */
  identity(message: T): string;
}

export interface BroadcastKindSpec<T, S extends StoredRules | null = StoredRules | null> {
  readonly pattern: 'broadcast';
  readonly schema: MessageSchema<T>;
  readonly exchange: string;
  routingKey(message: T): string;
  /** Persistent messages survive a broker restart in the stored queue; others need not. */
  readonly persistent: boolean;
  readonly stored: S;
}

export interface StoredRules {
  /** The routing keys the stored queue takes; the others only reach subscribers. */
  readonly routingKeys: readonly string[];
}

function work<T>(
  schema: MessageSchema<T>,
  spec: Omit<WorkKindSpec<T>, 'pattern' | 'schema'>,
): WorkKindSpec<T> {
  return { pattern: 'work', schema, ...spec };
}

function broadcast<T, S extends StoredRules | null>(
  schema: MessageSchema<T>,
  spec: Omit<BroadcastKindSpec<T, S>, 'pattern' | 'schema'>,
): BroadcastKindSpec<T, S> {
  return { pattern: 'broadcast', schema, ...spec };
}

export const MESSAGE_KINDS = {
  /**
   * A build for a runner (`BuildJob`), published by the api from its outbox once the build's rows are
   * committed, routed to the queue the manifest names. A runner acks only once the build is finished
   * and its final events are confirmed; attempt = delivery count + 1. Past the delivery limit the api
   * fails the build with a reason (dead letter), never leaves it queued or running.
   */
  build: work(BuildJobSchema, {
    exchange: 'builds',
    queueOf: (job) => job.queue,
    identity: (job) => job.buildId,
  }),
  /**
   * What runners report (`RunnerEvent`), routed by event type, and the api's own `build.updated`
   * notifications. Every api process subscribes for live fan-out; the stored queue takes what runners
   * publish (not `build.updated`) and the api stores it, idempotently by (build, attempt, seq).
   */
  event: broadcast(RunnerEventSchema, {
    exchange: 'events',
    routingKey: (event) => event.type,
    persistent: true,
    stored: { routingKeys: STORED_EVENT_TYPES },
  }),
  /**
   * Orders for the runner of one build (`ControlMessage`), routed `build.<id>`. Every runner hears
   * every order and acts on those of builds it runs; one no runner hears is lost (the api settles a
   * queued build itself).
   */
  control: broadcast(ControlMessageSchema, {
    exchange: 'control',
    routingKey: (message) => `build.${message.buildId}`,
    persistent: false,
    stored: null,
  }),
} as const;

type Kinds = typeof MESSAGE_KINDS;
export type MessageKind = keyof Kinds;
export type MessageOf<K extends MessageKind> = Kinds[K] extends { schema: MessageSchema<infer T> }
  ? T
  : never;
export type WorkKind = { [K in MessageKind]: Kinds[K]['pattern'] extends 'work' ? K : never }[MessageKind];
export type BroadcastKind = {
  [K in MessageKind]: Kinds[K]['pattern'] extends 'broadcast' ? K : never;
}[MessageKind];
export type StoredKind = {
  [K in MessageKind]: Kinds[K] extends { stored: StoredRules } ? K : never;
}[MessageKind];

export const MESSAGE_KIND_NAMES = Object.keys(MESSAGE_KINDS) as MessageKind[];

export function isMessageKind(name: string): name is MessageKind {
  return Object.hasOwn(MESSAGE_KINDS, name);
}

/** The spec of a kind, typed for its pattern. */
export function workKind<K extends WorkKind>(kind: K): WorkKindSpec<MessageOf<K>> {
  return MESSAGE_KINDS[kind] as unknown as WorkKindSpec<MessageOf<K>>;
}

export function broadcastKind<K extends BroadcastKind>(kind: K): BroadcastKindSpec<MessageOf<K>> {
  return MESSAGE_KINDS[kind] as unknown as BroadcastKindSpec<MessageOf<K>>;
}

/** The routing key of a message of any kind: its queue for work, its routing key for broadcasts. */
export function routingKeyOf<K extends MessageKind>(kind: K, message: MessageOf<K>): string {
  const spec = MESSAGE_KINDS[kind] as unknown as WorkKindSpec<MessageOf<K>> | BroadcastKindSpec<MessageOf<K>>;
  return spec.pattern === 'work' ? spec.queueOf(message) : spec.routingKey(message);
}

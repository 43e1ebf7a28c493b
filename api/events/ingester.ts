/**
 * Stores runner events; the build-state module decides what their status reports change.
 *
 * Storage consumes the shared stored queue of events, a batch at a time. The queue has a single
 * active consumer (the other replicas stand by and take over when it goes away), so events are stored
 * in the order each runner published them; a batch that cannot be stored (the database is away) is
 * held and retried until it is, never dropped (see StoredBatches). Log chunks are inserted in one
 * statement with ON CONFLICT DO NOTHING, so an event delivered twice is stored once; status reports
 * go to BuildState.reported, whose conditional updates only move forward, so a redelivered batch
 * changes nothing.
 *
 * Fan-out consumes this process's exclusive queue and feeds the in-process pubsub: log chunks as they
 * arrive (before they are stored: subscriptions dedupe by cursor), `build.updated` notifications and
 * runner heartbeats.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker, Consumer, DeadLetter, StoredDelivery } from '../../runner/contract/broker.ts';
import { BuildJobSchema, type RunnerEvent, type RunnerEventOf } from '../../runner/contract/messages.ts';
import {
  type BuildState,
  heldChunksSql,
  isStatusReport,
  renewalSql,
  type StatusReport,
} from '../modules/builds/build-state.ts';
import type { PubSub } from './pubsub.ts';

export interface IngesterDeps {
  orm: MikroORM;
  broker: Broker;
  pubsub: PubSub;
  logger: Logger;
  buildState: BuildState;
  /** Told of what each batch stored, once it is stored (metrics). */
  onStored?: (events: RunnerEvent[]) => void;
}

export async function startIngester(deps: IngesterDeps): Promise<Consumer[]> {
  const store = await deps.broker.consumeStored(
    'event',
    async (deliveries) => {
      await storeEvents(deps, deliveries);
      deps.onStored?.(deliveries.map((d) => d.message));
    },
    { batchSize: 500 },
  );
  const fanout = await deps.broker.subscribe('event', (event) => {
    if (event.type === 'log.chunk') deps.pubsub.publishLog(event);
    else if (event.type === 'build.updated') deps.pubsub.publishBuild(event);
    else if (event.type === 'runner.heartbeat') deps.pubsub.publishRunner(event);
  });
  const dead = await deps.broker.consumeDeadLetters((letter) => handleDeadLetter(deps, letter));
  return [store, fanout, dead];
}

/**
 * A dead letter is never dropped unseen: a build job fails its build with the reason; anything else
 * (an event storage refused, a payload that failed its schema) is kept in `dead_letters`. A job
 * that is not even a valid job is kept without its body, which may carry secrets.
 */
async function handleDeadLetter(deps: IngesterDeps, letter: DeadLetter): Promise<void> {
  const parsed = letter.kind === 'build' ? BuildJobSchema.safeParse(safeJson(letter.body)) : null;
  const em = deps.orm.em.fork();
  if (parsed?.success) {
    const reason =
      letter.reason === 'delivery_limit'
        ? 'the build was delivered to runners too many times without finishing (runners lost)'
        : `the build job was refused by a runner (${letter.reason})`;
    await deps.buildState.ended(em, parsed.data.buildId, { kind: 'dead-lettered', reason });
  } else {
    const body =
      letter.kind === 'build' ? '(an invalid build job: not kept, it may carry secrets)' : letter.body;
    await em.execute(
      'insert into dead_letters (id, kind, reason, body, created_at) values (?, ?, ?, ?, now())',
      [randomUUID(), letter.kind, letter.reason, body],
    );
    deps.logger.error(
      { kind: letter.kind, reason: letter.reason, bytes: letter.body.length },
      'a message was dead-lettered; it is kept in the dead_letters table',
    );
  }
  await letter.ack();
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function storeEvents(deps: IngesterDeps, deliveries: StoredDelivery<RunnerEvent>[]): Promise<void> {
  const em = deps.orm.em.fork();
  const chunks: RunnerEventOf<'log.chunk'>[] = [];
  const beats = new Map<string, RunnerEventOf<'runner.heartbeat'>>();
  /** Reports, heartbeats and runs of chunks, in the order they were published. */
  const steps: (StatusReport | RunnerEventOf<'runner.heartbeat'> | RunnerEventOf<'log.chunk'>[])[] = [];
  for (const { message: event } of deliveries) {
    if (event.type === 'log.chunk') {
      chunks.push(event);
      const last = steps.at(-1);
      if (Array.isArray(last)) last.push(event);
      else steps.push([event]);
    } else if (event.type === 'runner.heartbeat') {
      beats.set(event.runner, event);
      steps.push(event);
    } else if (isStatusReport(event)) steps.push(event);
  }
  if (steps.every((step) => Array.isArray(step) || step.type === 'runner.heartbeat')) {
    // The common batch while a job prints: rows idempotent each on its own need no transaction, and
    // BEGIN and COMMIT would triple its round trips (embedded, each one holds up the event loop).
    await insertChunks(em, chunks);
    await upsertRunners(em, [...beats.values()]);
    for (const d of deliveries) await d.ack();
    return;
  }
  // Chunks are kept only for the run holding their build at their place among the reports (a
  // build.started before them may have just given it to their run), and a heartbeat renews leases
  // where it came: each step goes where it was published. In one message, as one transaction, when
  // the chunks are small (written in, a few lines cost nothing to escape); else the statements
  // between big runs of chunks go in messages of their own.
  const chunkBytes = chunks.reduce((sum, c) => sum + c.lines.reduce((n, l) => n + l.length + 1, 0), 0);
  const inline = chunkBytes <= INLINE_CHUNK_BYTES;
  let pending: (StatusReport | string)[] = [];
  for (const step of steps) {
    if (Array.isArray(step)) {
      if (inline) pending.push(insertChunksSql(em, step));
      else {
        if (pending.length > 0) await deps.buildState.reported(em, pending);
        pending = [];
        await insertChunks(em, step);
      }
    } else if (step.type === 'runner.heartbeat') pending.push(...runnerSql(em, step));
    else pending.push(step);
  }
  if (pending.length > 0) await deps.buildState.reported(em, pending);
  for (const d of deliveries) await d.ack();
}

/** Log chunks up to this many characters in all travel in the status batch's message. */
const INLINE_CHUNK_BYTES = 16 * 1024;

const CHUNK_COLUMNS = 'build_id, attempt, seq, job_id, first_line, line_count, content, created_at';
const CHUNK_ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?)';

const chunkRow = (c: RunnerEventOf<'log.chunk'>) => [
  c.buildId,
  c.attempt,
  c.seq,
  c.jobId,
  c.firstLine,
  c.lines.length,
  c.lines.join('\n'),
  c.at,
  c.lease,
];

/** The insert of a few small chunks as one statement with its values written in. */
function insertChunksSql(em: EntityManager, chunks: RunnerEventOf<'log.chunk'>[]): string {
  const platform = em.getPlatform();
  const rows = chunks.map((c) => platform.formatQuery(CHUNK_ROW, chunkRow(c)));
  return heldChunksSql(CHUNK_COLUMNS, rows.join(', '));
}

async function insertChunks(em: EntityManager, chunks: RunnerEventOf<'log.chunk'>[]): Promise<void> {
  // Postgres takes at most 65535 parameters a statement: 9 a row.
  for (let i = 0; i < chunks.length; i += 4000) {
    const slice = chunks.slice(i, i + 4000);
    const params: (string | number)[] = [];
    const rows = slice.map((c) => {
      params.push(...chunkRow(c));
      return CHUNK_ROW;
    });
    // Through knex with bound parameters, not em.execute: MikroORM inlines parameters as escaped
    // literals, and for 64 KiB chunks escaping and PostgreSQL parsing them cost 5x the insert.
    const query = em.getKnex().raw(heldChunksSql(CHUNK_COLUMNS, rows.join(', ')), params);
    const transaction = em.getTransactionContext();
    if (transaction) query.transacting(transaction);
    await query;
  }
}

async function upsertRunners(em: EntityManager, beats: RunnerEventOf<'runner.heartbeat'>[]): Promise<void> {
  for (const b of beats) for (const statement of runnerSql(em, b)) await em.execute(statement);
}

/** A heartbeat's runner row, and the renewal of the leases of the builds it runs. */
function runnerSql(em: EntityManager, b: RunnerEventOf<'runner.heartbeat'>): string[] {
  const renewal = renewalSql(em, b);
  return renewal ? [upsertRunnerSql(em, b), renewal] : [upsertRunnerSql(em, b)];
}

function upsertRunnerSql(em: EntityManager, b: RunnerEventOf<'runner.heartbeat'>): string {
  return em.getPlatform().formatQuery(
    `insert into runners (name, queues, concurrency, running, first_seen_at, last_seen_at)
     values (?, ?::jsonb, ?, ?::jsonb, ?, ?)
     on conflict (name) do update set queues = excluded.queues, concurrency = excluded.concurrency,
       running = excluded.running, last_seen_at = greatest(runners.last_seen_at, excluded.last_seen_at)`,
    [b.runner, JSON.stringify(b.queues), b.concurrency, JSON.stringify(b.running), b.at, b.at],
  );
}

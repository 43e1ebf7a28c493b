/**
 * Stores runner events and announces what changed.
 *
 * Storage consumes the shared `store` queue, a batch at a time. The queue has a single active
 * consumer (the other replicas stand by and take over when it goes away), so events are stored in the
 * order each runner published them. Log chunks are inserted in one statement with ON CONFLICT DO
 * NOTHING, so an event delivered twice is stored once; status events are conditional updates that
 * only move forward (a job never goes back from PASSED to RUNNING, an older attempt never overwrites
 * a newer one), so a redelivered batch changes nothing. After commit it publishes `build.updated`
 * with the state after each change.
 *
 * Fan-out consumes this process's exclusive queue and feeds the in-process pubsub: log chunks as they
 * arrive (before they are stored: subscriptions dedupe by cursor), `build.updated` notifications and
 * runner heartbeats.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker, Consumer, StoredDelivery } from '../../runner/contract/broker.ts';
import {
  BuildJobSchema,
  type BuildUpdated,
  type RunnerEvent,
  type RunnerEventOf,
} from '../../runner/contract/messages.ts';
import type { BuildStatus, JobStatus } from '../../runner/contract/status.ts';
import type { PubSub } from './pubsub.ts';

const LIVE = `('QUEUED', 'RUNNING')`;
/**
 * A job event of attempt N counts while the build is live and not yet at a later attempt, or when
 * the build was finished by attempt N itself (its build.finished overtook the job's last event).
 */
const CURRENT_ATTEMPT = `exists (select 1 from builds b where b.id = jobs.build_id
  and (b.attempt = ? or (b.attempt < ? and b.status in ${LIVE})))`;

export interface IngesterDeps {
  orm: MikroORM;
  broker: Broker;
  pubsub: PubSub;
  logger: Logger;
}

export async function startIngester(deps: IngesterDeps): Promise<Consumer[]> {
  const store = await deps.broker.consumeStored(
    'event',
    async (deliveries) => {
      await storeEvents(deps, deliveries);
    },
    { batchSize: 500 },
  );
  const fanout = await deps.broker.subscribe('event', (event) => {
    if (event.type === 'log.chunk') deps.pubsub.publishLog(event);
    else if (event.type === 'build.updated') deps.pubsub.publishBuild(event);
    else if (event.type === 'runner.heartbeat') deps.pubsub.publishRunner(event);
  });
  const dead = await deps.broker.consumeDeadLetters(async (letter) => {
    const parsed = BuildJobSchema.safeParse(safeJson(letter.body));
    if (parsed.success) {
      const reason =
        letter.reason === 'delivery_limit'
          ? 'the build was delivered to runners too many times without finishing (runners lost)'
          : `the build job was refused by a runner (${letter.reason})`;
      const em = deps.orm.em.fork();
      if (await failBuild(em, parsed.data.buildId, reason)) {
        await announce(deps.broker, em, [parsed.data.buildId]);
      }
    } else {
      deps.logger.warn(
        { kind: letter.kind, reason: letter.reason, bytes: letter.body.length },
        'dropping a dead letter that is not a build job',
      );
    }
    await letter.ack();
  });
  return [store, fanout, dead];
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
  let statusEvents = 0;
  for (const { message: event } of deliveries) {
    if (event.type === 'log.chunk') chunks.push(event);
    else if (event.type === 'runner.heartbeat') beats.set(event.runner, event);
    else if (event.type !== 'build.updated') statusEvents++;
  }
  if (statusEvents === 0) {
    // The common batch while a job prints: rows idempotent each on its own need no transaction, and
    // BEGIN and COMMIT would triple its round trips (embedded, each one holds up the event loop).
    await insertChunks(em, chunks);
    await upsertRunners(em, [...beats.values()]);
    for (const d of deliveries) await d.ack();
    return;
  }
  // Every status change of the batch, each followed by a snapshot of its build, goes to the database
  // as one message: PostgreSQL runs a message of several statements as one transaction, so the
  // batch is all or nothing, in one round trip, and embedded it holds PGlite (which serves one
  // transaction at a time) for one query instead of a dozen. The batch's log chunks go first, in the
  // same message when they are small (written in, a few lines cost nothing to escape), else before.
  const statements: string[] = [];
  const applied: { event: StatusEvent; at: number }[] = [];
  const chunkBytes = chunks.reduce((sum, c) => sum + c.lines.reduce((n, l) => n + l.length + 1, 0), 0);
  if (chunks.length > 0 && chunkBytes <= INLINE_CHUNK_BYTES) statements.push(insertChunksSql(em, chunks));
  else await insertChunks(em, chunks);
  for (const beat of beats.values()) statements.push(upsertRunnerSql(em, beat));
  for (const { message: event } of deliveries) {
    const sql = statusEventSql(em, event);
    if (!sql) continue;
    const status = event as StatusEvent;
    applied.push({ event: status, at: statements.length });
    statements.push(sql, em.getPlatform().formatQuery(SNAPSHOT_SQL, [status.buildId]));
  }
  const results = (await em.getKnex().raw(statements.join(';\n'))) as unknown as Result[] | Result;
  const all = Array.isArray(results) ? results : [results];
  const updates: BuildUpdated[] = [];
  const toKill = new Set<string>();
  for (const { event, at } of applied) {
    const [outcome] = all[at]!.rows as OutcomeRow[];
    const [state] = all[at + 1]!.rows as SnapshotRow[];
    if (outcome && Number(outcome.changed) > 0) {
      if (state) updates.push(snapshotOf(event.buildId, state));
    } else if (event.type === 'build.started' && outcome?.ended_before) {
      // Killed (or failed by the api) before this attempt started: stop the runner.
      toKill.add(event.buildId);
    }
  }
  for (const buildId of toKill) await deps.broker.publish('control', [{ type: 'kill', buildId }]);
  if (updates.length > 0) await deps.broker.publish('event', updates);
  for (const d of deliveries) await d.ack();
}

type Result = { rows: unknown[] };
type StatusEvent = RunnerEventOf<'build.started' | 'job.started' | 'job.finished' | 'build.finished'>;
/** What a status statement returns: rows changed, and for build.started whether the build had ended. */
type OutcomeRow = { changed: number | string; ended_before?: boolean | null };

/** Log chunks up to this many characters in all travel in the status batch's message. */
const INLINE_CHUNK_BYTES = 16 * 1024;

const CHUNK_COLUMNS = 'build_id, attempt, seq, job_id, first_line, line_count, content, created_at';

const chunkRow = (c: RunnerEventOf<'log.chunk'>) => [
  c.buildId,
  c.attempt,
  c.seq,
  c.jobId,
  c.firstLine,
  c.lines.length,
  c.lines.join('\n'),
  c.at,
];

/** The insert of a few small chunks as one statement with its values written in. */
function insertChunksSql(em: EntityManager, chunks: RunnerEventOf<'log.chunk'>[]): string {
  const platform = em.getPlatform();
  const rows = chunks.map((c) => platform.formatQuery('(?, ?, ?, ?, ?, ?, ?, ?)', chunkRow(c)));
  return `insert into log_chunks (${CHUNK_COLUMNS}) values ${rows.join(', ')} on conflict do nothing`;
}

async function insertChunks(em: EntityManager, chunks: RunnerEventOf<'log.chunk'>[]): Promise<void> {
  // Postgres takes at most 65535 parameters a statement: 8 a row.
  for (let i = 0; i < chunks.length; i += 4000) {
    const slice = chunks.slice(i, i + 4000);
    const params: (string | number)[] = [];
    const rows = slice.map((c) => {
      params.push(...chunkRow(c));
      return '(?, ?, ?, ?, ?, ?, ?, ?)';
    });
    // Through knex with bound parameters, not em.execute: MikroORM inlines parameters as escaped
    // literals, and for 64 KiB chunks escaping and PostgreSQL parsing them cost 5x the insert.
    const query = em
      .getKnex()
      .raw(
        `insert into log_chunks (${CHUNK_COLUMNS}) values ${rows.join(', ')} on conflict do nothing`,
        params,
      );
    const transaction = em.getTransactionContext();
    if (transaction) query.transacting(transaction);
    await query;
  }
}

async function upsertRunners(em: EntityManager, beats: RunnerEventOf<'runner.heartbeat'>[]): Promise<void> {
  for (const b of beats) await em.execute(upsertRunnerSql(em, b));
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

/**
 * One statement applying a status event, forward only: it changes nothing when the event is older
 * than what is stored (a redelivery, an earlier attempt). It returns `changed` (rows updated), and
 * for build.started `ended_before`: the build ended before this attempt started (killed while queued).
 * Null for events that change no status.
 */
function statusEventSql(em: EntityManager, event: RunnerEvent): string | null {
  const sql = (text: string, params: unknown[]) => em.getPlatform().formatQuery(text, params);
  switch (event.type) {
    case 'build.started':
      // A later attempt: the earlier runner was lost. Its jobs start over, and the build is tagged
      // orphaned (Djinn's word for a build run again after its runner was lost).
      return sql(
        `with prior as (select status, attempt from builds where id = ?),
         updated as (
           update builds set attempt = ?, status = 'RUNNING', runner = ?, started_at = ?
           where id = ? and attempt < ? and status in ${LIVE} returning id),
         reset as (
           update jobs set status = 'QUEUED', attempt = ?, exit_code = null, started_at = null, finished_at = null
           where build_id in (select id from updated) and attempt < ?),
         orphaned as (
           insert into build_tags (build_id, name) select id, 'orphaned' from updated where ? > 1
           on conflict do nothing)
         select (select count(*) from updated) as changed,
           (select status not in ${LIVE} and attempt < ? from prior) as ended_before`,
        [
          event.buildId,
          event.attempt,
          event.runner,
          event.at,
          event.buildId,
          event.attempt,
          event.attempt,
          event.attempt,
          event.attempt,
          event.attempt,
        ],
      );
    case 'job.started':
      return sql(
        `with updated as (
           update jobs set status = 'RUNNING', attempt = ?, started_at = ?, finished_at = null, exit_code = null
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status = 'QUEUED'))
             and ${CURRENT_ATTEMPT}
           returning id)
         select count(*) as changed from updated`,
        [
          event.attempt,
          event.at,
          event.jobId,
          event.buildId,
          event.attempt,
          event.attempt,
          event.attempt,
          event.attempt,
        ],
      );
    case 'job.finished':
      return sql(
        `with updated as (
           update jobs set status = ?, attempt = ?, exit_code = ?, finished_at = ?,
             started_at = case when ? = 'SKIPPED' then null else coalesce(started_at, ?) end
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status in ${LIVE}))
             and ${CURRENT_ATTEMPT}
           returning id)
         select count(*) as changed from updated`,
        [
          event.status,
          event.attempt,
          event.exitCode,
          event.at,
          event.status,
          event.at,
          event.jobId,
          event.buildId,
          event.attempt,
          event.attempt,
          event.attempt,
          event.attempt,
        ],
      );
    case 'build.finished':
      return sql(
        `with updated as (
           update builds set status = ?, attempt = ?, last_seq = ?, reason = ?, finished_at = ?,
             started_at = coalesce(started_at, ?)
           where id = ? and attempt <= ? and status in ${LIVE} returning id, attempt),
         orphaned as (
           insert into build_tags (build_id, name) select id, 'orphaned' from updated where attempt > 1
           on conflict do nothing)
         select count(*) as changed from updated`,
        [
          event.status,
          event.attempt,
          event.lastSeq,
          event.reason,
          event.at,
          event.at,
          event.buildId,
          event.attempt,
        ],
      );
    case 'log.chunk':
    case 'runner.heartbeat':
    case 'build.updated':
      return null;
  }
}

/**
 * Ends a build the runners cannot finish: FAILED with `reason`, running jobs FAILED, queued ones
 * SKIPPED, and the log closed at what was stored. Returns false when it had already ended.
 */
export async function failBuild(
  em: EntityManager,
  buildId: string,
  reason: string,
  status = 'FAILED',
): Promise<boolean> {
  return em.transactional(async (tx) => {
    const conn = tx;
    const updated = await conn.execute<{ id: string }[]>(
      `update builds set status = ?, reason = ?, finished_at = now(),
         last_seq = (select coalesce(max(seq), 0) from log_chunks l where l.build_id = builds.id and l.attempt = builds.attempt)
       where id = ? and status in ${LIVE} returning id`,
      [status, reason, buildId],
    );
    if (updated.length === 0) return false;
    await conn.execute(
      `update jobs set status = case when status = 'RUNNING' then ? else 'SKIPPED' end, finished_at = now()
       where build_id = ? and status in ${LIVE}`,
      [status, buildId],
    );
    return true;
  });
}

/** A build and its jobs (as JSON, in order), for a BuildUpdated. */
const SNAPSHOT_SQL = `select b.status, b.attempt, b.reason, b.started_at, b.finished_at,
    coalesce((select json_agg(json_build_object('id', j.id, 'status', j.status, 'exit_code', j.exit_code,
        'started_at', j.started_at, 'finished_at', j.finished_at) order by j.position)
      from jobs j where j.build_id = b.id), '[]') as jobs
  from builds b where b.id = ?`;

interface SnapshotRow {
  status: BuildStatus;
  attempt: number;
  reason: string | null;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  jobs: {
    id: string;
    status: JobStatus;
    exit_code: number | null;
    started_at: string | null;
    finished_at: string | null;
  }[];
}

function snapshotOf(buildId: string, row: SnapshotRow): BuildUpdated {
  const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);
  return {
    type: 'build.updated',
    buildId,
    status: row.status,
    attempt: row.attempt,
    reason: row.reason,
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    jobs: row.jobs.map((j) => ({
      jobId: j.id,
      status: j.status,
      exitCode: j.exit_code,
      startedAt: iso(j.started_at),
      finishedAt: iso(j.finished_at),
    })),
    at: new Date().toISOString(),
  };
}

/** The build and its jobs as they are now in `em`'s view (inside a transaction: with its writes). */
export async function snapshot(em: EntityManager, buildId: string): Promise<BuildUpdated | null> {
  const [row] = await em.execute<SnapshotRow[]>(SNAPSHOT_SQL, [buildId]);
  return row ? snapshotOf(buildId, row) : null;
}

/** Tells every replica (through the broker) that these builds changed. */
export async function announce(broker: Broker, em: EntityManager, buildIds: string[]): Promise<void> {
  const updates: BuildUpdated[] = [];
  for (const id of buildIds) {
    const update = await snapshot(em, id);
    if (update) updates.push(update);
  }
  await broker.publish('event', updates);
}

/**
 * Every transition of a build and its jobs, in one place. Callers say what happened — a build was
 * submitted, a runner reported (started, a job started or finished, finished), someone killed it, it
 * timed out with its runner gone, it was dead-lettered — and this module decides the statuses, writes
 * them and tells every replica (`build.updated` through the broker, with the state as committed).
 *
 * The rules, all forward only so that a redelivered or late report changes nothing:
 * - A build goes QUEUED → RUNNING (a runner's build.started) → a final status (the runner's
 *   build.finished, or the api ending it: killed while queued, dead-lettered, timed out). A final
 *   build never changes again; what counts as final comes from `runner/contract/status.ts`.
 * - A later attempt (a build started again after its runner was lost) resets the jobs and tags the
 *   build `orphaned`; reports of an earlier attempt never overwrite a later one.
 * - A job goes QUEUED → RUNNING → final, each job on its own (its own attempt and status), so the jobs
 *   of one build could be reported by several runners; the build's final status is the runner's,
 *   which is the worst of its jobs' (`buildStatusOfJob`, `worstBuildStatus`).
 * - One run holds a build at a time: its lease (an id the runner makes per run) is taken by its
 *   build.started and renewed by its heartbeats. Only the holder's reports change the build or its
 *   log. Another run's start is accepted once the holder's lease lapsed (LEASE_MS without news: its
 *   runner died) or was released (its runner handed the build back), and only for a later attempt;
 *   until then it is told to `wait` and try again. A run that starts a build that is over, or
 *   reports an attempt already run, is told to stop (`kill` with its lease).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker } from '../../../runner/contract/broker.ts';
import {
  type BuildUpdated,
  type ControlMessage,
  LEASE_MS,
  type RunnerEvent,
  type RunnerEventOf,
} from '../../../runner/contract/messages.ts';
import {
  BUILD_STATUSES,
  type BuildStatus,
  isFinalBuild,
  isFinalJob,
  JOB_STATUSES,
  type JobStatus,
} from '../../../runner/contract/status.ts';

const sqlList = (values: readonly string[]) => `(${values.map((v) => `'${v}'`).join(', ')})`;
/** Statuses of builds and jobs not yet final, as SQL lists, from the one definition of "final". */
const LIVE = sqlList(BUILD_STATUSES.filter((status) => !isFinalBuild(status)));
const LIVE_JOB = sqlList(JOB_STATUSES.filter((status) => !isFinalJob(status)));

/** A report counts only from the run that holds its build. */
const HELD_BY = (alias: string) =>
  `exists (select 1 from builds b where b.id = ${alias}.build_id and b.lease = ?)`;
/** A lease is alive while its holder was heard of within LEASE_MS. */
const LEASE_ALIVE = `lease_seen_at > now() - interval '${LEASE_MS} milliseconds'`;

/** What a runner reports that changes a status. */
export type StatusReport = RunnerEventOf<
  'build.started' | 'build.released' | 'job.started' | 'job.finished' | 'build.finished'
>;

export function isStatusReport(event: RunnerEvent): event is StatusReport {
  switch (event.type) {
    case 'build.started':
    case 'build.released':
    case 'job.started':
    case 'job.finished':
    case 'build.finished':
      return true;
    case 'log.chunk':
    case 'runner.heartbeat':
    case 'build.updated':
      return false;
  }
}

/** How the api ends a build the runners cannot finish; each maps to one final status. */
export type ApiEnding =
  /** Delivered to runners too often, or refused by one: the system's failure. */
  | { kind: 'dead-lettered'; reason: string }
  /** Its runner went silent and its timeout passed: the user's limit, enforced for a lost runner. */
  | { kind: 'timed-out'; reason: string };

function statusOfEnding(ending: ApiEnding): BuildStatus {
  switch (ending.kind) {
    case 'dead-lettered':
      return 'FAILED';
    case 'timed-out':
      return 'TIMED_OUT';
  }
}

/**
 * What a status statement returns: rows changed, and for build.started the verdict on the run:
 * `accepted` (it holds the build now), `same` (it held it already: a repeated report), `wait`
 * (another run holds it), `stale` (an attempt already run), `ended` (the build is over).
 */
type OutcomeRow = {
  changed: number | string;
  verdict?: 'accepted' | 'same' | 'wait' | 'stale' | 'ended' | null;
};
type Result = { rows: unknown[] };

/** A build and its jobs (as JSON, in order), for a BuildUpdated. */
const SNAPSHOT_SQL = `select b.status, b.attempt, b.lease, b.reason, b.started_at, b.finished_at,
    coalesce((select json_agg(json_build_object('id', j.id, 'status', j.status, 'exit_code', j.exit_code,
        'started_at', j.started_at, 'finished_at', j.finished_at) order by j.position)
      from jobs j where j.build_id = b.id), '[]') as jobs
  from builds b where b.id = ?`;

interface SnapshotRow {
  status: BuildStatus;
  attempt: number;
  lease: string | null;
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

export class BuildState {
  constructor(private readonly deps: { broker: Broker; logger: Logger }) {}

  /**
   * A build was written (QUEUED, its jobs QUEUED): tell every replica, from what was written, before
   * its job goes out, so no runner's news of it can overtake this one.
   */
  submitted(buildId: string, jobIds: readonly string[], at: Date): void {
    const queued: BuildUpdated = {
      type: 'build.updated',
      buildId,
      status: 'QUEUED',
      attempt: 0,
      lease: null,
      reason: null,
      startedAt: null,
      finishedAt: null,
      jobs: jobIds.map((jobId) => ({
        jobId,
        status: 'QUEUED',
        exitCode: null,
        startedAt: null,
        finishedAt: null,
      })),
      at: at.toISOString(),
    };
    this.deps.broker
      .publish('event', [queued])
      .catch((err: unknown) => this.deps.logger.warn({ err, buildId }, 'announcing a new build failed'));
  }

  /**
   * Runners' reports, in the order they were published, with statements the caller needs run at
   * their place among them (e.g. the log chunks that came between two reports, kept only for the run
   * holding the build at that point), as one message: PostgreSQL runs a message of several
   * statements as one transaction, so it is all or nothing, in one round trip. Then every change is
   * announced, and each run that reported its start gets its answer.
   */
  async reported(em: EntityManager, steps: readonly (StatusReport | string)[]) {
    const statements: string[] = [];
    const applied: { report: StatusReport; at: number }[] = [];
    for (const step of steps) {
      if (typeof step === 'string') {
        statements.push(step);
        continue;
      }
      applied.push({ report: step, at: statements.length });
      statements.push(statusSql(em, step), em.getPlatform().formatQuery(SNAPSHOT_SQL, [step.buildId]));
    }
    if (statements.length === 0) return;
    const results = (await em.getKnex().raw(statements.join(';\n'))) as unknown as Result[] | Result;
    const all = Array.isArray(results) ? results : [results];
    const updates: BuildUpdated[] = [];
    const answers: ControlMessage[] = [];
    for (const { report, at } of applied) {
      const [outcome] = all[at]!.rows as OutcomeRow[];
      const [state] = all[at + 1]!.rows as SnapshotRow[];
      if (outcome && Number(outcome.changed) > 0 && report.type !== 'build.released') {
        if (state) updates.push(snapshotOf(report.buildId, state));
      }
      if (report.type === 'build.started') {
        const answer = answerTo(report, outcome?.verdict ?? 'ended');
        if (answer) answers.push(answer);
      }
    }
    if (updates.length > 0) await this.deps.broker.publish('event', updates);
    if (answers.length > 0) await this.deps.broker.publish('control', answers);
  }

  /**
   * Someone killed the build: a queued one ends KILLED here and now, its jobs SKIPPED (none of them
   * started); a running one is stopped by its runner, which reports KILLED. The reason names who
   * killed it, stored now and kept by the runner's build.finished. Also a queued one is signalled: a
   * runner may have taken it a moment ago (and a runner that starts it later is told to stop when it
   * reports its start).
   */
  async killed(em: EntityManager, buildId: string, by: string | null): Promise<void> {
    const reason = by ? `killed by ${by}` : 'killed';
    const killedQueued = await em.execute<{ id: string }[]>(
      `update builds set status = 'KILLED', finished_at = now(), last_seq = 0, reason = ?
       where id = ? and status = 'QUEUED' and attempt = 0 returning id`,
      [`${reason} before a runner took it`, buildId],
    );
    if (killedQueued.length > 0) {
      await em.execute(
        `update jobs set status = 'SKIPPED', finished_at = now() where build_id = ? and status in ${LIVE_JOB}`,
        [buildId],
      );
      await this.announce(em, [buildId]);
    } else {
      await em.execute(`update builds set reason = ? where id = ? and status in ${LIVE}`, [reason, buildId]);
    }
    await this.deps.broker.publish('control', [{ type: 'kill', buildId }]);
  }

  /**
   * The api ends a build the runners cannot finish: its status by `ending`, running jobs likewise,
   * queued ones SKIPPED, and the log closed at what was stored. False when it had already ended.
   */
  async ended(em: EntityManager, buildId: string, ending: ApiEnding): Promise<boolean> {
    const status = statusOfEnding(ending);
    const ended = await em.transactional(async (tx) => {
      const updated = await tx.execute<{ id: string }[]>(
        `update builds set status = ?, reason = ?, finished_at = now(),
           last_seq = (select coalesce(max(seq), 0) from log_chunks l where l.build_id = builds.id and l.attempt = builds.attempt)
         where id = ? and status in ${LIVE} returning id`,
        [status, ending.reason, buildId],
      );
      if (updated.length === 0) return false;
      await tx.execute(
        `update jobs set status = case when status = 'RUNNING' then ? else 'SKIPPED' end, finished_at = now()
         where build_id = ? and status in ${LIVE_JOB}`,
        [status, buildId],
      );
      return true;
    });
    if (ended) await this.announce(em, [buildId]);
    return ended;
  }

  /** Tells every replica how these builds are now. */
  async announce(em: EntityManager, buildIds: readonly string[]): Promise<void> {
    const updates: BuildUpdated[] = [];
    for (const id of buildIds) {
      const update = await snapshot(em, id);
      if (update) updates.push(update);
    }
    await this.deps.broker.publish('event', updates);
  }
}

/**
 * The answer a run gets to its build.started: none when it holds the build (or a runner waiting for
 * a go ahead asked: `go`), `wait` while another run holds it, `kill` of that run when the build is
 * over or its attempt was run already.
 */
function answerTo(report: RunnerEventOf<'build.started'>, verdict: NonNullable<OutcomeRow['verdict']>) {
  const { buildId, lease } = report;
  switch (verdict) {
    case 'accepted':
    case 'same':
      return report.waiting ? ({ type: 'go', buildId, lease } as const) : null;
    case 'wait':
      return { type: 'wait', buildId, lease } as const;
    case 'stale':
    case 'ended':
      return { type: 'kill', buildId, lease } as const;
  }
}

/** Statements renewing the leases a runner's heartbeat lists as running. */
export function renewalSql(em: EntityManager, beat: RunnerEventOf<'runner.heartbeat'>): string | null {
  const held = beat.running.filter((run) => run.lease !== undefined);
  if (held.length === 0) return null;
  return em.getPlatform().formatQuery(
    `update builds set lease_seen_at = now()
     where (id::text, lease) in (select * from jsonb_to_recordset(?::jsonb) as r(id text, lease text))
       and status in ${LIVE}`,
    [JSON.stringify(held.map((run) => ({ id: run.buildId, lease: run.lease })))],
  );
}

/**
 * The insert of log chunks that keeps only those of the run holding their build: `rows` are
 * (build_id, attempt, seq, job_id, first_line, line_count, content, created_at, lease) placeholders
 * or literals.
 */
export function heldChunksSql(columns: string, rows: string): string {
  return `insert into log_chunks (${columns})
    select v.build_id::uuid, v.attempt::int, v.seq::int, v.job_id::uuid, v.first_line::int, v.line_count::int,
      v.content, v.created_at::timestamptz
    from (values ${rows}) as v(build_id, attempt, seq, job_id, first_line, line_count, content, created_at, lease)
    where exists (select 1 from builds b where b.id = v.build_id::uuid and b.lease = v.lease)
    on conflict do nothing`;
}

/**
 * One statement applying a report, forward only and only from the run holding the build: it
 * changes nothing when the report is older than what is stored (a redelivery, an earlier attempt)
 * or comes from another run. It returns `changed` (rows updated), and for build.started `verdict`.
 */
function statusSql(em: EntityManager, report: StatusReport): string {
  const sql = (text: string, params: unknown[]) => em.getPlatform().formatQuery(text, params);
  switch (report.type) {
    case 'build.started': {
      const { attempt: a, lease, buildId } = report;
      // Taken when nobody holds the build, or for a later attempt once the holder's lease is gone. A
      // later attempt means the earlier run was lost: its jobs start over, and the build is tagged
      // orphaned (Djinn's word for a build run again after its runner was lost).
      return sql(
        `with prior as (
           select status, attempt, lease, coalesce(${LEASE_ALIVE}, false) as alive from builds where id = ?),
         updated as (
           update builds set attempt = ?, status = 'RUNNING', runner = ?, lease = ?, lease_seen_at = now(),
             started_at = ?
           where id = ? and status in ${LIVE}
             and (lease is null or (lease <> ? and not coalesce(${LEASE_ALIVE}, false) and attempt < ?))
           returning id),
         reset as (
           update jobs set status = 'QUEUED', attempt = ?, exit_code = null, started_at = null, finished_at = null
           where build_id in (select id from updated) and attempt < ?),
         orphaned as (
           insert into build_tags (build_id, name) select id, 'orphaned' from updated where ? > 1
           on conflict do nothing)
         select (select count(*) from updated) as changed,
           case when (select count(*) from updated) > 0 then 'accepted'
             when status not in ${LIVE} then 'ended'
             when lease = ? then 'same'
             when attempt >= ? then 'stale'
             else 'wait' end as verdict
         from prior`,
        [buildId, a, report.runner, lease, report.at, buildId, lease, a, a, a, a, lease, a],
      );
    }
    case 'build.released':
      return sql(
        `with updated as (
           update builds set lease_seen_at = null where id = ? and lease = ? and status in ${LIVE} returning id)
         select count(*) as changed from updated`,
        [report.buildId, report.lease],
      );
    case 'job.started': {
      const a = report.attempt;
      return sql(
        `with updated as (
           update jobs set status = 'RUNNING', attempt = ?, started_at = ?, finished_at = null, exit_code = null
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status = 'QUEUED'))
             and ${HELD_BY('jobs')}
           returning id)
         select count(*) as changed from updated`,
        [a, report.at, report.jobId, report.buildId, a, a, report.lease],
      );
    }
    case 'job.finished': {
      const a = report.attempt;
      return sql(
        `with updated as (
           update jobs set
             -- A job the stop reached before it started never ran: SKIPPED, as when a job failed before it.
             status = case when ? in ('KILLED', 'TIMED_OUT') and started_at is null then 'SKIPPED' else ? end,
             attempt = ?, exit_code = ?, finished_at = ?,
             started_at = case when ? = 'SKIPPED' then null when ? in ('KILLED', 'TIMED_OUT') then started_at
               else coalesce(started_at, ?) end
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status in ${LIVE_JOB}))
             and ${HELD_BY('jobs')}
           returning id)
         select count(*) as changed from updated`,
        [
          report.status,
          report.status,
          a,
          report.exitCode,
          report.at,
          report.status,
          report.status,
          report.at,
          report.jobId,
          report.buildId,
          a,
          a,
          report.lease,
        ],
      );
    }
    case 'build.finished':
      return sql(
        `with updated as (
           update builds set status = ?, attempt = ?, last_seq = ?,
             reason = case when ? = 'KILLED' then coalesce(reason, ?) else ? end, finished_at = ?,
             started_at = coalesce(started_at, ?)
           where id = ? and lease = ? and status in ${LIVE} returning id, attempt),
         orphaned as (
           insert into build_tags (build_id, name) select id, 'orphaned' from updated where attempt > 1
           on conflict do nothing)
         select count(*) as changed from updated`,
        [
          report.status,
          report.attempt,
          report.lastSeq,
          report.status,
          report.reason,
          report.reason,
          report.at,
          report.at,
          report.buildId,
          report.lease,
        ],
      );
  }
}

function snapshotOf(buildId: string, row: SnapshotRow): BuildUpdated {
  const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);
  return {
    type: 'build.updated',
    buildId,
    status: row.status,
    attempt: row.attempt,
    lease: row.lease,
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

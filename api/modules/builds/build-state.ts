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
 * - A runner that starts a build that already ended (killed while queued) is told to stop.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker } from '../../../runner/contract/broker.ts';
import type { BuildUpdated, RunnerEvent, RunnerEventOf } from '../../../runner/contract/messages.ts';
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

/**
 * A job report of attempt N counts while the build is live and not yet at a later attempt, or when
 * the build was finished by attempt N itself (its build.finished overtook the job's last report).
 */
const CURRENT_ATTEMPT = `exists (select 1 from builds b where b.id = jobs.build_id
  and (b.attempt = ? or (b.attempt < ? and b.status in ${LIVE})))`;

/** What a runner reports that changes a status. */
export type StatusReport = RunnerEventOf<'build.started' | 'job.started' | 'job.finished' | 'build.finished'>;

export function isStatusReport(event: RunnerEvent): event is StatusReport {
  switch (event.type) {
    case 'build.started':
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

/** What a status statement returns: rows changed, and for build.started whether the build had ended. */
type OutcomeRow = { changed: number | string; ended_before?: boolean | null };
type Result = { rows: unknown[] };

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
   * Runners' reports, in the order they were published, applied with `alongside` (statements the
   * caller needs in the same transaction, e.g. log chunks) as one message: PostgreSQL runs a message
   * of several statements as one transaction, so it is all or nothing, in one round trip. Then every
   * change is announced, and the runner of a build that ended before it started is told to stop.
   */
  async reported(em: EntityManager, reports: readonly StatusReport[], alongside: readonly string[]) {
    const statements = [...alongside];
    const applied: { report: StatusReport; at: number }[] = [];
    for (const report of reports) {
      applied.push({ report, at: statements.length });
      statements.push(statusSql(em, report), em.getPlatform().formatQuery(SNAPSHOT_SQL, [report.buildId]));
    }
    if (statements.length === 0) return;
    const results = (await em.getKnex().raw(statements.join(';\n'))) as unknown as Result[] | Result;
    const all = Array.isArray(results) ? results : [results];
    const updates: BuildUpdated[] = [];
    const toStop = new Set<string>();
    for (const { report, at } of applied) {
      const [outcome] = all[at]!.rows as OutcomeRow[];
      const [state] = all[at + 1]!.rows as SnapshotRow[];
      if (outcome && Number(outcome.changed) > 0) {
        if (state) updates.push(snapshotOf(report.buildId, state));
      } else if (report.type === 'build.started' && outcome?.ended_before) {
        toStop.add(report.buildId);
      }
    }
    if (toStop.size > 0) {
      await this.deps.broker.publish(
        'control',
        [...toStop].map((buildId) => ({ type: 'kill' as const, buildId })),
      );
    }
    if (updates.length > 0) await this.deps.broker.publish('event', updates);
  }

  /**
   * Someone killed the build: a queued one ends KILLED here and now; a running one is stopped by its
   * runner, which reports KILLED. Also a queued one is signalled: a runner may have taken it a moment
   * ago (and a runner that starts it later is told to stop when it reports its start).
   */
  async killed(em: EntityManager, buildId: string): Promise<void> {
    const killedQueued = await em.execute<{ id: string }[]>(
      `update builds set status = 'KILLED', finished_at = now(), last_seq = 0, reason = 'killed before a runner took it'
       where id = ? and status = 'QUEUED' and attempt = 0 returning id`,
      [buildId],
    );
    if (killedQueued.length > 0) {
      await em.execute(
        `update jobs set status = 'KILLED', finished_at = now() where build_id = ? and status in ${LIVE_JOB}`,
        [buildId],
      );
      await this.announce(em, [buildId]);
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
 * One statement applying a report, forward only: it changes nothing when the report is older than
 * what is stored (a redelivery, an earlier attempt). It returns `changed` (rows updated), and for
 * build.started `ended_before`: the build ended before this attempt started (killed while queued).
 */
function statusSql(em: EntityManager, report: StatusReport): string {
  const sql = (text: string, params: unknown[]) => em.getPlatform().formatQuery(text, params);
  switch (report.type) {
    case 'build.started': {
      const a = report.attempt;
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
        [report.buildId, a, report.runner, report.at, report.buildId, a, a, a, a, a],
      );
    }
    case 'job.started': {
      const a = report.attempt;
      return sql(
        `with updated as (
           update jobs set status = 'RUNNING', attempt = ?, started_at = ?, finished_at = null, exit_code = null
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status = 'QUEUED'))
             and ${CURRENT_ATTEMPT}
           returning id)
         select count(*) as changed from updated`,
        [a, report.at, report.jobId, report.buildId, a, a, a, a],
      );
    }
    case 'job.finished': {
      const a = report.attempt;
      return sql(
        `with updated as (
           update jobs set status = ?, attempt = ?, exit_code = ?, finished_at = ?,
             started_at = case when ? = 'SKIPPED' then null else coalesce(started_at, ?) end
           where id = ? and build_id = ? and (attempt < ? or (attempt = ? and status in ${LIVE_JOB}))
             and ${CURRENT_ATTEMPT}
           returning id)
         select count(*) as changed from updated`,
        [
          report.status,
          a,
          report.exitCode,
          report.at,
          report.status,
          report.at,
          report.jobId,
          report.buildId,
          a,
          a,
          a,
          a,
        ],
      );
    }
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
          report.status,
          report.attempt,
          report.lastSeq,
          report.reason,
          report.at,
          report.at,
          report.buildId,
          report.attempt,
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

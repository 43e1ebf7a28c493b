/**
 * Firing schedules exactly once per slot on any number of serve replicas sharing the database, in
 * three steps a tick runs (`tick`):
 * 1. **Claim**: one transaction takes the due schedules' rows (`FOR UPDATE SKIP LOCKED`, a batch of
 *    at most 1000, Djinn's size), writes one `schedule_firings` row per slot (unique on schedule and
 *    slot) and moves each schedule's `next_run_at` to its first time after now. Slots missed while no
 *    replica ran collapse into one: the latest due slot, marked late.
 * 2. **Fire**: outside any transaction, what the slot builds is read (the manifest, or the branch's
 *    head and its manifests); then one transaction turns the firing from `pending` to `fired` and
 *    writes its builds (with their outbox rows). The builds are sent only after that commits.
 * 3. **Recover**: a firing left `pending` for two minutes (its replica died between 1 and 2) is
 *    fired by whichever replica finds it. Step 2's `where state = 'pending'` keeps it to one.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { Access } from '../../auth/access.ts';
import { ALL_SCOPES } from '../../auth/scopes.ts';
import type { Build } from '../builds/builds.entity.ts';
import type { BuildService, SubmitRequest } from '../builds/builds.service.ts';
import { NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { lsRemote } from '../repositories/git.ts';
import { type Repository, RepositorySchema } from '../repositories/repositories.entity.ts';
import type { RepositoryService } from '../repositories/repositories.service.ts';
import { UserSchema } from '../users/users.entity.ts';
import { lastRunAtOrBefore, runsAfter } from './cron.ts';
import { type Schedule, ScheduleSchema } from './schedules.entity.ts';

/** Djinn's batch: at most this many due schedules are claimed by one tick. */
export const BATCH_SIZE = 1000;
/** A slot fired this much after its time (or after a missed one) is late, and its build says so. */
export const LATE_AFTER_MS = 30_000;
/** A firing left pending this long lost its replica: another one fires it. */
const RECOVER_AFTER_MS = 120_000;
/** How many firings of one tick run at once (each reads a manifest or a branch, then writes builds). */
const FIRE_CONCURRENCY = 8;
/** What became of one claimed slot. */
export interface Firing {
  id: string;
  scheduleId: string;
  slot: Date;
  late: boolean;
  state: 'fired' | 'skipped' | 'failed' | 'lost';
  outcome: string;
  builds: string[];
}

/** What the firings of one tick share: owners' access to namespaces, manifests parsed and planned. */
interface TickCache {
  access: Map<string, Promise<string | null>>;
  manifests: Map<string, ReturnType<BuildService['validate']>>;
}

interface Claimed {
  id: string;
  schedule_id: string;
  slot: Date;
  late: boolean;
}

export interface ScheduleFirerDeps {
  orm: MikroORM;
  builds: BuildService;
  repositories: RepositoryService;
  logger: Logger;
  now: () => Date;
}

export class ScheduleFirer {
  private readonly now: () => Date;

  constructor(private readonly deps: ScheduleFirerDeps) {
    this.now = deps.now;
  }

  /**
   * One tick: claims the due slots, fires them, and fires slots whose replica died. Returns what
   * became of each, and when the soonest schedule is due next (the ticker sleeps until then).
   */
  async tick(): Promise<{ firings: Firing[]; soonest: Date | null }> {
    const claimed = [...(await this.claim()), ...(await this.reclaim())];
    const firings: Firing[] = [];
    const cache: TickCache = { access: new Map(), manifests: new Map() };
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const slot = claimed[next++]!;
        firings.push(await this.fire(slot, cache));
      }
    };
    await Promise.all(Array.from({ length: Math.min(FIRE_CONCURRENCY, claimed.length) }, worker));
    const [row] = await this.deps.orm.em
      .fork()
      .execute<{ soonest: Date | null }[]>(
        'select min(next_run_at) as soonest from schedules where enabled and next_run_at is not null',
      );
    return { firings, soonest: row?.soonest ? new Date(row.soonest) : null };
  }

  /** Step 1: the due schedules' slots, claimed and their next runs moved on, in one transaction. */
  private async claim(): Promise<Claimed[]> {
    const now = this.now();
    return this.deps.orm.em.fork().transactional(async (em) => {
      const due = await em.execute<{ id: string; cron: string; timezone: string; next_run_at: Date }[]>(
        `select id, cron, timezone, next_run_at from schedules
         where enabled and next_run_at <= ?
         order by next_run_at
         limit ?
         for update skip locked`,
        [now, BATCH_SIZE],
      );
      if (due.length === 0) return [];
      // Schedules share expressions (a thousand @daily ones): each is computed once a tick.
      const times = new Map<string, { latest: Date; next: Date }>();
      const timesOf = (cron: string, zone: string) => {
        const key = `${cron}\u0000${zone}`;
        let found = times.get(key);
        if (!found) {
          found = { latest: lastRunAtOrBefore(cron, zone, now), next: runsAfter(cron, zone, now, 1)[0]! };
          times.set(key, found);
        }
        return found;
      };
      const rows = due.map((s) => {
        const dueAt = new Date(s.next_run_at);
        let slot = dueAt;
        let next: Date;
        try {
          // Missed slots collapse into the latest one due; the next run is the first after now.
          const { latest, next: after } = timesOf(s.cron, s.timezone);
          if (latest > slot) slot = latest;
          next = after > slot ? after : runsAfter(s.cron, s.timezone, slot, 1)[0]!;
        } catch (error) {
          // An expression that no longer computes (it was checked when stored): fire once, then stop.
          this.deps.logger.error({ err: error, schedule: s.id }, 'a schedule cannot compute its times');
          next = new Date(Number.NaN);
        }
        const late = slot > dueAt || now.getTime() - slot.getTime() > LATE_AFTER_MS;
        return {
          id: randomUUID(),
          schedule_id: s.id,
          slot: slot.toISOString(),
          next: Number.isNaN(next.getTime()) ? null : next.toISOString(),
          late,
        };
      });
      const inserted = await em.execute<Claimed[]>(
        `insert into schedule_firings (id, schedule_id, slot, claimed_at, state, late, outcome, build_ids)
         select id, schedule_id, slot, ?, 'pending', late, null, '[]'::jsonb
         from jsonb_to_recordset(?::jsonb) as f(id uuid, schedule_id uuid, slot timestamptz, late boolean)
         on conflict (schedule_id, slot) do nothing
         returning id, schedule_id, slot, late`,
        [now, JSON.stringify(rows)],
      );
      await em.execute(
        `update schedules s set next_run_at = v.next, last_run_at = v.slot,
           enabled = s.enabled and v.next is not null,
           problem = case when v.next is null then 'stopped: the expression no longer computes a next time' else s.problem end
         from jsonb_to_recordset(?::jsonb) as v(schedule_id uuid, slot timestamptz, next timestamptz)
         where s.id = v.schedule_id`,
        [JSON.stringify(rows)],
      );
      return inserted.map((r) => ({ ...r, slot: new Date(r.slot) }));
    });
  }

  /** Step 3: firings whose replica died before firing them, taken over. */
  private async reclaim(): Promise<Claimed[]> {
    const now = this.now();
    const rows = await this.deps.orm.em.fork().execute<Claimed[]>(
      `update schedule_firings set claimed_at = ?
       where state = 'pending' and claimed_at < ?
       returning id, schedule_id, slot, late`,
      [now, new Date(now.getTime() - RECOVER_AFTER_MS)],
    );
    if (rows.length > 0) this.deps.logger.warn({ firings: rows.length }, 'firing slots a replica left');
    return rows.map((r) => ({ ...r, slot: new Date(r.slot) }));
  }

  /** Step 2 for one slot; never throws (a failure leaves it pending, for step 3). */
  private async fire(claimed: Claimed, cache: TickCache): Promise<Firing> {
    const result = (state: Firing['state'], outcome: string, builds: string[] = []): Firing => ({
      id: claimed.id,
      scheduleId: claimed.schedule_id,
      slot: claimed.slot,
      late: claimed.late,
      state,
      outcome,
      builds,
    });
    const em = this.deps.orm.em.fork();
    try {
      const schedule = await em.findOne(ScheduleSchema, { id: claimed.schedule_id });
      if (!schedule) return result('lost', 'the schedule was deleted');
      const accessKey = `${schedule.owner.id}:${schedule.namespace?.id ?? ''}`;
      let why = cache.access.get(accessKey);
      if (!why) {
        why = this.whyNot(em, schedule);
        cache.access.set(accessKey, why);
      }
      const stop = await why;
      if (stop) {
        await em.execute(
          `update schedules set enabled = false, next_run_at = null, problem = ? where id = ?`,
          [`stopped: ${stop}`, schedule.id],
        );
        this.deps.logger.warn({ schedule: schedule.id, reason: stop }, 'stopped a schedule');
        return this.settle1(em, result('failed', `stopped: ${stop}`));
      }
      const prepared = await this.prepare(em, schedule, claimed, cache);
      if ('skip' in prepared) {
        await em.execute('update schedules set problem = ? where id = ?', [prepared.problem, schedule.id]);
        return this.settle1(em, result(prepared.state, prepared.skip));
      }
      const builds: Build[] = [];
      const publishes: ((outside: EntityManager) => void)[] = [];
      const outcome = prepared.outcome;
      const committed = await em.transactional(async (tem) => {
        const taken = await tem.execute<{ id: string }[]>(
          `update schedule_firings set state = 'fired' where id = ? and state = 'pending' returning id`,
          [claimed.id],
        );
        if (taken.length === 0) return false;
        for (const request of prepared.requests) {
          const { build, publish } = await this.deps.builds.prepare(tem, request);
          builds.push(build);
          publishes.push(publish);
        }
        const text = outcome(builds.length);
        await tem.execute('update schedule_firings set outcome = ?, build_ids = ? where id = ?', [
          text,
          JSON.stringify(builds.map((b) => b.id)),
          claimed.id,
        ]);
        await tem.execute('update schedules set last_sha = coalesce(?, last_sha), problem = ? where id = ?', [
          prepared.sha,
          prepared.problems.length > 0 ? `the last firing ${text}` : null,
          schedule.id,
        ]);
        return true;
      });
      if (!committed) return result('lost', 'another replica fired this slot');
      for (const publish of publishes) publish(em);
      return result(
        'fired',
        outcome(builds.length),
        builds.map((b) => b.id),
      );
    } catch (error) {
      this.deps.logger.error({ err: error, firing: claimed.id }, 'firing a schedule failed; it is retried');
      return result(
        'lost',
        `failed, retried later: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  /** Records a slot that built nothing (skipped or failed). */
  private async settle1(em: EntityManager, firing: Firing): Promise<Firing> {
    await em.execute(
      `update schedule_firings set state = ?, outcome = ? where id = ? and state = 'pending'`,
      [firing.state, firing.outcome.slice(0, 4000), firing.id],
    );
    return firing;
  }

  /** Why the schedule's owner may no longer build where it builds; null when they may. */
  private async whyNot(em: EntityManager, schedule: Schedule): Promise<string | null> {
    const owner = await em.findOne(UserSchema, { id: schedule.owner.id });
    if (!owner) return 'its owner is gone';
    if (!schedule.namespace) return null;
    const namespace = await em.findOne(NamespaceSchema, { id: schedule.namespace.id });
    if (!namespace) return 'its namespace is gone';
    const access = new Access(em, {
      viewer: owner,
      tokenId: null,
      kind: 'PERSONAL',
      scopes: new Set(ALL_SCOPES),
      via: 'none',
    });
    return (await access.canWrite(namespace))
      ? null
      : `${owner.username} may no longer write namespace ${namespace.path}`;
  }

  /** What a slot builds: the requests to submit, or why it builds nothing. */
  private async prepare(
    em: EntityManager,
    schedule: Schedule,
    claimed: Claimed,
    cache: TickCache,
  ): Promise<
    | {
        requests: SubmitRequest[];
        outcome: (built: number) => string;
        problems: string[];
        sha: string | null;
      }
    | { skip: string; state: 'skipped' | 'failed'; problem: string | null }
  > {
    const slot = claimed.slot.toISOString();
    const late = claimed.late ? ` (late: due at ${slot}, fired at ${this.now().toISOString()})` : '';
    const causeData = {
      scheduleId: schedule.id,
      scheduledFor: slot,
      ...(claimed.late ? { late: 'true' } : {}),
    };
    if (schedule.manifest !== null) {
      // Schedules share manifests: each is parsed and planned once a tick (a submission is only read).
      let validated = cache.manifests.get(schedule.manifest);
      if (!validated) {
        validated = this.deps.builds.validate({ manifest: schedule.manifest, comment: null, tags: [] });
        cache.manifests.set(schedule.manifest, validated);
      }
      if (!validated.ok) {
        const reason = `refused: ${validated.problems[0]!.message}`;
        return { skip: reason, state: 'failed', problem: `the last firing was ${reason}` };
      }
      const comment = `${schedule.name}: ${slot}${late}`.slice(0, 1000);
      return {
        requests: [
          {
            owner: { id: schedule.owner.id },
            namespace: schedule.namespace ? { id: schedule.namespace.id } : null,
            cause: { kind: 'SCHEDULE', data: causeData },
            submission: { ...validated.submission, comment },
          },
        ],
        outcome: (built) => `started ${built} build${built === 1 ? '' : 's'}${late}`,
        problems: [],
        sha: null,
      };
    }
    const repo = (await em.findOne(RepositorySchema, { id: schedule.repository!.id })) as Repository;
    const branch = schedule.branch ?? repo.defaultBranch;
    const ref = `refs/heads/${branch}`;
    let head: string | undefined;
    try {
      head = (await lsRemote(repo.cloneUrl, 60_000, await this.deps.repositories.auth(em, repo))).refs.get(
        ref,
      );
    } catch (error) {
      const reason = `failed: ${error instanceof Error ? error.message : String(error)}`;
      return { skip: reason, state: 'failed', problem: `the last firing ${reason}` };
    }
    if (!head) {
      const reason = `failed: the repository has no branch ${branch}`;
      return { skip: reason, state: 'failed', problem: `the last firing ${reason}` };
    }
    if (schedule.onlyOnChanges && head === schedule.lastSha) {
      return {
        skip: `skipped: ${branch} is still at ${head.slice(0, 12)}, which this schedule built`,
        state: 'skipped',
        problem: null,
      };
    }
    const prepared = await this.deps.repositories.prepareCommit(em, repo, {
      kind: 'SCHEDULE',
      ref,
      commit: { sha: head, author: null, message: null, url: null },
      url: null,
      pullRequest: null,
      fromFork: false,
      causeData,
      commentPrefix: `${schedule.name}${late}: `,
    });
    return {
      requests: prepared.requests,
      outcome: (built) => `${prepared.outcome(built)} at ${branch}@${head.slice(0, 12)}${late}`,
      problems: prepared.problems,
      sha: head,
    };
  }
}

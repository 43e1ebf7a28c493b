/**
 * Schedules: creating and changing them (every setting checked, with the field it is about), their
 * next runs, and (through firing.ts) firing them exactly once per slot on any number of replicas.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { BuildService } from '../builds/builds.service.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { RepositorySchema } from '../repositories/repositories.entity.ts';
import type { Outcome, RepositoryService } from '../repositories/repositories.service.ts';
import { type User, UserSchema } from '../users/users.entity.ts';
import { checkCron, checkZone, firesMoreOftenThan, runsAfter } from './cron.ts';
import { type Firing, ScheduleFirer } from './firing.ts';
import { type Schedule, ScheduleSchema } from './schedules.entity.ts';

const NAME = /^[^\p{Cc}]{1,128}$/u;

export interface ScheduleInput {
  name?: string | null;
  cron?: string | null;
  timezone?: string | null;
  enabled?: boolean | null;
  manifest?: string | null;
  /** A repository's id (not its global id). */
  repositoryId?: string | null;
  branch?: string | null;
  onlyOnChanges?: boolean | null;
}

export interface ScheduleServiceDeps {
  orm: MikroORM;
  builds: BuildService;
  repositories: RepositoryService;
  logger: Logger;
  /** KILN_SCHEDULE_MIN_SECONDS: the shortest interval an expression may fire at. */
  minSeconds: number;
  /** Called when a schedule's next run may have come closer (the ticker sleeps until then). */
  onChange?: () => void;
  now?: () => Date;
}

export class ScheduleService {
  private readonly now: () => Date;

  private readonly firer: ScheduleFirer;

  constructor(private readonly deps: ScheduleServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.firer = new ScheduleFirer({ ...deps, now: this.now });
  }

  find(em: EntityManager, id: string): Promise<Schedule | null> {
    return em.findOne(ScheduleSchema, { id });
  }

  listOfNamespace(em: EntityManager, namespaceId: string): Promise<Schedule[]> {
    return em.find(ScheduleSchema, { namespace: namespaceId }, { orderBy: { name: 'asc', id: 'asc' } });
  }

  listOfUser(em: EntityManager, userId: string): Promise<Schedule[]> {
    return em.find(
      ScheduleSchema,
      { owner: userId, namespace: null },
      { orderBy: { name: 'asc', id: 'asc' } },
    );
  }

  /** The next `count` runs, soonest first; none while paused or stopped. */
  nextRuns(schedule: Schedule, count: number): Date[] {
    if (!schedule.enabled || !schedule.nextRunAt) return [];
    const now = this.now();
    // A slot due and not yet fired is still to come.
    const from = schedule.nextRunAt < now ? new Date(schedule.nextRunAt.getTime() - 1) : now;
    return runsAfter(schedule.cron, schedule.timezone, from, count);
  }

  /** The next `count` times `cron` fires in `zone`, or why a schedule with them would be refused. */
  preview(cron: string, zone: string, count: number): Outcome<Date[]> {
    const text = cron.trim().replace(/\s+/g, ' ');
    const fail = (field: string, reason: string) => ({ ok: false as const, path: field, reason });
    const cronProblem = checkCron(text);
    if (cronProblem) return fail('cron', cronProblem);
    const zoneProblem = checkZone(zone);
    if (zoneProblem) return fail('timezone', zoneProblem);
    const now = this.now();
    const gap = firesMoreOftenThan(text, zone, now, this.deps.minSeconds);
    if (gap !== null) return fail('cron', this.tooOften(text, gap));
    return { ok: true, value: runsAfter(text, zone, now, count) };
  }

  private tooOften(cron: string, gap: number): string {
    return `"${cron}" fires every ${gap} s at its most frequent; schedules fire at most every ${this.deps.minSeconds} s (KILN_SCHEDULE_MIN_SECONDS)`;
  }

  /** Checks `input` on top of `current` (an update); the fields to store. */
  private async settle(
    em: EntityManager,
    namespace: Namespace | null,
    ownerId: string,
    input: ScheduleInput,
    current: Schedule | null,
  ): Promise<
    Outcome<
      Pick<
        Schedule,
        | 'name'
        | 'cron'
        | 'timezone'
        | 'enabled'
        | 'manifest'
        | 'branch'
        | 'onlyOnChanges'
        | 'nextRunAt'
        | 'problem'
      > & { repositoryId: string | null }
    >
  > {
    const fail = (field: string, reason: string) => ({ ok: false as const, path: `input.${field}`, reason });
    const name = (input.name ?? current?.name ?? '').trim();
    if (!NAME.test(name)) return fail('name', 'a schedule name is 1 to 128 characters on one line');
    const clash = await em.findOne(ScheduleSchema, {
      owner: ownerId,
      namespace: namespace?.id ?? null,
      name,
    });
    if (clash && clash.id !== current?.id) {
      return fail('name', `there is a schedule named ${name} here already`);
    }
    const cron = (input.cron ?? current?.cron ?? '').trim().replace(/\s+/g, ' ');
    const cronProblem = checkCron(cron);
    if (cronProblem) return fail('cron', cronProblem);
    const timezone = (input.timezone ?? current?.timezone ?? 'UTC').trim();
    const zoneProblem = checkZone(timezone);
    if (zoneProblem) return fail('timezone', zoneProblem);
    const now = this.now();
    const gap = firesMoreOftenThan(cron, timezone, now, this.deps.minSeconds);
    if (gap !== null) {
      return fail('cron', this.tooOften(cron, gap));
    }

    // What it builds: a manifest, or a repository's branch; chosen on create, kept after.
    let repositoryId = current ? (current.repository?.id ?? null) : (input.repositoryId ?? null);
    let manifest = current ? current.manifest : (input.manifest ?? null);
    if (!current && manifest !== null && repositoryId !== null) {
      return fail('manifest', 'give a manifest or a repositoryId, not both');
    }
    if (!current && manifest === null && repositoryId === null) {
      return fail('manifest', 'give the manifest each firing builds, or a repositoryId');
    }
    if (current && input.manifest != null) {
      if (repositoryId !== null) {
        return fail('manifest', 'this schedule builds a repository: its manifests come from the branch');
      }
      manifest = input.manifest;
    }
    if (manifest !== null) {
      const validated = this.deps.builds.validate({ manifest, comment: null, tags: [] });
      if (!validated.ok) {
        const first = validated.problems[0]!;
        return fail(
          'manifest',
          `${first.line ? `line ${first.line}: ` : ''}${first.message}${validated.problems.length > 1 ? ` (and ${validated.problems.length - 1} more)` : ''}`,
        );
      }
    }
    if (repositoryId !== null && !current) {
      const repo = await em.findOne(RepositorySchema, { id: repositoryId });
      if (!repo || !namespace || repo.namespace.id !== namespace.id) {
        return fail(
          'repositoryId',
          namespace
            ? `namespace ${namespace.path} has no such repository`
            : "a repository's schedule belongs to its namespace: give namespace",
        );
      }
      repositoryId = repo.id;
    }
    const branch = input.branch === undefined ? (current?.branch ?? null) : input.branch || null;
    if (branch !== null) {
      if (repositoryId === null) return fail('branch', 'only a repository schedule builds a branch');
      if (branch.startsWith('-') || /\s/.test(branch) || branch.length > 255) {
        return fail('branch', `"${branch.slice(0, 200)}" is not a branch name`);
      }
    }
    const onlyOnChanges = input.onlyOnChanges ?? current?.onlyOnChanges ?? false;
    if (onlyOnChanges && repositoryId === null) {
      return fail('onlyOnChanges', 'only a repository schedule has a branch head to compare');
    }
    const enabled = input.enabled ?? current?.enabled ?? true;
    // The next slot: recomputed when the times change or the schedule is resumed, so that resuming
    // never fires the slots it skipped while paused.
    const timesChanged = !current || cron !== current.cron || timezone !== current.timezone;
    const resumed = enabled && !!current && (!current.enabled || current.nextRunAt === null);
    const nextRunAt = !enabled
      ? null
      : timesChanged || resumed
        ? runsAfter(cron, timezone, now, 1)[0]!
        : current!.nextRunAt;
    return {
      ok: true,
      value: {
        name,
        cron,
        timezone,
        enabled,
        manifest,
        repositoryId,
        branch,
        onlyOnChanges,
        nextRunAt,
        problem: resumed ? null : (current?.problem ?? null),
      },
    };
  }

  /** A schedule of `owner` (in `namespace`, which the caller checked they may write). */
  async create(
    em: EntityManager,
    owner: User,
    namespace: Namespace | null,
    input: ScheduleInput,
  ): Promise<Outcome<Schedule>> {
    const settled = await this.settle(em, namespace, owner.id, input, null);
    if (!settled.ok) return settled;
    const { repositoryId, ...fields } = settled.value;
    const schedule = em.create(ScheduleSchema, {
      id: randomUUID(),
      owner: em.getReference(UserSchema, owner.id, { wrapped: true }),
      namespace: namespace ? em.getReference(NamespaceSchema, namespace.id, { wrapped: true }) : null,
      repository: repositoryId ? em.getReference(RepositorySchema, repositoryId, { wrapped: true }) : null,
      ...fields,
      lastRunAt: null,
      lastSha: null,
      createdAt: new Date(),
    });
    await em.persistAndFlush(schedule);
    this.deps.onChange?.();
    return { ok: true, value: schedule };
  }

  async update(em: EntityManager, schedule: Schedule, input: ScheduleInput): Promise<Outcome<Schedule>> {
    const namespace = schedule.namespace
      ? await em.findOne(NamespaceSchema, { id: schedule.namespace.id })
      : null;
    const settled = await this.settle(em, namespace, schedule.owner.id, input, schedule);
    if (!settled.ok) return settled;
    const { repositoryId: _kept, ...fields } = settled.value;
    em.assign(schedule, fields);
    await em.flush();
    this.deps.onChange?.();
    return { ok: true, value: schedule };
  }

  async delete(em: EntityManager, schedule: Schedule): Promise<void> {
    await em.removeAndFlush(schedule);
  }

  /** Claims and fires the due slots: firing.ts. */
  tick(): Promise<{ firings: Firing[]; soonest: Date | null }> {
    return this.firer.tick();
  }
}

export type { Firing };

/**
 * Schedules in the schema: a namespace's are seen by those who may read it and managed by those who
 * may write it; a user's own (no namespace) by that user alone. Scopes `cron:read|write|delete`.
 * The cause of a build a schedule fired names the schedule and its slot.
 */
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import {
  BuildConnection,
  BuildRef,
  type BuildView,
  decodeBuildCursor,
  encodeBuildCursor,
} from '../builds/builds.schema.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import { BuildCauseRef } from '../repositories/forge-events.schema.ts';
import { RepositorySchema } from '../repositories/repositories.entity.ts';
import { mayRead as mayReadRepository, RepositoryRef } from '../repositories/repositories.schema.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type Schedule,
  type ScheduleFiring,
  ScheduleFiringSchema,
  ScheduleSchema,
} from './schedules.entity.ts';
import type { ScheduleInput } from './schedules.service.ts';

const namespaceOf = (ctx: Context, s: Schedule) =>
  s.namespace
    ? (ctx.em.findOne(NamespaceSchema, { id: s.namespace.id }) as Promise<Namespace | null>)
    : Promise.resolve(null);

const isOwner = (ctx: Context, s: Schedule) =>
  ctx.auth.viewer?.id === s.owner.id || ctx.auth.viewer?.isAdmin === true;

async function mayRead(ctx: Context, s: Schedule): Promise<boolean> {
  if (!s.namespace) return isOwner(ctx, s);
  const ns = await namespaceOf(ctx, s);
  return ns !== null && (await ctx.access.canRead(ns));
}

async function mayWrite(ctx: Context, s: Schedule): Promise<boolean> {
  if (!s.namespace) return isOwner(ctx, s);
  const ns = await namespaceOf(ctx, s);
  return ns !== null && (await ctx.access.canWrite(ns));
}

export const ScheduleRef = builder.loadableNodeRef<Schedule>('Schedule', {
  id: { resolve: (s) => s.id },
  sort: (s) => s.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(ScheduleSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

const FiringRef = builder.objectRef<ScheduleFiring>('ScheduleFiring').implement({
  description: 'One slot a schedule fired (or skipped), claimed once whatever the number of replicas.',
  fields: (t) => ({
    slot: t.expose('slot', { type: 'DateTime', description: 'The time the slot was due.' }),
    firedAt: t.expose('claimedAt', { type: 'DateTime', description: 'When a replica claimed the slot.' }),
    late: t.exposeBoolean('late', {
      description:
        'It fired late: Kiln was not running at its time (later missed slots fired with it, once).',
    }),
    state: t.exposeString('state', { description: 'pending, fired, skipped or failed.' }),
    outcome: t.exposeString('outcome', { nullable: true, description: 'What became of it, in words.' }),
    builds: t.field({
      type: [BuildRef],
      resolve: async (f, _args, ctx) => {
        const builds = await ctx.services.builds.list(ctx.em, ctx.access, {
          limit: 100,
          after: null,
          scheduleId: f.schedule.id,
        });
        return builds.filter((b) => f.buildIds.includes(b.id)) as BuildView[];
      },
    }),
  }),
});

ScheduleRef.implement({
  description: "A cron schedule of a namespace or of a user: builds a manifest, or a repository's branch.",
  authScopes: async (s, ctx) => hasScope(ctx.auth.scopes, 'cron:read') && (await mayRead(ctx, s)),
  fields: (t) => ({
    namespace: t.field({ type: NamespaceRef, nullable: true, resolve: (s) => s.namespace?.id ?? null }),
    owner: t.field({
      type: UserRef,
      description: 'Whose rights its builds run with.',
      resolve: (s) => s.owner.id,
    }),
    name: t.exposeString('name'),
    cron: t.exposeString('cron', {
      description:
        'Five fields (minute hour day-of-month month day-of-week), or six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.',
    }),
    timezone: t.exposeString('timezone', {
      description: 'The IANA zone the expression is read in; UTC by default.',
    }),
    enabled: t.exposeBoolean('enabled', {
      description: 'False while paused, or once stopped (see problem).',
    }),
    manifest: t.exposeString('manifest', {
      nullable: true,
      description: 'The manifest each firing submits; null when the schedule builds a repository.',
    }),
    repository: t.field({
      type: RepositoryRef,
      nullable: true,
      resolve: async (s, _args, ctx) => {
        if (!s.repository) return null;
        const repo = await ctx.em.findOne(RepositorySchema, { id: s.repository.id });
        return repo && hasScope(ctx.auth.scopes, 'repository:read') && (await mayReadRepository(ctx, repo))
          ? repo
          : null;
      },
    }),
    branch: t.exposeString('branch', {
      nullable: true,
      description: 'The branch a repository schedule builds; the default branch when null.',
    }),
    onlyOnChanges: t.exposeBoolean('onlyOnChanges', {
      description:
        "Skip a firing when the branch head was already built by this schedule (GoCD's only_on_changes).",
    }),
    nextRuns: t.field({
      type: ['DateTime'],
      description:
        'The next firing times, soonest first (5 by default, at most 100); none while paused or stopped.',
      args: { first: t.arg.int() },
      resolve: (s, args, ctx) => {
        const count = Math.min(Math.max(args.first ?? 5, 0), 100);
        return ctx.services.schedules.nextRuns(s, count);
      },
    }),
    lastRunAt: t.expose('lastRunAt', {
      type: 'DateTime',
      nullable: true,
      description: 'The last slot it fired for.',
    }),
    problem: t.exposeString('problem', {
      nullable: true,
      description:
        'Why it stopped (its owner lost access to the namespace) or why its last firing built nothing; null when all is well.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    firings: t.field({
      type: [FiringRef],
      description: 'Its latest slots, newest first (10 by default, at most 100), with what became of each.',
      args: { first: t.arg.int() },
      resolve: (s, args, ctx) =>
        ctx.em.find(
          ScheduleFiringSchema,
          { schedule: s.id },
          {
            orderBy: { slot: 'desc' },
            limit: Math.min(Math.max(args.first ?? 10, 0), 100),
            disableIdentityMap: true,
          },
        ),
    }),
    builds: t.field({
      type: BuildConnection,
      description: 'Builds it fired, newest first.',
      args: { first: t.arg.int({ description: 'At most 100; default 20.' }), after: t.arg.string() },
      resolve: (s, args, ctx) =>
        resolveCursorConnection(
          { args, defaultSize: 20, maxSize: 100, toCursor: encodeBuildCursor },
          ({ after, limit }: ResolveCursorConnectionArgs) =>
            ctx.services.builds.list(ctx.em, ctx.access, {
              limit,
              after: decodeBuildCursor(after),
              scheduleId: s.id,
            }) as Promise<BuildView[]>,
        ),
    }),
  }),
});

builder.objectField(NamespaceRef, 'schedules', (t) =>
  t.field({
    type: [ScheduleRef],
    description: "The namespace's schedules, by name.",
    authScopes: { scope: 'cron:read' },
    resolve: (ns, _args, ctx) => ctx.services.schedules.listOfNamespace(ctx.em, ns.id),
  }),
);

builder.objectField(UserRef, 'schedules', (t) =>
  t.field({
    type: [ScheduleRef],
    description: 'The schedules of the user that belong to no namespace, by name (its own user only).',
    authScopes: (user, _args, ctx) =>
      (ctx.auth.viewer?.id === user.id || ctx.auth.viewer?.isAdmin === true) && { scope: 'cron:read' },
    resolve: (user, _args, ctx) => ctx.services.schedules.listOfUser(ctx.em, user.id),
  }),
);

builder.objectFields(BuildCauseRef, (t) => ({
  schedule: t.field({
    type: ScheduleRef,
    nullable: true,
    description: 'The schedule that fired it; null when none did, or it is gone or hidden from you.',
    resolve: async (c, _args, ctx) => {
      const id = c.data.scheduleId;
      const schedule = id ? await ctx.em.findOne(ScheduleSchema, { id }) : null;
      return schedule && hasScope(ctx.auth.scopes, 'cron:read') && (await mayRead(ctx, schedule))
        ? schedule
        : null;
    },
  }),
  scheduledFor: t.field({
    type: 'DateTime',
    nullable: true,
    description: "The slot the schedule fired for (the build's createdAt is when it was written).",
    resolve: (c) => (c.data.scheduledFor ? new Date(c.data.scheduledFor) : null),
  }),
  late: t.boolean({
    description: 'A schedule fired it late: Kiln was not running at its slot.',
    resolve: (c) => c.data.late === 'true',
  }),
}));

const CreateScheduleInput = builder.inputType('CreateScheduleInput', {
  fields: (t) => ({
    namespace: t.string({ description: "The viewer's own schedule when null." }),
    name: t.string({ required: true }),
    cron: t.string({ required: true }),
    timezone: t.string({ description: 'An IANA zone; UTC when null.' }),
    enabled: t.boolean({ description: 'True when null.' }),
    manifest: t.string({ description: 'The manifest each firing submits (or give repositoryId).' }),
    repositoryId: t.id({
      description: "A repository of the namespace: each firing builds its branch's head.",
    }),
    branch: t.string({ description: "The repository's default branch when null." }),
    onlyOnChanges: t.boolean({
      description: 'Skip a firing when the head was already built by this schedule.',
    }),
  }),
});

const UpdateScheduleInput = builder.inputType('UpdateScheduleInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    cron: t.string(),
    timezone: t.string(),
    enabled: t.boolean({
      description: 'False pauses it; true resumes it from the next slot (skipped slots do not fire).',
    }),
    manifest: t.string(),
    branch: t.string({ description: 'An empty string goes back to the default branch.' }),
    onlyOnChanges: t.boolean(),
  }),
});

const DeleteScheduleInput = builder.inputType('DeleteScheduleInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

const CreateScheduleSuccess = builder.objectRef<{ schedule: Schedule }>('CreateScheduleSuccess').implement({
  fields: (t) => ({ schedule: t.field({ type: ScheduleRef, resolve: (c) => c.schedule }) }),
});

async function writableSchedule(ctx: Context, globalId: string): Promise<Schedule> {
  const id = localId(globalId, 'Schedule');
  const schedule = id ? await ctx.services.schedules.find(ctx.em, id) : null;
  if (!schedule || !(await mayRead(ctx, schedule)))
    throw new NotFoundError(`no schedule with id ${globalId}`);
  if (!(await mayWrite(ctx, schedule)))
    throw forbidden('only those who may write the namespace manage its schedules');
  return schedule;
}

const inputOf = (input: Record<string, unknown>): ScheduleInput => {
  const out: Record<string, unknown> = {};
  for (const key of ['name', 'cron', 'timezone', 'enabled', 'manifest', 'branch', 'onlyOnChanges']) {
    if (key in input && input[key] !== undefined) out[key] = input[key];
  }
  return out as ScheduleInput;
};

const orInputError = <T>(
  outcome: { ok: true; value: T } | { ok: false; path: string; reason: string },
): T => {
  if (outcome.ok) return outcome.value;
  throw new InputError(outcome.reason, outcome.path);
};

builder.queryField('scheduleTimes', (t) =>
  t.field({
    type: ['DateTime'],
    description:
      "The next times an expression fires in a zone (UTC when null), soonest first (5 by default, at most 100): a schedule form's live preview. An InputError names the field when the expression, the zone or its frequency (KILN_SCHEDULE_MIN_SECONDS) would be refused.",
    args: { cron: t.arg.string({ required: true }), timezone: t.arg.string(), first: t.arg.int() },
    errors: { types: [InputError], dataField: { name: 'times' } },
    resolve: (_root, args, ctx) =>
      orInputError(
        ctx.services.schedules.preview(
          args.cron,
          args.timezone ?? 'UTC',
          Math.min(Math.max(args.first ?? 5, 0), 100),
        ),
      ),
  }),
);

builder.mutationFields((t) => ({
  createSchedule: t.field({
    type: CreateScheduleSuccess,
    description: 'A cron schedule in a namespace you may write, or your own (namespace null).',
    authScopes: { scope: 'cron:write' },
    args: { input: t.arg({ type: CreateScheduleInput, required: true }) },
    errors: { types: [InputError, NotFoundError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      if (!hasScope(ctx.auth.scopes, 'build:write'))
        throw forbidden('a schedule builds: it needs build:write');
      let ns: Namespace | null = null;
      if (input.namespace) {
        ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, input.namespace);
        if (!ns || !(await ctx.access.canRead(ns)))
          throw new NotFoundError(`no namespace ${input.namespace}`);
        if (!(await ctx.access.canWrite(ns))) {
          throw forbidden('only those who may write the namespace schedule builds in it');
        }
      }
      const fields = inputOf(input);
      if (input.repositoryId != null) {
        const repositoryId = localId(String(input.repositoryId), 'Repository');
        if (!repositoryId) throw new InputError('not a repository id', 'input.repositoryId');
        fields.repositoryId = repositoryId;
      }
      const schedule = orInputError(
        await ctx.services.schedules.create(ctx.em, ctx.auth.viewer!, ns, fields),
      );
      return { schedule };
    },
  }),
  updateSchedule: t.field({
    type: ScheduleRef,
    description: 'Changes a schedule; absent fields stay as they are. enabled: false pauses it.',
    authScopes: { scope: 'cron:write' },
    args: { input: t.arg({ type: UpdateScheduleInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'schedule' } },
    resolve: async (_root, { input }, ctx) => {
      const schedule = await writableSchedule(ctx, String(input.id));
      return orInputError(await ctx.services.schedules.update(ctx.em, schedule, inputOf(input)));
    },
  }),
  deleteSchedule: t.field({
    type: 'ID',
    description: 'Deletes a schedule; the builds it fired stay.',
    authScopes: { scope: 'cron:delete' },
    args: { input: t.arg({ type: DeleteScheduleInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const schedule = await writableSchedule(ctx, String(input.id));
      await ctx.services.schedules.delete(ctx.em, schedule);
      return String(input.id);
    },
  }),
}));

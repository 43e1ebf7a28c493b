import { createContextCache } from '@pothos/core';
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import DataLoader from 'dataloader';
import { createGraphQLError } from 'graphql-yoga';
import type { BuildUpdated } from '../../../runner/contract/messages.ts';
import { BUILD_STATUSES, JOB_STATUSES } from '../../../runner/contract/status.ts';
import type { ManifestProblem } from '../../../runner/manifest/types.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, ErrorInterface, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type DecodedCursor,
  decodeLogCursor,
  encodeLogCursor,
  readCurrentLog,
  type StoredChunk,
} from './build-log.ts';
import { type Build, BuildSchema, type Job, JobSchema, type Stage } from './builds.entity.ts';
import { streamLog } from './log-stream.ts';

export const BuildStatusEnum = builder.enumType('BuildStatus', {
  values: BUILD_STATUSES,
  description: 'Ordered by precedence: a build is the worst of its jobs.',
});
export const JobStatusEnum = builder.enumType('JobStatus', { values: JOB_STATUSES });
export const TriggerKindEnum = builder.enumType('TriggerKind', {
  values: ['MANUAL', 'PUSH', 'PULL', 'SCHEDULE'] as const,
});

/**
 * A subscription keeps one context for its whole life, so loaders must not cache across its events:
 * each event batches its own reads and sees the rows as they are now.
 */
const FRESH = { cache: false };

/** Subscriptions have no result union: a missing build is an error with code NOT_FOUND. */
const notFound = (message: string) => createGraphQLError(message, { extensions: { code: 'NOT_FOUND' } });

/** The cursor `after` names, or a BAD_CURSOR error saying what to pass instead. */
function cursorOrThrow(decoded: DecodedCursor) {
  if (!decoded.ok) throw createGraphQLError(decoded.reason, { extensions: { code: 'BAD_CURSOR' } });
  return decoded.cursor;
}

/** The build with this global id when the viewer may see it; null otherwise (existence not revealed). */
async function readableBuild(ctx: Context, globalId: string): Promise<Build | null> {
  const id = localId(globalId, 'Build');
  if (!id) return null;
  // Plain SQL: every subscription to a build starts here, and the ORM's query building costs more
  // than the query. Always the row as stored now (em.map refreshes what the request had loaded).
  const [row] = await ctx.em.execute<Record<string, unknown>[]>('select * from builds where id = ?', [id]);
  const build = row ? ctx.em.map(BuildSchema, row) : null;
  return build && (await ctx.access.canReadBuild(build)) ? build : null;
}

export const JobRef = builder.loadableNodeRef<Job>('Job', {
  id: { resolve: (job) => job.id },
  sort: (job) => job.id,
  loaderOptions: FRESH,
  load: (ids: string[], ctx) => ctx.em.find(JobSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

JobRef.implement({
  // Visible exactly when its build is (a job can also be fetched alone, through node).
  authScopes: async (job, ctx) => {
    if (!hasScope(ctx.auth.scopes, 'build:read')) return false;
    const build = await ctx.em.findOne(BuildSchema, { id: job.build.id }, { disableIdentityMap: true });
    return build ? ctx.access.canReadBuild(build) : false;
  },
  fields: (t) => ({
    name: t.exposeString('name'),
    stage: t.exposeString('stageName'),
    status: t.field({ type: JobStatusEnum, resolve: (job) => job.status }),
    exitCode: t.exposeInt('exitCode', { nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
  }),
});

/** Job states of a `build.updated` snapshot, laid over the rows when a subscription renders it. */
type JobStates = ReadonlyMap<string, BuildUpdated['jobs'][number]>;
type StageView = Stage & { jobStates?: JobStates };
/** A build as stored, or as it was at one change (buildUpdated) when `jobStates` is set. */
export type BuildView = Build & { jobStates?: JobStates };

/** The build as a `build.updated` snapshot says it was at one change. */
export function viewAt(build: Build, u: BuildUpdated): BuildView {
  const date = (s: string | null) => (s ? new Date(s) : null);
  return {
    ...build,
    status: u.status,
    attempt: u.attempt,
    reason: u.reason,
    startedAt: date(u.startedAt),
    finishedAt: date(u.finishedAt),
    jobStates: new Map(u.jobs.map((j) => [j.jobId, j])),
  };
}

const stagesByBuild = createContextCache(
  (ctx: Context) =>
    new DataLoader<string, Stage[]>(async (ids) => {
      const stages = await ctx.services.builds.stagesOf(ctx.em, ids);
      return ids.map((id) => stages.filter((s) => s.build.id === id));
    }, FRESH),
);
const jobsByStage = createContextCache(
  (ctx: Context) =>
    new DataLoader<string, Job[]>(async (ids) => {
      const jobs = await ctx.services.builds.jobsOfStages(ctx.em, ids);
      return ids.map((id) => jobs.filter((j) => j.stage.id === id));
    }, FRESH),
);

function overlay(job: Job, states: JobStates | undefined): Job {
  const state = states?.get(job.id);
  if (!state) return job;
  const date = (s: string | null) => (s ? new Date(s) : null);
  return {
    ...job,
    status: state.status,
    exitCode: state.exitCode,
    startedAt: date(state.startedAt),
    finishedAt: date(state.finishedAt),
  };
}

const StageRef = builder.objectRef<StageView>('Stage').implement({
  // Reached only through its Build, which is checked.
  authScopes: { public: true },
  fields: (t) => ({
    name: t.exposeString('name'),
    canFail: t.exposeBoolean('canFail', { description: 'Listed in `allow_failures`.' }),
    jobs: t.field({
      type: [JobRef],
      resolve: async (stage, _args, ctx) =>
        (await jobsByStage(ctx).load(stage.id)).map((job) => overlay(job, stage.jobStates)),
    }),
  }),
});

const LogChunkRef = builder.objectRef<StoredChunk>('LogChunk').implement({
  // Reached only through Build.log and buildLog, which check the build.
  authScopes: { public: true },
  fields: (t) => ({
    cursor: t.string({
      description: 'Opaque; pass it as `after` to resume with the next chunk, on any server.',
      resolve: (c) => encodeLogCursor(c),
    }),
    job: t.field({ type: JobRef, nullable: true, resolve: (c) => c.jobId }),
    attempt: t.exposeInt('attempt', { description: 'The run of the build this chunk belongs to, from 1.' }),
    firstLine: t.exposeInt('firstLine', {
      description: "Line number, starting at 1, of lines[0] within its job's log.",
    }),
    lines: t.exposeStringList('lines'),
    restarted: t.boolean({
      description:
        'True on the first chunk of an attempt that replaces lines you had of an earlier one (its runner was lost and the build started over): drop those lines before showing this chunk.',
      resolve: (c) => c.restarted ?? false,
    }),
  }),
});

const LogChunkConnection = builder.connectionObject(
  { type: LogChunkRef, name: 'LogChunkConnection' },
  { name: 'LogChunkEdge' },
);

export const BuildRef = builder.loadableNodeRef<BuildView>('Build', {
  id: { resolve: (build) => build.id },
  sort: (build) => build.id,
  loaderOptions: FRESH,
  load: (ids: string[], ctx) => ctx.em.find(BuildSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

BuildRef.implement({
  // A build, its log and its artifacts are visible exactly to those who may see its namespace.
  authScopes: async (build, ctx) => hasScope(ctx.auth.scopes, 'build:read') && ctx.access.canReadBuild(build),
  fields: (t) => ({
    namespace: t.field({ type: NamespaceRef, nullable: true, resolve: (b) => b.namespace?.id ?? null }),
    owner: t.field({ type: UserRef, description: 'Who submitted it.', resolve: (b) => b.owner.id }),
    number: t.exposeInt('number', {
      description: 'Sequential per namespace (per owner when there is no namespace), starting at 1.',
    }),
    status: t.field({ type: BuildStatusEnum, resolve: (b) => b.status }),
    manifest: t.exposeString('manifest'),
    comment: t.exposeString('comment', { nullable: true }),
    queue: t.exposeString('queue'),
    attempt: t.exposeInt('attempt', { description: 'How many times a runner started it; 0 while queued.' }),
    reason: t.exposeString('reason', {
      nullable: true,
      description: "Why it ended as it did, when that was not a job's exit code.",
    }),
    trigger: t.field({ type: TriggerKindEnum, resolve: (b) => b.triggerKind }),
    pinned: t.exposeBoolean('pinned', {
      description: 'A pinned build keeps its artifacts: the curator never deletes them.',
    }),
    tags: t.loadableList({
      type: 'String',
      loaderOptions: FRESH,
      load: async (ids: string[], ctx) => {
        const byBuild = await ctx.services.builds.tagsOf(ctx.em, ids);
        return ids.map((id) => byBuild.get(id) ?? []);
      },
      resolve: (b) => b.id,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    stages: t.field({
      type: [StageRef],
      resolve: async (b, _args, ctx) =>
        (await stagesByBuild(ctx).load(b.id)).map((stage) => ({ ...stage, jobStates: b.jobStates })),
    }),
    log: t.field({
      type: LogChunkConnection,
      description:
        'Stored log of the current attempt, oldest first. `after` takes a LogChunk cursor; one of an earlier attempt reads the current attempt from its start (its first chunk says `restarted`).',
      args: {
        after: t.arg.string(),
        first: t.arg.int({ description: 'At most 1000; default 100.' }),
      },
      resolve: (b, args, ctx) => {
        const after = cursorOrThrow(decodeLogCursor(args.after));
        return resolveCursorConnection(
          { args, defaultSize: 100, maxSize: 1000, toCursor: encodeLogCursor },
          async ({ limit }: ResolveCursorConnectionArgs) =>
            (await readCurrentLog(ctx.em, b.id, after, limit)).chunks,
        );
      },
    }),
  }),
});

export const BuildConnection = builder.connectionObject(
  { type: BuildRef, name: 'BuildConnection' },
  { name: 'BuildEdge' },
);

export const encodeBuildCursor = (b: Build) =>
  Buffer.from(`build:${b.createdAt.toISOString()}|${b.id}`).toString('base64url');
export function decodeBuildCursor(cursor: string | null | undefined): { createdAt: Date; id: string } | null {
  if (!cursor) return null;
  const m = /^build:([^|]+)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
  const createdAt = m ? new Date(m[1]!) : null;
  return m && createdAt && !Number.isNaN(createdAt.getTime()) ? { createdAt, id: m[2]! } : null;
}

builder.queryFields((t) => ({
  build: t.field({
    type: BuildRef,
    nullable: true,
    description: 'Null when it does not exist or you may not see it.',
    authScopes: { scope: 'build:read' },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => readableBuild(ctx, args.id),
  }),
  builds: t.field({
    type: BuildConnection,
    description: 'The builds you may see, newest first.',
    authScopes: { scope: 'build:read' },
    args: {
      first: t.arg.int({ description: 'At most 100; default 20.' }),
      after: t.arg.string(),
      status: t.arg({ type: BuildStatusEnum }),
      tag: t.arg.string(),
      namespace: t.arg.string({
        description: 'Only builds of this namespace path (`team/app` or `owner@team/app`).',
      }),
    },
    resolve: async (_root, args, ctx) => {
      let namespaceId: string | null = null;
      if (args.namespace) {
        const ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, args.namespace);
        // An unknown namespace is an empty list, like one you may not see.
        namespaceId = ns?.id ?? '00000000-0000-0000-0000-000000000000';
      }
      return resolveCursorConnection(
        { args, defaultSize: 20, maxSize: 100, toCursor: encodeBuildCursor },
        ({ after, limit }: ResolveCursorConnectionArgs) =>
          ctx.services.builds.list(ctx.em, ctx.access, {
            limit,
            after: decodeBuildCursor(after),
            status: args.status,
            tag: args.tag,
            namespaceId,
          }),
      );
    },
  }),
}));

const ManifestProblemRef = builder.objectRef<ManifestProblem>('ManifestProblem').implement({
  fields: (t) => ({
    path: t.exposeString('path', { description: 'Where in the manifest, e.g. jobs[2].commands' }),
    line: t.exposeInt('line', { nullable: true }),
    column: t.exposeInt('column', { nullable: true }),
    message: t.exposeString('message'),
  }),
});

export class ManifestError extends Error {
  override name = 'ManifestError';
  constructor(readonly problems: ManifestProblem[]) {
    super(
      problems.length === 1
        ? `the manifest has a problem: ${problems[0]!.message}`
        : `the manifest has ${problems.length} problems`,
    );
  }
}

builder.objectType(ManifestError, {
  name: 'ManifestError',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ManifestError,
  fields: (t) => ({ problems: t.field({ type: [ManifestProblemRef], resolve: (e) => e.problems }) }),
});

builder.queryField('validateManifest', (t) =>
  t.field({
    type: [ManifestProblemRef],
    description:
      "The problems submitBuild would answer for this manifest (with line and column), none when it would take it: an editor's check as you type. It submits nothing.",
    args: { manifest: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => {
      const validated = ctx.services.builds.validate({ manifest: args.manifest, comment: null, tags: [] });
      return validated.ok ? [] : validated.problems;
    },
  }),
);

builder.objectField(NamespaceRef, 'build', (t) =>
  t.field({
    type: BuildRef,
    nullable: true,
    description:
      "The namespace's build of this number (numbers count per namespace), for addresses such as /<owner>/<namespace path>/builds/<number>; null when there is none or you may not see it.",
    args: { number: t.arg.int({ required: true }) },
    resolve: async (ns, args, ctx) => {
      if (!hasScope(ctx.auth.scopes, 'build:read')) return null;
      const build = await ctx.em.findOne(BuildSchema, {
        numberScope: `namespace:${ns.id}`,
        number: args.number,
      });
      return build && (await ctx.access.canReadBuild(build)) ? (build as BuildView) : null;
    },
  }),
);

const SubmitBuildInput = builder.inputType('SubmitBuildInput', {
  fields: (t) => ({
    manifest: t.string({ required: true }),
    namespace: t.string({ description: "Namespace path; overrides the manifest's `namespace:`." }),
    comment: t.string(),
    tags: t.stringList(),
  }),
});

const KillBuildInput = builder.inputType('KillBuildInput', {
  fields: (t) => ({ buildId: t.id({ required: true }) }),
});

const PinBuildInput = builder.inputType('PinBuildInput', {
  fields: (t) => ({ buildId: t.id({ required: true }) }),
});

/** The build with this global id when the viewer may change it (kill, pin); NotFoundError otherwise. */
async function writableBuild(ctx: Context, globalId: string, what: string): Promise<Build> {
  const found = await readableBuild(ctx, globalId);
  if (!found || !(await ctx.access.canWriteBuild(found))) {
    throw new NotFoundError(`no build ${globalId} that you may ${what}`);
  }
  return found;
}

builder.mutationFields((t) => ({
  submitBuild: t.field({
    type: BuildRef,
    authScopes: { $all: { signedIn: true, scope: 'build:write' } },
    args: { input: t.arg({ type: SubmitBuildInput, required: true }) },
    errors: { types: [ManifestError], dataField: { name: 'build' } },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.builds.submitAs(ctx.em, ctx.access, input);
      if (!result.ok) throw new ManifestError(result.problems);
      return result.build;
    },
  }),
  killBuild: t.field({
    type: BuildRef,
    description: 'Kills a queued or running build; a finished one is returned unchanged.',
    authScopes: { $all: { signedIn: true, scope: 'build:write' } },
    args: { input: t.arg({ type: KillBuildInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'build' } },
    resolve: async (_root, { input }, ctx) => {
      const found = await writableBuild(ctx, input.buildId, 'kill');
      return (await ctx.services.builds.kill(ctx.em, found.id, ctx.auth.viewer?.username ?? null))!;
    },
  }),
  pinBuild: t.field({
    type: BuildRef,
    description: 'Pins a build: the curator never deletes its artifacts.',
    authScopes: { $all: { signedIn: true, scope: 'build:write' } },
    args: { input: t.arg({ type: PinBuildInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'build' } },
    resolve: async (_root, { input }, ctx) => {
      const found = await writableBuild(ctx, input.buildId, 'pin');
      return (await ctx.services.builds.pin(ctx.em, found.id, true))!;
    },
  }),
  unpinBuild: t.field({
    type: BuildRef,
    description:
      "Unpins a build: the curator may delete its artifacts again when they pass the owner's limit.",
    authScopes: { $all: { signedIn: true, scope: 'build:write' } },
    args: { input: t.arg({ type: PinBuildInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'build' } },
    resolve: async (_root, { input }, ctx) => {
      const found = await writableBuild(ctx, input.buildId, 'unpin');
      return (await ctx.services.builds.pin(ctx.em, found.id, false))!;
    },
  }),
}));

builder.subscriptionFields((t) => ({
  buildLog: t.field({
    type: LogChunkRef,
    description:
      'Replays the stored chunks of the current attempt after `after` (all of them when null), then streams live ones; never skips or repeats a line. When a new attempt replaces the one whose lines you have (its runner was lost), its first chunk says `restarted`. Completes when the build is finished and its log is fully delivered.',
    authScopes: { scope: 'build:read' },
    args: { buildId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: async function* (_root, args, ctx) {
      const after = cursorOrThrow(decodeLogCursor(args.after));
      const build = await readableBuild(ctx, args.buildId);
      if (!build) throw notFound(`no build with id ${args.buildId}`);
      yield* streamLog({ orm: ctx.orm, pubsub: ctx.pubsub, buildId: build.id, after });
    },
    resolve: (chunk: StoredChunk) => chunk,
  }),
  buildUpdated: t.field({
    type: BuildRef,
    description:
      "The build as it is when the subscription starts, then on every change of its status or of one of its jobs' status.",
    authScopes: { scope: 'build:read' },
    args: { buildId: t.arg.id({ required: true }) },
    subscribe: async function* (_root, args, ctx) {
      const build = await readableBuild(ctx, args.buildId);
      if (!build) throw notFound(`no build with id ${args.buildId}`);
      const changes = ctx.pubsub.subscribe([`build:${build.id}`]);
      // A change between the client's own read and this subscription would be lost for good (a
      // build page stuck at RUNNING): the build as it is once the subscription listens comes first.
      const now = await ctx.orm.em
        .fork()
        .findOne(BuildSchema, { id: build.id }, { disableIdentityMap: true });
      if (now) yield now as BuildView;
      for await (const event of changes) {
        if (event.topic !== 'build') continue;
        yield viewAt(build, event.update);
      }
    },
    resolve: (build: BuildView) => build,
  }),
}));

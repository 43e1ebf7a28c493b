/**
 * Repositories, forge events and build causes in the schema. A repository is seen by those who may
 * read its namespace (with `repository:read`), and managed only by those who may write it; its
 * events (what forges posted, bodies included) are for those who may write it.
 */
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { type Build, BuildSchema } from '../builds/builds.entity.ts';
import {
  BuildConnection,
  BuildRef,
  type BuildView,
  decodeBuildCursor,
  encodeBuildCursor,
  TriggerKindEnum,
} from '../builds/builds.schema.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type ForgeEvent,
  ForgeEventSchema,
  type Repository,
  RepositorySchema,
} from './repositories.entity.ts';
import type { Outcome, RepositoryInput } from './repositories.service.ts';

const ForgeEnum = builder.enumType('Forge', {
  values: {
    GITHUB: {},
    GITLAB: {},
    GITEA: {},
    FORGEJO: {},
    GENERIC: {
      description: 'Any git server: polled, no commit statuses; it may post GitHub-style push events.',
    },
  },
});

const namespaceOf = (ctx: Context, repo: Repository) =>
  ctx.em.findOne(NamespaceSchema, { id: repo.namespace.id }) as Promise<Namespace | null>;

async function mayRead(ctx: Context, repo: Repository): Promise<boolean> {
  const ns = await namespaceOf(ctx, repo);
  return ns !== null && (await ctx.access.canRead(ns));
}

async function mayWrite(ctx: Context, repo: Repository): Promise<boolean> {
  const ns = await namespaceOf(ctx, repo);
  return ns !== null && (await ctx.access.canWrite(ns));
}

export const RepositoryRef = builder.loadableNodeRef<Repository>('Repository', {
  id: { resolve: (r) => r.id },
  sort: (r) => r.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(RepositorySchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

export const ForgeEventRef = builder.loadableNodeRef<ForgeEvent>('ForgeEvent', {
  id: { resolve: (e) => e.id },
  sort: (e) => e.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(ForgeEventSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

const ForgeEventConnection = builder.connectionObject(
  { type: ForgeEventRef, name: 'ForgeEventConnection' },
  { name: 'ForgeEventEdge' },
);

const encodeEventCursor = (e: ForgeEvent) =>
  Buffer.from(`event:${e.receivedAt.toISOString()}|${e.id}`).toString('base64url');
function decodeEventCursor(cursor: string | null | undefined): { receivedAt: Date; id: string } | null {
  if (!cursor) return null;
  const m = /^event:([^|]+)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
  const at = m ? new Date(m[1]!) : null;
  if (!m || !at || Number.isNaN(at.getTime())) throw new InputError('not a cursor of this list', 'after');
  return { receivedAt: at, id: m[2]! };
}

RepositoryRef.implement({
  description: "A namespace's git repository: forge events and polls build its commits.",
  authScopes: async (repo, ctx) => hasScope(ctx.auth.scopes, 'repository:read') && (await mayRead(ctx, repo)),
  fields: (t) => ({
    namespace: t.field({ type: NamespaceRef, resolve: (r) => r.namespace.id }),
    name: t.exposeString('name'),
    cloneUrl: t.exposeString('cloneUrl', {
      description:
        'https://, ssh:// (or scp-like user@host:path, with an SSH key of the namespace), or file://',
    }),
    forge: t.field({ type: ForgeEnum, resolve: (r) => r.forge }),
    defaultBranch: t.exposeString('defaultBranch'),
    manifestPaths: t.exposeStringList('manifestPaths', {
      description:
        'Manifest paths read at each commit; [.kiln.yml, .kiln/*.yml] by default. One build per manifest found.',
    }),
    webhookUrl: t.string({
      description:
        'The URL the forge must post its webhooks to. The secret was shown once, by createRepository.',
      resolve: (r, _args, ctx) => ctx.services.repositories.webhookUrl(r),
    }),
    pollInterval: t.exposeInt('pollInterval', {
      nullable: true,
      description: 'Seconds between two polls of the remote; null: webhooks only.',
    }),
    forgeApiUrl: t.exposeString('forgeApiUrl', { nullable: true }),
    forgeRepository: t.exposeString('forgeRepository', {
      nullable: true,
      description: 'owner/repo or the GitLab project, as commit statuses address it.',
    }),
    hasForgeToken: t.boolean({
      description: 'A token for the forge API is set (it is never returned).',
      resolve: (r) => r.encryptedForgeToken !== null,
    }),
    lastCheckedAt: t.expose('lastCheckedAt', { type: 'DateTime', nullable: true }),
    problem: t.exposeString('problem', {
      nullable: true,
      description: 'Why the last check failed or hung; null when it went well.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    events: t.field({
      type: ForgeEventConnection,
      description:
        'Forge events received for this repository, newest first (those who may write its namespace).',
      args: { first: t.arg.int({ description: 'At most 100; default 20.' }), after: t.arg.string() },
      resolve: async (repo, args, ctx) => {
        if (!(await mayWrite(ctx, repo)))
          throw forbidden('only those who may write the namespace see its forge events');
        const after = decodeEventCursor(args.after);
        return resolveCursorConnection(
          { args, defaultSize: 20, maxSize: 100, toCursor: encodeEventCursor },
          async ({ limit }: ResolveCursorConnectionArgs) => {
            const where: Record<string, unknown> = { repository: repo.id };
            if (after) {
              where.$or = [
                { receivedAt: { $lt: after.receivedAt } },
                { receivedAt: after.receivedAt, id: { $lt: after.id } },
              ];
            }
            return ctx.em.find(ForgeEventSchema, where, {
              orderBy: { receivedAt: 'desc', id: 'desc' },
              limit,
              disableIdentityMap: true,
            });
          },
        );
      },
    }),
    builds: t.field({
      type: BuildConnection,
      description: 'Builds of this repository, newest first.',
      args: { first: t.arg.int({ description: 'At most 100; default 20.' }), after: t.arg.string() },
      resolve: (repo, args, ctx) =>
        resolveCursorConnection(
          { args, defaultSize: 20, maxSize: 100, toCursor: encodeBuildCursor },
          ({ after, limit }: ResolveCursorConnectionArgs) =>
            ctx.services.builds.list(ctx.em, ctx.access, {
              limit,
              after: decodeBuildCursor(after),
              repositoryId: repo.id,
            }),
        ),
    }),
  }),
});

ForgeEventRef.implement({
  description: 'One webhook delivery from a forge, stored whatever became of it.',
  authScopes: async (event, ctx) => {
    if (!hasScope(ctx.auth.scopes, 'repository:read')) return false;
    const repo = await ctx.em.findOne(RepositorySchema, { id: event.repository.id });
    return repo !== null && (await mayWrite(ctx, repo));
  },
  fields: (t) => ({
    repository: t.field({ type: RepositoryRef, resolve: (e) => e.repository.id }),
    deliveryId: t.exposeString('deliveryId', {
      nullable: true,
      description:
        "The forge's delivery id (X-GitHub-Delivery, X-Gitea-Delivery, X-Forgejo-Delivery, X-Gitlab-Event-UUID).",
    }),
    event: t.exposeString('event', {
      description: 'As the forge names it: push, pull_request, ping, Push Hook, Merge Request Hook, ...',
    }),
    receivedAt: t.expose('receivedAt', { type: 'DateTime' }),
    verified: t.exposeBoolean('verified', {
      description: "The signature (or GitLab's token) matched the repository's secret.",
    }),
    outcome: t.exposeString('outcome', {
      description:
        'What Kiln did with it, in words: started 2 builds, ignored: branch deleted, refused: bad signature, duplicate delivery.',
    }),
    replayOf: t.field({
      type: ForgeEventRef,
      nullable: true,
      description: 'The event this one replays.',
      resolve: (e) => e.replayOf,
    }),
    headers: t.string({
      description: 'The headers it came with, as JSON, less those that carry a secret.',
      resolve: (e) => JSON.stringify(e.headers),
    }),
    body: t.exposeString('body', {
      description: 'The body it came with (of a refused one, its first 64 KiB).',
    }),
    builds: t.field({
      type: [BuildRef],
      resolve: async (e, _args, ctx) => {
        if (e.buildIds.length === 0) return [];
        const builds = await ctx.em.find(
          BuildSchema,
          { id: { $in: e.buildIds } },
          { disableIdentityMap: true },
        );
        const readable = await Promise.all(builds.map((b) => ctx.access.canReadBuild(b)));
        return builds.filter((_, i) => readable[i]) as BuildView[];
      },
    }),
  }),
});

/** Why a build exists, read from its trigger kind and data. */
interface CauseView {
  build: Build;
  data: Record<string, string>;
}

const BuildCauseRef = builder.objectRef<CauseView>('BuildCause').implement({
  description: "Why a build exists (GoCD's build cause): who or what asked, and for which commit.",
  fields: (t) => ({
    kind: t.field({ type: TriggerKindEnum, resolve: (c) => c.build.triggerKind }),
    user: t.field({
      type: UserRef,
      nullable: true,
      description: 'The person who submitted, reran or triggered it; null for forge events and schedules.',
      resolve: (c) => c.data.userId ?? (c.build.triggerKind === 'MANUAL' ? c.build.owner.id : null),
    }),
    repository: t.field({
      type: RepositoryRef,
      nullable: true,
      description: 'Null when the build has none, or the repository is gone.',
      resolve: async (c, _args, ctx) => {
        const id = c.data.repositoryId;
        const repo = id ? await ctx.em.findOne(RepositorySchema, { id }) : null;
        return repo && hasScope(ctx.auth.scopes, 'repository:read') && (await mayRead(ctx, repo))
          ? repo
          : null;
      },
    }),
    manifestPath: t.string({
      nullable: true,
      description: 'The file of the repository the manifest was read from.',
      resolve: (c) => c.data.manifestPath ?? null,
    }),
    ref: t.string({
      nullable: true,
      description: 'The full ref built: refs/heads/main, refs/tags/v1.2, refs/pull/7/head.',
      resolve: (c) => c.data.ref ?? null,
    }),
    sha: t.string({
      nullable: true,
      description: 'The commit built (40 hex digits).',
      resolve: (c) => c.data.sha ?? null,
    }),
    author: t.string({
      nullable: true,
      description: "The commit's author as git names them: `Name <email>`.",
      resolve: (c) => c.data.author ?? null,
    }),
    message: t.string({
      nullable: true,
      description: "The commit's whole message.",
      resolve: (c) => c.data.message ?? null,
    }),
    url: t.string({
      nullable: true,
      description: 'The commit, tag or pull request on the forge.',
      resolve: (c) => c.data.url ?? null,
    }),
    pullRequest: t.int({
      nullable: true,
      resolve: (c) => (c.data.pullRequest ? Number(c.data.pullRequest) : null),
    }),
    event: t.field({
      type: ForgeEventRef,
      nullable: true,
      description: 'The forge event that started it.',
      resolve: async (c, _args, ctx) => {
        const id = c.data.eventId;
        if (!id) return null;
        const event = await ctx.em.findOne(ForgeEventSchema, { id });
        const repo = event ? await ctx.em.findOne(RepositorySchema, { id: event.repository.id }) : null;
        return event && repo && hasScope(ctx.auth.scopes, 'repository:read') && (await mayWrite(ctx, repo))
          ? event
          : null;
      },
    }),
  }),
});

builder.objectField(BuildRef, 'cause', (t) =>
  t.field({
    type: BuildCauseRef,
    resolve: (build) => ({ build, data: (build.triggerData ?? {}) as Record<string, string> }),
  }),
);

builder.objectField(NamespaceRef, 'repositories', (t) =>
  t.field({
    type: [RepositoryRef],
    description: "The namespace's repositories, by name.",
    authScopes: { scope: 'repository:read' },
    resolve: (ns, _args, ctx) => ctx.services.repositories.list(ctx.em, ns.id),
  }),
);

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/** The fields create and update share. */
const repositoryInputFields = (t: PothosSchemaTypes.InputFieldBuilder<Types, 'InputObject'>) => ({
  forge: t.field({ type: ForgeEnum, description: 'GENERIC when null.' }),
  name: t.string({ description: 'The last path segment of cloneUrl, without .git, when null.' }),
  defaultBranch: t.string({ description: 'Asked of the remote when null.' }),
  manifestPaths: t.stringList(),
  pollInterval: t.int({ description: 'Seconds; null: webhooks only. At least KILN_POLL_MIN_SECONDS.' }),
  forgeApiUrl: t.string({
    description:
      "The forge's API root, e.g. https://api.github.com or https://gitlab.example.com/api/v4; commit statuses go there.",
  }),
  forgeRepository: t.string({
    description:
      "The repository as the forge's API names it: owner/repo (GitHub, Gitea, Forgejo), the project's path or id (GitLab). Taken from cloneUrl when null.",
  }),
  forgeToken: t.string({
    description: "A token for the forge's API, to report commit statuses. Stored encrypted, never returned.",
  }),
});

const CreateRepositoryInput = builder.inputType('CreateRepositoryInput', {
  fields: (t) => ({
    namespace: t.string({ required: true }),
    cloneUrl: t.string({ required: true }),
    ...repositoryInputFields(t),
  }),
});

const UpdateRepositoryInput = builder.inputType('UpdateRepositoryInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    cloneUrl: t.string(),
    ...repositoryInputFields(t),
  }),
});

const TriggerRepositoryInput = builder.inputType('TriggerRepositoryInput', {
  fields: (t) => ({
    repositoryId: t.id({ required: true }),
    ref: t.string({ description: 'A branch, a tag or a full ref; the default branch when null.' }),
    sha: t.string({ description: "A commit; the ref's head when null." }),
  }),
});

const ReplayForgeEventInput = builder.inputType('ReplayForgeEventInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

const DeleteRepositoryInput = builder.inputType('DeleteRepositoryInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

interface Created {
  repository: Repository;
  webhookSecret: string;
}

const CreateRepositorySuccess = builder.objectRef<Created>('CreateRepositorySuccess').implement({
  fields: (t) => ({
    repository: t.field({ type: RepositoryRef, resolve: (c) => c.repository }),
    webhookSecret: t.exposeString('webhookSecret', { description: 'The webhook secret, shown this once.' }),
  }),
});

const TriggerRepositorySuccess = builder
  .objectRef<{ builds: Build[]; outcome: string }>('TriggerRepositorySuccess')
  .implement({
    fields: (t) => ({
      builds: t.field({
        type: [BuildRef],
        description: 'One build per manifest found at that commit.',
        resolve: (r) => r.builds as BuildView[],
      }),
      outcome: t.exposeString('outcome', {
        description: 'What was built, and which manifests were refused and why.',
      }),
    }),
  });

const ReplayForgeEventSuccess = builder
  .objectRef<{ event: ForgeEvent }>('ReplayForgeEventSuccess')
  .implement({
    fields: (t) => ({
      event: t.field({
        type: ForgeEventRef,
        description: 'The new event record that the replay made.',
        resolve: (r) => r.event,
      }),
    }),
  });

/** The value of an outcome, or an InputError naming the field. */
function orInputError<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  throw new InputError(outcome.reason, outcome.path);
}

/** The repository `globalId` names, once the viewer may write its namespace; not found otherwise. */
function writableRepository(ctx: Context, globalId: string): Promise<Repository> {
  return writable(ctx, localId(globalId, 'Repository'), globalId);
}

async function writable(ctx: Context, id: string | null, shownId: string): Promise<Repository> {
  const repo = id ? await ctx.services.repositories.find(ctx.em, id) : null;
  if (!repo || !(await mayRead(ctx, repo))) throw new NotFoundError(`no repository with id ${shownId}`);
  if (!(await mayWrite(ctx, repo)))
    throw forbidden('only those who may write the namespace manage its repositories');
  return repo;
}

const inputOf = (input: Record<string, unknown>): RepositoryInput => {
  const out: Record<string, unknown> = {};
  for (const key of [
    'cloneUrl',
    'forge',
    'name',
    'defaultBranch',
    'manifestPaths',
    'pollInterval',
    'forgeApiUrl',
    'forgeRepository',
    'forgeToken',
  ]) {
    // Absent: unchanged (update) or the default (create); null on an update clears where it can.
    if (key in input && input[key] !== undefined) out[key] = input[key];
  }
  return out as RepositoryInput;
};

builder.mutationFields((t) => ({
  createRepository: t.field({
    type: CreateRepositorySuccess,
    description:
      'Connects a git repository to a namespace you may write. The webhook secret comes back this once.',
    authScopes: { scope: 'repository:write' },
    args: { input: t.arg({ type: CreateRepositoryInput, required: true }) },
    errors: { types: [InputError, NotFoundError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, input.namespace);
      if (!ns || !(await ctx.access.canRead(ns))) throw new NotFoundError(`no namespace ${input.namespace}`);
      if (!(await ctx.access.canWrite(ns))) {
        throw forbidden('only those who may write the namespace connect repositories to it');
      }
      return orInputError(await ctx.services.repositories.create(ctx.em, ns, inputOf(input)));
    },
  }),
  updateRepository: t.field({
    type: RepositoryRef,
    description: 'Changes a repository; absent fields stay as they are.',
    authScopes: { scope: 'repository:write' },
    args: { input: t.arg({ type: UpdateRepositoryInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'repository' } },
    resolve: async (_root, { input }, ctx) => {
      const repo = await writableRepository(ctx, String(input.id));
      return orInputError(await ctx.services.repositories.update(ctx.em, repo, inputOf(input)));
    },
  }),
  deleteRepository: t.field({
    type: 'ID',
    description: 'Disconnects a repository; its builds stay.',
    authScopes: { scope: 'repository:delete' },
    args: { input: t.arg({ type: DeleteRepositoryInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const repo = await writableRepository(ctx, String(input.id));
      await ctx.services.repositories.delete(ctx.em, repo);
      return String(input.id);
    },
  }),
  triggerRepository: t.field({
    type: TriggerRepositorySuccess,
    description: 'Builds a branch, tag or commit of a repository now: one build per manifest found there.',
    authScopes: { scope: 'repository:write' },
    args: { input: t.arg({ type: TriggerRepositoryInput, required: true }) },
    errors: { types: [InputError, NotFoundError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const repo = await writableRepository(ctx, String(input.repositoryId));
      if (!hasScope(ctx.auth.scopes, 'build:write')) throw forbidden('building needs the build:write scope');
      const result = orInputError(
        await ctx.services.repositories.trigger(
          ctx.em,
          repo,
          ctx.auth.viewer!.id,
          input.ref ?? null,
          input.sha ?? null,
        ),
      );
      return { builds: result.builds, outcome: result.outcome };
    },
  }),
  replayForgeEvent: t.field({
    type: ReplayForgeEventSuccess,
    description:
      'Works on a stored, verified forge event again, as a new event record: it starts its builds again.',
    authScopes: { scope: 'repository:write' },
    args: { input: t.arg({ type: ReplayForgeEventInput, required: true }) },
    errors: { types: [InputError, NotFoundError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(String(input.id), 'ForgeEvent');
      const event = id ? await ctx.em.findOne(ForgeEventSchema, { id }) : null;
      if (!event) throw new NotFoundError(`no forge event with id ${input.id}`);
      await writable(ctx, event.repository.id, String(input.id));
      const replayed = orInputError(await ctx.services.repositories.replay(ctx.em, event));
      return {
        event: await ctx.em.findOneOrFail(ForgeEventSchema, { id: replayed }, { disableIdentityMap: true }),
      };
    },
  }),
}));

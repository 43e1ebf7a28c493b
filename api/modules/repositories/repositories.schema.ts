/**
 * Repositories in the schema: seen by those who may read their namespace (with `repository:read`),
 * managed only by those who may write it. Forge events and build causes: forge-events.schema.ts.
 */
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import type { Build } from '../builds/builds.entity.ts';
import {
  BuildConnection,
  BuildRef,
  type BuildView,
  decodeBuildCursor,
  encodeBuildCursor,
} from '../builds/builds.schema.ts';
import { SshKeySchema } from '../keys/keys.entity.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import { type Repository, RepositorySchema } from './repositories.entity.ts';
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

export async function mayRead(ctx: Context, repo: Repository): Promise<boolean> {
  const ns = await namespaceOf(ctx, repo);
  return ns !== null && (await ctx.access.canRead(ns));
}

export async function mayWrite(ctx: Context, repo: Repository): Promise<boolean> {
  const ns = await namespaceOf(ctx, repo);
  return ns !== null && (await ctx.access.canWrite(ns));
}

export const RepositoryRef = builder.loadableNodeRef<Repository>('Repository', {
  id: { resolve: (r) => r.id },
  sort: (r) => r.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(RepositorySchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

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
    includeBranches: t.exposeStringList('includeBranches', {
      description:
        'Globs of the branches pushes and polls build (`*` stops at `/`, `**` does not); empty: every branch.',
    }),
    excludeBranches: t.exposeStringList('excludeBranches', {
      description: 'Globs of branches pushes and polls never build. Tags and pull requests are not filtered.',
    }),
    allowForkSecrets: t.exposeBoolean('allowForkSecrets', {
      description:
        "Builds of pull requests from forks get the namespace's masked variables, SSH keys and objects (false: they never do).",
    }),
    buildEveryCommit: t.exposeBoolean('buildEveryCommit', {
      description:
        'Each commit a push adds gets its builds, oldest first (at most 50); false: only the pushed head builds.',
    }),
    sshKey: t.string({
      nullable: true,
      description: "The name of the namespace's SSH key an ssh clone URL is fetched with; null: none.",
      resolve: async (r, _args, ctx) => {
        if (!r.sshKey) return null;
        const key = await ctx.em.findOne(SshKeySchema, { id: r.sshKey.id });
        return key?.name ?? null;
      },
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
    webhookInstalled: t.boolean({
      description:
        'Kiln installed the webhook on the forge (createRepository with a forge token) and removes it with the repository.',
      resolve: (r) => r.forgeHookId !== null,
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
  includeBranches: t.stringList({ description: 'Globs of the branches to build; empty: every branch.' }),
  excludeBranches: t.stringList({ description: 'Globs of branches never to build.' }),
  allowForkSecrets: t.boolean({
    description:
      "Let builds of forks' pull requests have the namespace's secrets; false when null (on create).",
  }),
  pollInterval: t.int({ description: 'Seconds; null: webhooks only. At least KILN_POLL_MIN_SECONDS.' }),
  buildEveryCommit: t.boolean({
    description: 'Build each commit of a push, not only its head; false when null (on create).',
  }),
  sshKey: t.string({
    description:
      "The name of one of the namespace's SSH keys, to fetch an ssh clone URL with (needed for one); null on an update clears it.",
  }),
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

/** The value of an outcome, or an InputError naming the field. */
export function orInputError<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  throw new InputError(outcome.reason, outcome.path);
}

/** The repository `globalId` names, once the viewer may write its namespace; not found otherwise. */
function writableRepository(ctx: Context, globalId: string): Promise<Repository> {
  return writable(ctx, localId(globalId, 'Repository'), globalId);
}

export async function writable(ctx: Context, id: string | null, shownId: string): Promise<Repository> {
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
    'includeBranches',
    'excludeBranches',
    'allowForkSecrets',
    'pollInterval',
    'buildEveryCommit',
    'sshKey',
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
}));

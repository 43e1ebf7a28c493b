/**
 * Forge events and build causes in the schema. A repository's events (what forges posted, bodies
 * included) are for those who may write its namespace; a build's cause is seen with the build, its
 * repository and event only by those who may see them.
 */
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import { localId } from '../../global-id.ts';
import { type Build, BuildSchema } from '../builds/builds.entity.ts';
import { BuildRef, type BuildView, TriggerKindEnum } from '../builds/builds.schema.ts';
import { UserRef } from '../users/users.schema.ts';
import { type ForgeEvent, ForgeEventSchema, RepositorySchema } from './repositories.entity.ts';
import { mayRead, mayWrite, orInputError, RepositoryRef, writable } from './repositories.schema.ts';

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

export const BuildCauseRef = builder.objectRef<CauseView>('BuildCause').implement({
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

builder.objectField(BuildRef, 'forgeStatus', (t) =>
  t.string({
    nullable: true,
    description:
      "What reporting the build's status on its commit to the forge came to, in words (reported success to github as kiln/app, or why it failed and when it is tried again); null when nothing was reported.",
    resolve: (build) => build.forgeReport ?? null,
  }),
);

builder.objectField(BuildRef, 'cause', (t) =>
  t.field({
    type: BuildCauseRef,
    resolve: (build) => ({ build, data: (build.triggerData ?? {}) as Record<string, string> }),
  }),
);

builder.objectField(RepositoryRef, 'events', (t) =>
  t.field({
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
);

const ReplayForgeEventInput = builder.inputType('ReplayForgeEventInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
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

builder.mutationFields((t) => ({
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
      const replayed = orInputError(await ctx.services.forgeEvents.replay(ctx.em, event));
      return {
        event: await ctx.em.findOneOrFail(ForgeEventSchema, { id: replayed }, { disableIdentityMap: true }),
      };
    },
  }),
}));

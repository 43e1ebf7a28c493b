import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { type User, UserSchema } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type Invite,
  InviteSchema,
  type Namespace,
  NamespaceSchema,
  VISIBILITIES,
} from './namespaces.entity.ts';

export const VisibilityEnum = builder.enumType('Visibility', { values: VISIBILITIES });

export const NamespaceRef = builder.loadableNodeRef<Namespace>('Namespace', {
  id: { resolve: (ns) => ns.id },
  sort: (ns) => ns.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(NamespaceSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

const isOwner = (ctx: Context, ns: Namespace) =>
  ctx.auth.viewer !== null && (ctx.auth.viewer.isAdmin || ns.owner.id === ctx.auth.viewer.id);

NamespaceRef.implement({
  // Those who may read it, and someone invited to a root (to decide whether to accept).
  authScopes: async (ns, ctx) =>
    hasScope(ctx.auth.scopes, 'namespace:read') &&
    ((await ctx.access.canRead(ns)) || (ns.id === ns.rootId && (await ctx.access.invitedTo(ns.id)))),
  fields: (t) => ({
    path: t.exposeString('path', { description: 'Slash-separated, e.g. team/app' }),
    name: t.exposeString('name'),
    level: t.exposeInt('level', { description: '1 for a root, at most 20.' }),
    visibility: t.field({ type: VisibilityEnum, resolve: (ns) => ns.visibility }),
    owner: t.field({ type: UserRef, resolve: (ns) => ns.owner.id }),
    parent: t.field({ type: NamespaceRef, nullable: true, resolve: (ns) => ns.parent?.id ?? null }),
    children: t.field({
      type: [NamespaceRef],
      resolve: (ns, _args, ctx) =>
        ctx.em.find(
          NamespaceSchema,
          { parent: ns.id },
          { orderBy: { name: 'asc' }, disableIdentityMap: true },
        ),
    }),
    collaborators: t.field({
      type: [UserRef],
      description:
        "The root's collaborators: they may submit builds and manage resources in every namespace of the tree.",
      resolve: async (ns, _args, ctx) => {
        const rows = await ctx.em.execute<{ user_id: string }[]>(
          'select user_id from namespace_collaborators where namespace_id = ? order by created_at',
          [ns.rootId],
        );
        return rows.length ? ctx.em.find(UserSchema, { id: { $in: rows.map((r) => r.user_id) } }) : [];
      },
    }),
    invites: t.field({
      type: [InviteRef],
      description: 'Invites not answered yet (the owner only).',
      authScopes: (ns, _args, ctx) => isOwner(ctx, ns),
      resolve: (ns, _args, ctx) =>
        ctx.em.find(
          InviteSchema,
          { namespace: ns.rootId },
          { orderBy: { createdAt: 'asc' }, disableIdentityMap: true },
        ),
    }),
    canWrite: t.boolean({
      description: 'Whether the viewer may submit builds and manage resources here.',
      resolve: (ns, _args, ctx) => ctx.access.canWrite(ns),
    }),
  }),
});

export const InviteRef = builder.objectRef<Invite>('Invite').implement({
  authScopes: (invite, ctx) =>
    ctx.auth.viewer !== null &&
    (ctx.auth.viewer.isAdmin ||
      invite.invitee.id === ctx.auth.viewer.id ||
      invite.inviter.id === ctx.auth.viewer.id),
  fields: (t) => ({
    id: t.exposeID('id'),
    namespace: t.field({ type: NamespaceRef, resolve: (i) => i.namespace.id }),
    inviter: t.field({ type: UserRef, resolve: (i) => i.inviter.id }),
    invitee: t.field({ type: UserRef, resolve: (i) => i.invitee.id }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(UserRef, 'invites', (t) =>
  t.field({
    type: [InviteRef],
    description: 'Invites to collaborate waiting for this user (its own user only).',
    authScopes: (user: User, _args, ctx) => ctx.auth.viewer?.id === user.id,
    resolve: (user, _args, ctx) =>
      ctx.em.find(
        InviteSchema,
        { invitee: user.id },
        { orderBy: { createdAt: 'asc' }, disableIdentityMap: true },
      ),
  }),
);

builder.queryFields((t) => ({
  namespace: t.field({
    type: NamespaceRef,
    nullable: true,
    description:
      'A namespace by path: `team/app` (your own) or `owner@team/app`. Null when it does not exist or you may not see it.',
    authScopes: { scope: 'namespace:read' },
    args: { path: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, args.path);
      return ns && (await ctx.access.canRead(ns)) ? ns : null;
    },
  }),
  namespaces: t.field({
    type: [NamespaceRef],
    description: 'The root namespaces you own or collaborate on.',
    authScopes: { $all: { signedIn: true, scope: 'namespace:read' } },
    resolve: async (_root, _args, ctx) => {
      const viewer = ctx.auth.viewer!;
      const rows = await ctx.em.execute<{ id: string }[]>(
        `select id from namespaces where level = 1 and (owner_id = ?
           or id in (select namespace_id from namespace_collaborators where user_id = ?)) order by path`,
        [viewer.id, viewer.id],
      );
      return rows.length
        ? ctx.em.find(NamespaceSchema, { id: { $in: rows.map((r) => r.id) } }, { orderBy: { path: 'asc' } })
        : [];
    },
  }),
}));

const CreateNamespaceInput = builder.inputType('CreateNamespaceInput', {
  fields: (t) => ({
    path: t.string({ required: true }),
    visibility: t.field({
      type: VisibilityEnum,
      description: 'Of a new root; a child takes its root’s. Default PRIVATE.',
    }),
  }),
});
const UpdateNamespaceInput = builder.inputType('UpdateNamespaceInput', {
  fields: (t) => ({
    path: t.string({ required: true }),
    visibility: t.field({
      type: VisibilityEnum,
      required: true,
      description: 'Set on the root; cascades to the tree.',
    }),
  }),
});
const NamespacePathInput = builder.inputType('NamespacePathInput', {
  fields: (t) => ({ path: t.string({ required: true }) }),
});
const CollaboratorInput = builder.inputType('CollaboratorInput', {
  fields: (t) => ({ path: t.string({ required: true }), username: t.string({ required: true }) }),
});
const InviteAnswerInput = builder.inputType('InviteAnswerInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

/** The namespace at `path` when the viewer owns it; else a not-found that does not reveal it exists. */
async function owned(ctx: Context, path: string): Promise<Namespace> {
  const ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, path);
  if (!ns || !isOwner(ctx, ns)) throw new NotFoundError(`no namespace ${path} that you own`);
  return ns;
}

builder.mutationFields((t) => ({
  createNamespace: t.field({
    type: NamespaceRef,
    authScopes: { scope: 'namespace:write' },
    args: { input: t.arg({ type: CreateNamespaceInput, required: true }) },
    errors: { types: [InputError], dataField: { name: 'namespace' } },
    resolve: async (_root, { input }, ctx) => {
      if (!ctx.auth.viewer) throw new InputError('sign in to create a namespace', null);
      const result = await ctx.services.namespaces.create(
        ctx.em,
        ctx.auth.viewer,
        input.path,
        input.visibility ?? null,
      );
      if (!result.ok) throw new InputError(result.reason, 'path');
      return result.value;
    },
  }),
  updateNamespace: t.field({
    type: NamespaceRef,
    authScopes: { scope: 'namespace:write' },
    args: { input: t.arg({ type: UpdateNamespaceInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'namespace' } },
    resolve: async (_root, { input }, ctx) => {
      const ns = await owned(ctx, input.path);
      return ctx.services.namespaces.setVisibility(ctx.em, ns, input.visibility);
    },
  }),
  deleteNamespace: t.field({
    type: 'Boolean',
    description: 'Deletes the namespace, its children, and their builds, variables and keys.',
    authScopes: { scope: 'namespace:delete' },
    args: { input: t.arg({ type: NamespacePathInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deleted' } },
    resolve: async (_root, { input }, ctx) => {
      await ctx.services.namespaces.remove(ctx.em, await owned(ctx, input.path));
      return true;
    },
  }),
  inviteCollaborator: t.field({
    type: InviteRef,
    authScopes: { scope: 'namespace:write' },
    args: { input: t.arg({ type: CollaboratorInput, required: true }) },
    errors: { types: [NotFoundError, InputError], dataField: { name: 'invite' } },
    resolve: async (_root, { input }, ctx) => {
      const ns = await owned(ctx, input.path);
      const result = await ctx.services.namespaces.invite(ctx.em, ns, ctx.auth.viewer!, input.username);
      if (!result.ok)
        throw result.notFound ? new NotFoundError(result.reason) : new InputError(result.reason, 'username');
      return result.value;
    },
  }),
  removeCollaborator: t.field({
    type: NamespaceRef,
    authScopes: { scope: 'namespace:write' },
    args: { input: t.arg({ type: CollaboratorInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'namespace' } },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.namespaces.removeCollaborator(
        ctx.em,
        await owned(ctx, input.path),
        input.username,
      );
      if (!result.ok) throw new NotFoundError(result.reason);
      return result.value;
    },
  }),
  acceptInvite: t.field({
    type: NamespaceRef,
    authScopes: { $all: { signedIn: true, scope: 'namespace:write' } },
    args: { input: t.arg({ type: InviteAnswerInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'namespace' } },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.namespaces.answer(
        ctx.em,
        ctx.auth.viewer!,
        localIdOrRaw(input.id),
        true,
      );
      if (!result.ok) throw new NotFoundError(result.reason);
      return result.value;
    },
  }),
  rejectInvite: t.field({
    type: 'Boolean',
    authScopes: { $all: { signedIn: true, scope: 'namespace:write' } },
    args: { input: t.arg({ type: InviteAnswerInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'rejected' } },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.namespaces.answer(
        ctx.em,
        ctx.auth.viewer!,
        localIdOrRaw(input.id),
        false,
      );
      if (!result.ok) throw new NotFoundError(result.reason);
      return true;
    },
  }),
}));

/** Invites are plain objects (not Nodes): their id is the row id. */
function localIdOrRaw(id: string): string {
  return localId(id, 'Invite') ?? id;
}

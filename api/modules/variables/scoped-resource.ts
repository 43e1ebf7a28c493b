/**
 * The GraphQL side of the resources a user (namespace null) or a namespace owns: variables, SSH keys
 * and objects (scoped-resource.service.ts is their service side). They share one set of scope rules
 * (`resolveSecretScope`, `secretAccess`), so they share how those rules guard their nodes, lists and
 * mutations; each module keeps its own fields, descriptions, inputs and service calls.
 */
import type { ObjectRef } from '@pothos/core';
import { forbidden } from '../../auth/principal.ts';
import { hasScope, type Resource } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type Outcome,
  resolveSecretScope,
  type ScopedItem,
  type ScopeIds,
  type SecretScope,
  secretAccess,
} from './scoped-resource.service.ts';

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

type ScopedResource = Extract<Resource, 'variable' | 'key' | 'object'>;

/** Seen through any of the resource's scopes: a token that may create one may see what it created. */
const holdsAnyScope = (ctx: Context, resource: ScopedResource): boolean =>
  hasScope(ctx.auth.scopes, `${resource}:read`) ||
  hasScope(ctx.auth.scopes, `${resource}:write`) ||
  hasScope(ctx.auth.scopes, `${resource}:delete`);

/** A user's own items are theirs alone (and an admin's). */
const isSelf = (ctx: Context, user: User): boolean =>
  ctx.auth.viewer !== null && (ctx.auth.viewer.isAdmin || ctx.auth.viewer.id === user.id);

/** The value of an outcome, or the error its failure calls for (not found, FORBIDDEN or input). */
function orThrow<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  if (outcome.notFound) throw new NotFoundError(outcome.reason);
  if (outcome.forbidden) throw forbidden(outcome.reason);
  throw new InputError(outcome.reason, outcome.path ?? null);
}

/**
 * The node's authScopes, so that however the item is reached (`node`, a list) it is seen only with one
 * of its resource's scopes and only by those `secretAccess` lets see it.
 */
export const scopedNodeAuthScopes =
  (resource: ScopedResource) =>
  async (item: ScopedItem, ctx: Context): Promise<boolean> =>
    holdsAnyScope(ctx, resource) && (await secretAccess(ctx.em, ctx.access, item)) !== null;

/** The item's `namespace`, resolved as an id so that NamespaceRef's loader batches the lookups. */
export const namespaceField = <Item extends ScopedItem>(
  t: PothosSchemaTypes.ObjectFieldBuilder<Types, Item>,
  description: string,
) =>
  t.field({
    type: NamespaceRef,
    nullable: true,
    description,
    resolve: (item) => item.namespace?.id ?? null,
  });

/**
 * Adds `Namespace.<field>` and `User.<field>`, listing the items of that scope. Like `secretAccess`,
 * a namespace's are for its owner and collaborators only, a user's own for the user (or an admin).
 */
export function addScopedListFields<Item>(options: {
  field: string;
  type: ObjectRef<Types, Item>;
  resource: ScopedResource;
  namespaceDescription: string;
  userDescription: string;
  list: (ctx: Context, scope: ScopeIds) => Promise<Item[]>;
}): void {
  const { field, type, resource, list } = options;
  builder.objectField(NamespaceRef, field, (t) =>
    t.field({
      type: [type],
      description: options.namespaceDescription,
      authScopes: async (ns, _args, ctx) =>
        hasScope(ctx.auth.scopes, `${resource}:read`) && ctx.access.canWrite(ns),
      resolve: (ns, _args, ctx) => list(ctx, { ownerId: ns.owner.id, namespaceId: ns.id }),
    }),
  );
  builder.objectField(UserRef, field, (t) =>
    t.field({
      type: [type],
      description: options.userDescription,
      authScopes: (user: User, _args, ctx) => isSelf(ctx, user) && { scope: `${resource}:read` },
      resolve: (user, _args, ctx) => list(ctx, { ownerId: user.id, namespaceId: null }),
    }),
  );
}

/**
 * Runs a create mutation's service call in the scope `namespacePath` names (the viewer's own when
 * null) once the viewer may change it; a failure of either becomes the error it calls for.
 */
export async function createInScope<T>(
  ctx: Context,
  namespacePath: string | null | undefined,
  create: (scope: SecretScope) => Promise<Outcome<T>>,
  /** What the scope holds, for the FORBIDDEN message. */
  what?: string,
): Promise<T> {
  const scope = orThrow(
    await resolveSecretScope(ctx.em, ctx.access, ctx.services.namespaces, namespacePath, 'write', what),
  );
  return orThrow(await create(scope));
}

/**
 * The resolver of a delete mutation taking `{ id }` and returning it. An item the viewer may not see
 * is not found, so an id reveals nothing; one the viewer may only see is FORBIDDEN.
 */
export function deleteResolver<Item extends ScopedItem>(options: {
  resource: ScopedResource;
  typename: string;
  find: (ctx: Context, id: string) => Promise<Item | null>;
  remove: (ctx: Context, item: Item) => Promise<void>;
}) {
  const { resource, typename, find, remove } = options;
  return async (_root: unknown, { input }: { input: { id: string } }, ctx: Context): Promise<string> => {
    const id = localId(input.id, typename);
    const item = id ? await find(ctx, id) : null;
    const may = item ? await secretAccess(ctx.em, ctx.access, item) : null;
    if (!item || may === null) throw new NotFoundError(`no ${resource} with id ${input.id}`);
    if (may !== 'write') throw forbidden(`you may not change the ${resource}s of this namespace`);
    await remove(ctx, item);
    return input.id;
  };
}

/**
 * The service side of the resources a user (namespace null) or a namespace owns: variables, SSH keys
 * and objects (scoped-resource.ts is their GraphQL side). They share one set of scope rules:
 *
 * - where an item goes (`resolveSecretScope`): the viewer's own, or a namespace the viewer may write
 *   (owner or collaborator);
 * - who may see and delete an existing item (`secretAccess`): its user alone (and admins), or the
 *   namespace's owner and collaborators;
 * - one name per scope: creations in a scope take turns (an advisory lock per scope), so the check
 *   for a taken name and the insert cannot interleave with another request's.
 *
 * and one way to store them (`ScopedStore`): create, list, find and delete. Each module keeps what is
 * its own: checking and shaping its input (sealing secrets, staging an object's bytes).
 */
import { randomUUID } from 'node:crypto';
import type { EntitySchema, FilterQuery, QueryOrderMap, Ref, RequiredEntityData } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Access } from '../../auth/access.ts';
import type { Namespace } from '../namespaces/namespaces.entity.ts';
import { NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import type { NamespaceService } from '../namespaces/namespaces.service.ts';
import type { User } from '../users/users.entity.ts';
import { UserSchema } from '../users/users.entity.ts';

export type Outcome<T> =
  | { ok: true; value: T }
  | {
      ok: false;
      reason: string;
      /** The input field at fault, for InputError. */
      path?: string;
      /** Does not exist, or the viewer may not see it: tell the two apart to nobody. */
      notFound?: boolean;
      /** The viewer may see it but not change it. */
      forbidden?: boolean;
    };

/** Where a new item goes: the owner's own (namespace null) or a namespace's. */
export interface SecretScope {
  /** The user who creates it (the viewer). */
  owner: User;
  namespace: Namespace | null;
}

/** A scope by ids, as lists and builds name it. */
export interface ScopeIds {
  ownerId: string;
  namespaceId: string | null;
}

/** What every item of a scope has; the store sets these when it creates one. */
export interface ScopedItem {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  createdAt: Date;
}

/**
 * The scope named by `path` (a namespace path, or null for the viewer's own) if the viewer may
 * `need` it: listing, creating or deleting a namespace's items takes write access (owner or
 * collaborator). A namespace the viewer cannot read is not found; a readable one the viewer may not
 * change is FORBIDDEN for writes and not found for reads.
 */
export async function resolveSecretScope(
  em: EntityManager,
  access: Access,
  namespaces: NamespaceService,
  path: string | null | undefined,
  need: 'read' | 'write',
  /** What the scope holds, for the FORBIDDEN message. */
  what = 'secrets',
): Promise<Outcome<SecretScope>> {
  const viewer = access.auth.viewer;
  if (!viewer) return { ok: false, reason: 'sign in first', forbidden: true };
  if (path === null || path === undefined) return { ok: true, value: { owner: viewer, namespace: null } };
  const ns = await namespaces.find(em, viewer, path);
  if (!ns || !(await access.canRead(ns))) {
    return { ok: false, notFound: true, reason: `no namespace ${path} that you may use`, path: 'namespace' };
  }
  if (!(await access.canWrite(ns))) {
    // Listing is for members too: unmasked values are often still not for everyone who can read builds.
    return need === 'write'
      ? { ok: false, forbidden: true, reason: `you may not change the ${what} of namespace ${path}` }
      : { ok: false, notFound: true, reason: `no namespace ${path} that you may use`, path: 'namespace' };
  }
  return { ok: true, value: { owner: viewer, namespace: ns } };
}

/**
 * What the viewer may do with an existing item: `write` (delete it), `read` (see it listed) or
 * nothing. A user's own are the user's alone (and an admin's); a namespace's follow the namespace.
 */
export async function secretAccess(
  em: EntityManager,
  access: Access,
  item: { owner: { id: string }; namespace: { id: string } | null },
): Promise<'write' | 'read' | null> {
  if (!item.namespace) {
    return access.isAdmin || (access.viewerId !== null && item.owner.id === access.viewerId) ? 'write' : null;
  }
  const ns = await em.findOne(NamespaceSchema, { id: item.namespace.id });
  if (!ns) return null;
  // Only members (owner, collaborators) see a namespace's secrets, even in a public namespace.
  return (await access.canWrite(ns)) ? 'write' : null;
}

/** The condition selecting the items of a scope: a namespace's, or a user's own (no namespace). */
export function scopeWhere(scope: ScopeIds) {
  return scope.namespaceId ? { namespace: scope.namespaceId } : { owner: scope.ownerId, namespace: null };
}

const idsOf = (scope: SecretScope): ScopeIds => ({
  ownerId: scope.owner.id,
  namespaceId: scope.namespace?.id ?? null,
});

/** One resource's items: `T`'s rows, unique by `Unique` within their scope. */
export class ScopedStore<T extends ScopedItem, Unique extends Exclude<keyof T, keyof ScopedItem> & string> {
  constructor(
    private readonly options: {
      schema: EntitySchema<T>;
      /** What a scope holds, plural ("variables"): names its lock, and "your own variables". */
      plural: string;
      /** The field unique within a scope; a refused duplicate names it as the input's path. */
      unique: Unique;
      /** How a refusal names a taken value; the value itself by default. */
      named?: (value: string) => string;
      /** The order of a scope's list. */
      orderBy: QueryOrderMap<T>;
    },
  ) {}

  /** A scope's items, in the resource's order. */
  list(em: EntityManager, scope: ScopeIds): Promise<T[]> {
    const { schema, orderBy } = this.options;
    return em.find(schema, scopeWhere(scope) as FilterQuery<T>, { orderBy, disableIdentityMap: true });
  }

  find(em: EntityManager, id: string): Promise<T | null> {
    return em.findOne(this.options.schema, { id } as FilterQuery<T>, { disableIdentityMap: true });
  }

  async delete(em: EntityManager, item: T): Promise<void> {
    await em.nativeDelete(this.options.schema, { id: item.id } as FilterQuery<T>);
  }

  /** Whether `value` is taken in the scope (a quick check, before costly work; `insert` checks again). */
  async taken(em: EntityManager, scope: SecretScope, value: string): Promise<boolean> {
    const where = { ...scopeWhere(idsOf(scope)), [this.options.unique]: value };
    return (await em.count(this.options.schema, where as FilterQuery<T>)) > 0;
  }

  /** The refusal of a taken value. */
  duplicate(scope: SecretScope, value: string) {
    const { plural, unique, named = (v: string) => v } = this.options;
    const place = scope.namespace ? `namespace ${scope.namespace.path}` : `your own ${plural}`;
    return {
      ok: false as const,
      path: unique as string,
      reason: `${named(value)} already exists in ${place}`,
    };
  }

  /**
   * Adds an item to the scope within `tx`, a transaction (the scope's lock is held until it ends),
   * unless its unique value is taken there.
   */
  async insert(tx: EntityManager, scope: SecretScope, data: Omit<T, keyof ScopedItem>): Promise<Outcome<T>> {
    const { schema, plural, unique } = this.options;
    const key = scope.namespace
      ? `${plural}:namespace:${scope.namespace.id}`
      : `${plural}:user:${scope.owner.id}`;
    await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [key]);
    const value = String(data[unique]);
    if (await this.taken(tx, scope, value)) return this.duplicate(scope, value);
    const item = tx.create(schema, {
      ...data,
      id: randomUUID(),
      owner: tx.getReference(UserSchema, scope.owner.id, { wrapped: true }),
      namespace: scope.namespace
        ? tx.getReference(NamespaceSchema, scope.namespace.id, { wrapped: true })
        : null,
      createdAt: new Date(),
    } as RequiredEntityData<T>);
    return { ok: true, value: item };
  }

  /** `insert` in a transaction of its own. */
  create(em: EntityManager, scope: SecretScope, data: Omit<T, keyof ScopedItem>): Promise<Outcome<T>> {
    return em.transactional((tx) => this.insert(tx, scope, data));
  }
}

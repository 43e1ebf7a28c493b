/**
 * Build variables of a user (namespace null) or of a namespace, as in Djinn: created and deleted,
 * never updated; a key is unique within its scope. A masked value is at least 6 characters, stored
 * only sealed (AES-256-GCM, `value` null) and never returned; builds get it decrypted in their
 * snapshot (snapshot.ts) and the runner masks it in the log.
 *
 * Also the scope rules shared with SSH keys and objects (`resolveSecretScope`, `secretAccess`): the
 * viewer's own, or a namespace they may read (to list) or write (to create and delete).
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Access } from '../../auth/access.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { Namespace } from '../namespaces/namespaces.entity.ts';
import { NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import type { NamespaceService } from '../namespaces/namespaces.service.ts';
import type { User } from '../users/users.entity.ts';
import { UserSchema } from '../users/users.entity.ts';
import { type Variable, VariableSchema } from './variables.entity.ts';

export const VARIABLE_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_KEY_LENGTH = 128;
export const MIN_MASKED_LENGTH = 6;
export const MAX_VALUE_LENGTH = 32 * 1024;
/** Kiln sets these itself (KILN_BUILD_ID, KILN_SSH_…): a stored variable must not shadow them. */
const RESERVED_PREFIX = 'KILN_';

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

/** Where a variable or key lives: the owner's own (namespace null) or a namespace's. */
export interface SecretScope {
  /** The user who creates it (the viewer). */
  owner: User;
  namespace: Namespace | null;
}

/**
 * The scope named by `path` (a namespace path, or null for the viewer's own) if the viewer may
 * `need` it: listing, creating or deleting a namespace's secrets takes write access (owner or
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
 * What the viewer may do with an existing variable or key: `write` (delete it), `read` (see it
 * listed) or nothing. A user's own are the user's alone (and an admin's); a namespace's follow the
 * namespace.
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

/**
 * Serialises creations within one scope (one transaction at a time per scope), so the duplicate
 * check and the insert cannot interleave with another request's.
 */
export async function lockScope(tx: EntityManager, kind: string, scope: SecretScope): Promise<void> {
  const key = scope.namespace ? `${kind}:namespace:${scope.namespace.id}` : `${kind}:user:${scope.owner.id}`;
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [key]);
}

/** The condition selecting the items of a scope: a namespace's, or a user's own (no namespace). */
export function scopeWhere(scope: { ownerId: string; namespaceId: string | null }) {
  return scope.namespaceId ? { namespace: scope.namespaceId } : { owner: scope.ownerId, namespace: null };
}

export interface CreateVariableInput {
  key: string;
  value: string;
  masked: boolean;
}

function checkVariable(input: CreateVariableInput): Outcome<null> {
  if (!VARIABLE_KEY.test(input.key) || input.key.length > MAX_KEY_LENGTH) {
    return {
      ok: false,
      path: 'key',
      reason: `a key is up to ${MAX_KEY_LENGTH} letters, digits and _, not starting with a digit`,
    };
  }
  if (input.key.toUpperCase().startsWith(RESERVED_PREFIX)) {
    return { ok: false, path: 'key', reason: `keys starting with ${RESERVED_PREFIX} are reserved for Kiln` };
  }
  if (input.value.length === 0) return { ok: false, path: 'value', reason: 'the value is empty' };
  if (input.value.length > MAX_VALUE_LENGTH) {
    return { ok: false, path: 'value', reason: `a value is at most ${MAX_VALUE_LENGTH} characters` };
  }
  if (input.masked && input.value.length < MIN_MASKED_LENGTH) {
    return {
      ok: false,
      path: 'value',
      reason: `a masked value is at least ${MIN_MASKED_LENGTH} characters, so masking it does not hide ordinary text`,
    };
  }
  return { ok: true, value: null };
}

export async function createVariable(
  em: EntityManager,
  secrets: SecretBox,
  scope: SecretScope,
  input: CreateVariableInput,
): Promise<Outcome<Variable>> {
  const checked = checkVariable(input);
  if (!checked.ok) return checked;
  return em.transactional(async (tx) => {
    await lockScope(tx, 'variables', scope);
    const where = scopeWhere({ ownerId: scope.owner.id, namespaceId: scope.namespace?.id ?? null });
    if (await tx.count(VariableSchema, { ...where, key: input.key })) {
      const place = scope.namespace ? `namespace ${scope.namespace.path}` : 'your own variables';
      return { ok: false as const, path: 'key', reason: `${input.key} already exists in ${place}` };
    }
    const variable = tx.create(VariableSchema, {
      id: randomUUID(),
      owner: tx.getReference(UserSchema, scope.owner.id, { wrapped: true }),
      namespace: scope.namespace
        ? tx.getReference(NamespaceSchema, scope.namespace.id, { wrapped: true })
        : null,
      key: input.key,
      value: input.masked ? null : input.value,
      encryptedValue: input.masked ? secrets.seal(input.value) : null,
      masked: input.masked,
      createdAt: new Date(),
    });
    return { ok: true as const, value: variable };
  });
}

/** A scope's variables, oldest first (the order a build gets them in). */
export function listVariables(
  em: EntityManager,
  scope: { ownerId: string; namespaceId: string | null },
): Promise<Variable[]> {
  return em.find(VariableSchema, scopeWhere(scope), { orderBy: { createdAt: 'asc', id: 'asc' } });
}

export function findVariable(em: EntityManager, id: string): Promise<Variable | null> {
  return em.findOne(VariableSchema, { id });
}

export async function deleteVariable(em: EntityManager, variable: Variable): Promise<void> {
  await em.execute('delete from variables where id = ?', [variable.id]);
}

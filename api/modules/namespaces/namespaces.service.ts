/**
 * Namespaces: trees of an owner's paths (`team/app/service`, at most 20 deep, segments of letters
 * and digits). A path is the viewer's own (`team/app`) or another owner's (`alice@team/app`).
 * Visibility is set on the root and cascades; collaborators are invited to the root by its owner.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Access } from '../../auth/access.ts';
import type { User } from '../users/users.entity.ts';
import { UserSchema } from '../users/users.entity.ts';
import {
  CollaboratorSchema,
  type Invite,
  InviteSchema,
  type Namespace,
  NamespaceSchema,
  type Visibility,
} from './namespaces.entity.ts';

export const MAX_DEPTH = 20;
const SEGMENT = /^[a-zA-Z0-9]{1,64}$/;

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string; notFound?: boolean };

export interface NamespaceRef {
  owner: string | null;
  segments: string[];
}

/** `team/app` or `owner@team/app`; null with a reason when malformed. */
export function parseNamespacePath(
  text: string,
): { ok: true; ref: NamespaceRef } | { ok: false; reason: string } {
  const at = text.indexOf('@');
  const owner = at >= 0 ? text.slice(0, at) : null;
  const segments = (at >= 0 ? text.slice(at + 1) : text).split('/');
  if (owner !== null && !/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/.test(owner))
    return { ok: false, reason: `"${owner}" is not a username` };
  if (segments.length > MAX_DEPTH)
    return { ok: false, reason: `a namespace is at most ${MAX_DEPTH} levels deep` };
  const bad = segments.find((s) => !SEGMENT.test(s));
  if (bad !== undefined)
    return { ok: false, reason: `"${bad}" is not a namespace name: use 1 to 64 letters and digits` };
  return { ok: true, ref: { owner, segments } };
}

export class NamespaceService {
  async find(em: EntityManager, viewer: User | null, path: string): Promise<Namespace | null> {
    const parsed = parseNamespacePath(path);
    if (!parsed.ok) return null;
    const ownerName = parsed.ref.owner ?? viewer?.username;
    if (!ownerName) return null;
    const owner = await em.findOne(UserSchema, { username: ownerName });
    if (!owner) return null;
    return em.findOne(NamespaceSchema, { owner: owner.id, path: parsed.ref.segments.join('/') });
  }

  /**
   * The namespace at `path` that `access` may write to, creating it (and its parents) private when
   * it is the viewer's own and does not exist yet, as Djinn does on submit.
   */
  async resolveForWrite(
    em: EntityManager,
    access: Access,
    path: string,
    create: boolean,
  ): Promise<Outcome<Namespace>> {
    const viewer = access.auth.viewer;
    if (!viewer) return { ok: false, reason: 'sign in to use a namespace' };
    const parsed = parseNamespacePath(path);
    if (!parsed.ok) return parsed;
    const existing = await this.find(em, viewer, path);
    if (existing) {
      return (await access.canWrite(existing))
        ? { ok: true, value: existing }
        : { ok: false, notFound: true, reason: `no namespace ${path} that you may use` };
    }
    const own = parsed.ref.owner === null || parsed.ref.owner === viewer.username;
    if (!own || !create)
      return { ok: false, notFound: true, reason: `no namespace ${path} that you may use` };
    return { ok: true, value: await this.createPath(em, viewer, parsed.ref.segments, 'PRIVATE') };
  }

  /** Creates every missing namespace along `segments` under `owner`; returns the last. */
  async createPath(
    em: EntityManager,
    owner: User,
    segments: string[],
    visibility: Visibility,
  ): Promise<Namespace> {
    return em.transactional(async (tx) => {
      let parent: Namespace | null = null;
      for (let i = 0; i < segments.length; i++) {
        const path = segments.slice(0, i + 1).join('/');
        const id = randomUUID();
        // Concurrent submits may create the same path: the unique (owner, path) decides, both use it.
        await tx.execute(
          `insert into namespaces (id, owner_id, path, name, parent_id, root_id, level, visibility, created_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, now()) on conflict (owner_id, path) do nothing`,
          [
            id,
            owner.id,
            path,
            segments[i],
            parent?.id ?? null,
            parent?.rootId ?? id,
            i + 1,
            parent?.visibility ?? visibility,
          ],
        );
        parent = await tx.findOneOrFail(NamespaceSchema, { owner: owner.id, path }, { refresh: true });
      }
      return parent!;
    });
  }

  async create(
    em: EntityManager,
    owner: User,
    path: string,
    visibility: Visibility | null,
  ): Promise<Outcome<Namespace>> {
    const parsed = parseNamespacePath(path);
    if (!parsed.ok) return parsed;
    if (parsed.ref.owner !== null && parsed.ref.owner !== owner.username) {
      return { ok: false, reason: 'you can only create namespaces of your own' };
    }
    const segments = parsed.ref.segments;
    if (await em.count(NamespaceSchema, { owner: owner.id, path: segments.join('/') })) {
      return { ok: false, reason: `you already have a namespace ${segments.join('/')}` };
    }
    const ns = await this.createPath(em, owner, segments, visibility ?? 'PRIVATE');
    if (segments.length === 1 && visibility && ns.visibility !== visibility)
      await this.setVisibility(em, ns, visibility);
    return { ok: true, value: await em.findOneOrFail(NamespaceSchema, { id: ns.id }, { refresh: true }) };
  }

  /** Sets the root's visibility and cascades it to every namespace of the tree. */
  async setVisibility(em: EntityManager, ns: Namespace, visibility: Visibility): Promise<Namespace> {
    await em.execute('update namespaces set visibility = ? where root_id = ?', [visibility, ns.rootId]);
    return em.findOneOrFail(NamespaceSchema, { id: ns.id }, { refresh: true });
  }

  async remove(em: EntityManager, ns: Namespace): Promise<void> {
    // Children go with it (ON DELETE CASCADE on parent_id), and so do their builds and secrets.
    await em.execute('delete from namespaces where id = ?', [ns.id]);
  }

  async invite(
    em: EntityManager,
    root: Namespace,
    inviter: User,
    username: string,
  ): Promise<Outcome<Invite>> {
    const invitee = await em.findOne(UserSchema, { username });
    if (!invitee) return { ok: false, notFound: true, reason: `no user ${username}` };
    if (invitee.id === root.owner.id) return { ok: false, reason: 'the owner cannot be invited' };
    if (await em.count(CollaboratorSchema, { namespace: root.rootId, user: invitee.id })) {
      return { ok: false, reason: `${username} already collaborates on this namespace` };
    }
    const existing = await em.findOne(InviteSchema, { namespace: root.rootId, invitee: invitee.id });
    if (existing) return { ok: true, value: existing };
    const invite = em.create(InviteSchema, {
      id: randomUUID(),
      namespace: em.getReference(NamespaceSchema, root.rootId, { wrapped: true }),
      inviter: em.getReference(UserSchema, inviter.id, { wrapped: true }),
      invitee: em.getReference(UserSchema, invitee.id, { wrapped: true }),
      createdAt: new Date(),
    });
    await em.flush();
    return { ok: true, value: invite };
  }

  /** Accepts (or rejects) an invite addressed to `user`. */
  async answer(
    em: EntityManager,
    user: User,
    inviteId: string,
    accept: boolean,
  ): Promise<Outcome<Namespace>> {
    const invite = await em.findOne(
      InviteSchema,
      { id: inviteId, invitee: user.id },
      { populate: ['namespace'] },
    );
    if (!invite) return { ok: false, notFound: true, reason: 'no such invite' };
    const ns = invite.namespace.getEntity();
    await em.transactional(async (tx) => {
      if (accept) {
        await tx.execute(
          `insert into namespace_collaborators (namespace_id, user_id, created_at) values (?, ?, now()) on conflict do nothing`,
          [ns.id, user.id],
        );
      }
      await tx.execute('delete from namespace_invites where id = ?', [invite.id]);
    });
    return { ok: true, value: ns };
  }

  async removeCollaborator(
    em: EntityManager,
    root: Namespace,
    username: string,
  ): Promise<Outcome<Namespace>> {
    const user = await em.findOne(UserSchema, { username });
    if (!user) return { ok: false, notFound: true, reason: `no user ${username}` };
    await em.execute('delete from namespace_collaborators where namespace_id = ? and user_id = ?', [
      root.rootId,
      user.id,
    ]);
    return { ok: true, value: root };
  }
}

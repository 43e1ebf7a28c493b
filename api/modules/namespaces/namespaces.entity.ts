import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type User, UserSchema } from '../users/users.entity.ts';

export const VISIBILITIES = [
  /** The owner and the collaborators only. */
  'PRIVATE',
  /** Anyone signed in. */
  'INTERNAL',
  /** Anyone, also without a token. */
  'PUBLIC',
] as const;
export type Visibility = (typeof VISIBILITIES)[number];

/**
 * A node of an owner's namespace tree (`team/app/service`, at most 20 deep). Visibility and
 * collaborators belong to the root and cover every child, as in Djinn.
 */
export interface Namespace {
  id: string;
  owner: Ref<User>;
  /** Full slash-separated path within the owner's tree, e.g. `team/app`. */
  path: string;
  name: string;
  parent: Ref<Namespace> | null;
  /** The top of the tree (itself for a root). */
  rootId: string;
  level: number;
  visibility: Visibility;
  /** The secret a README's badge link of this namespace carries (`?token=`), sealed; made on first read. */
  encryptedBadgeToken?: string | null;
  createdAt: Date;
}

export const NamespaceSchema: EntitySchema<Namespace> = new EntitySchema<Namespace>({
  name: 'Namespace',
  tableName: 'namespaces',
  uniques: [{ properties: ['owner', 'path'] }],
  indexes: [{ properties: ['rootId'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    owner: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    path: { type: 'string', length: 1400 },
    name: { type: 'string', length: 64 },
    parent: { kind: 'm:1', entity: () => NamespaceSchema, ref: true, nullable: true, deleteRule: 'cascade' },
    rootId: { type: 'uuid' },
    level: { type: 'integer' },
    visibility: { type: 'string', length: 16 },
    encryptedBadgeToken: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

/** A user who may submit builds and manage resources in every namespace of a root's tree. */
export interface Collaborator {
  namespace: Ref<Namespace>;
  user: Ref<User>;
  createdAt: Date;
}

export const CollaboratorSchema = new EntitySchema<Collaborator>({
  name: 'Collaborator',
  tableName: 'namespace_collaborators',
  properties: {
    namespace: {
      kind: 'm:1',
      entity: () => NamespaceSchema,
      ref: true,
      primary: true,
      deleteRule: 'cascade',
    },
    user: { kind: 'm:1', entity: () => UserSchema, ref: true, primary: true, deleteRule: 'cascade' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

/** An owner's invitation to collaborate on a root namespace, until accepted or rejected. */
export interface Invite {
  id: string;
  namespace: Ref<Namespace>;
  inviter: Ref<User>;
  invitee: Ref<User>;
  createdAt: Date;
}

export const InviteSchema = new EntitySchema<Invite>({
  name: 'Invite',
  tableName: 'namespace_invites',
  uniques: [{ properties: ['namespace', 'invitee'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    namespace: { kind: 'm:1', entity: () => NamespaceSchema, ref: true, deleteRule: 'cascade' },
    inviter: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    invitee: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

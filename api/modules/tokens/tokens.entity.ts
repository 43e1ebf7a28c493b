import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type User, UserSchema } from '../users/users.entity.ts';

export const TOKEN_KINDS = [
  /** A browser session from logIn: the user's full rights, sent as an httpOnly cookie or a bearer token. */
  'SESSION',
  /** A personal access token: only its scopes. */
  'PERSONAL',
  /** A runner's token: good only for the runner endpoints, never for GraphQL. */
  'RUNNER',
] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

/** A bearer token. Only the SHA-256 of the secret is stored; the secret is shown once. */
export interface AccessToken {
  id: string;
  user: Ref<User>;
  kind: TokenKind;
  name: string;
  tokenHash: string;
  /** `resource:perm` strings; `*` for sessions and the bootstrap token. */
  scopes: string[];
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

export const AccessTokenSchema = new EntitySchema<AccessToken>({
  name: 'AccessToken',
  tableName: 'access_tokens',
  indexes: [{ properties: ['user', 'kind'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    user: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    kind: { type: 'string', length: 16, default: 'PERSONAL' },
    name: { type: 'string', length: 128 },
    tokenHash: { type: 'string', length: 64, unique: true },
    scopes: { type: 'json' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
    lastUsedAt: { type: 'datetime', nullable: true },
    expiresAt: { type: 'datetime', nullable: true },
    revokedAt: { type: 'datetime', nullable: true },
  },
});

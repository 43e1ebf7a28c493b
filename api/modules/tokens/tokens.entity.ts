import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type User, UserSchema } from '../users/users.entity.ts';

/** A bearer token. Only the SHA-256 of the secret is stored; the secret is shown once. */
export interface AccessToken {
  id: string;
  user: Ref<User>;
  name: string;
  tokenHash: string;
  scopes: string[];
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export const AccessTokenSchema = new EntitySchema<AccessToken>({
  name: 'AccessToken',
  tableName: 'access_tokens',
  properties: {
    id: { type: 'uuid', primary: true },
    user: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    name: { type: 'string', length: 128 },
    tokenHash: { type: 'string', length: 64, unique: true },
    scopes: { type: 'json' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
    lastUsedAt: { type: 'datetime', nullable: true },
    revokedAt: { type: 'datetime', nullable: true },
  },
});

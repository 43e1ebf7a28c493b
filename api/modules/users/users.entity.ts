import { BigIntType, EntitySchema } from '@mikro-orm/core';

/** Djinn's default cleanup limit, set at registration: 1 GiB of artifacts per user. */
export const DEFAULT_CLEANUP_BYTES = 1024 ** 3;

/** A person. The bootstrap admin has no password until one is set; it signs in with its token. */
export interface User {
  id: string;
  username: string;
  isAdmin: boolean;
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`; null: password sign-in disabled. */
  passwordHash: string | null;
  /** Failed sign-ins in a row; each one past the threshold doubles the lockout. */
  failedLogins: number;
  lockedUntil: Date | null;
  /** The curator keeps this user's newest artifacts up to this many bytes; 0: no limit. */
  cleanupBytes: number;
  createdAt: Date;
}

export const UserSchema = new EntitySchema<User>({
  name: 'User',
  tableName: 'users',
  properties: {
    id: { type: 'uuid', primary: true },
    username: { type: 'string', length: 64, unique: true },
    isAdmin: { type: 'boolean', default: false },
    passwordHash: { type: 'string', length: 255, nullable: true },
    failedLogins: { type: 'integer', default: 0 },
    lockedUntil: { type: 'datetime', nullable: true },
    cleanupBytes: { type: new BigIntType('number'), default: DEFAULT_CLEANUP_BYTES },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

import { EntitySchema } from '@mikro-orm/core';

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
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

import { BigIntType, EntitySchema, type Ref } from '@mikro-orm/core';

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
  /** Where build mail goes (setEmail); null until set. */
  email?: string | null;
  /** The address was confirmed through the link mailed to it. */
  emailVerified?: boolean;
  /** Which builds of theirs mail them. */
  notify?: NotifyPreference;
  createdAt: Date;
}

export const NOTIFY_PREFERENCES = ['NEVER', 'FAILURES', 'FAILURES_AND_FIXES'] as const;
export type NotifyPreference = (typeof NOTIFY_PREFERENCES)[number];

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
    email: { type: 'string', length: 320, nullable: true },
    emailVerified: { type: 'boolean', default: false },
    notify: { type: 'string', length: 24, default: 'FAILURES' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

export type MailTokenPurpose = 'verify' | 'reset';

/**
 * A link mailed to a user: to confirm an address (`verify`, for `email`) or to set a new password
 * (`reset`). Only its SHA-256 is stored; it works once, until it expires.
 */
export interface MailToken {
  id: string;
  user: Ref<User>;
  purpose: MailTokenPurpose;
  tokenHash: string;
  email: string | null;
  expiresAt: Date;
  usedAt: Date | null;
  createdAt: Date;
}

export const MailTokenSchema = new EntitySchema<MailToken>({
  name: 'MailToken',
  tableName: 'mail_tokens',
  indexes: [{ properties: ['user'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    user: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    purpose: { type: 'string', length: 16 },
    tokenHash: { type: 'string', length: 64, unique: true },
    email: { type: 'string', length: 320, nullable: true },
    expiresAt: { type: 'datetime' },
    usedAt: { type: 'datetime', nullable: true },
    createdAt: { type: 'datetime' },
  },
});

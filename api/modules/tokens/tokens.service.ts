/** Bearer tokens: a random secret shown once, stored as its SHA-256 (enough for 240 random bits). */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DEFAULT_CLEANUP_BYTES, type User, UserSchema } from '../users/users.entity.ts';
import { type AccessToken, AccessTokenSchema, type TokenKind } from './tokens.entity.ts';

export const hashToken = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** `kiln_` + 40 base62-ish characters: recognisable in a leaked log, 240 bits of randomness. */
export const generateToken = (): string => `kiln_${randomBytes(30).toString('base64url')}`;

/** Creates a token for `user` and returns its secret (shown once) with the stored row. */
export function issueToken(
  em: EntityManager,
  user: User,
  opts: { kind: TokenKind; name: string; scopes: string[]; expiresAt?: Date | null },
): { secret: string; token: AccessToken } {
  const secret = generateToken();
  const token = em.create(AccessTokenSchema, {
    id: randomUUID(),
    user: em.getReference(UserSchema, user.id, { wrapped: true }),
    kind: opts.kind,
    name: opts.name,
    tokenHash: hashToken(secret),
    scopes: opts.scopes,
    createdAt: new Date(),
    lastUsedAt: null,
    expiresAt: opts.expiresAt ?? null,
    revokedAt: null,
  });
  return { secret, token };
}

/**
 * When no user exists yet, creates the admin `admin` with a token: the given one
 * (KILN_BOOTSTRAP_TOKEN) or a new one. Returns the secret when it created one, else null.
 */
export async function bootstrapAdmin(em: EntityManager, token: string | undefined): Promise<string | null> {
  return em.transactional(async (tx) => {
    // Two replicas starting at once: one creates the admin, the other waits here and sees it.
    await tx.execute('lock table users in share row exclusive mode');
    if ((await tx.count(UserSchema, {})) > 0) return null;
    const secret = token ?? generateToken();
    const user = tx.create(UserSchema, {
      id: randomUUID(),
      username: 'admin',
      isAdmin: true,
      passwordHash: null,
      failedLogins: 0,
      lockedUntil: null,
      cleanupBytes: DEFAULT_CLEANUP_BYTES,
      createdAt: new Date(),
    });
    tx.create(AccessTokenSchema, {
      id: randomUUID(),
      user,
      kind: 'PERSONAL',
      name: 'bootstrap',
      tokenHash: hashToken(secret),
      scopes: ['*'],
      createdAt: new Date(),
      lastUsedAt: null,
      expiresAt: null,
      revokedAt: null,
    });
    return secret;
  });
}

/**
 * Bearer tokens: a random secret shown once, stored as its SHA-256. `authenticate` turns an
 * `Authorization` header value into the user it belongs to.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { type User, UserSchema } from '../users/users.entity.ts';
import { AccessTokenSchema } from './tokens.entity.ts';

export const hashToken = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** `kiln_` + 40 base62-ish characters: recognisable in a leaked log, 240 bits of randomness. */
export const generateToken = (): string => `kiln_${randomBytes(30).toString('base64url')}`;

/** Don't write last-use on every request: once a minute is enough to list it. */
const LAST_USED_GRANULARITY_MS = 60_000;

export async function authenticate(
  em: EntityManager,
  header: string | null | undefined,
): Promise<User | null> {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match) return null;
  const token = await em.findOne(
    AccessTokenSchema,
    { tokenHash: hashToken(match[1]!), revokedAt: null },
    { populate: ['user'] },
  );
  if (!token) return null;
  const now = Date.now();
  if (!token.lastUsedAt || now - token.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
    await em.execute('update access_tokens set last_used_at = now() where id = ?', [token.id]);
  }
  return token.user.getEntity();
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
      createdAt: new Date(),
    });
    tx.create(AccessTokenSchema, {
      id: randomUUID(),
      user,
      name: 'bootstrap',
      tokenHash: hashToken(secret),
      scopes: ['*'],
      createdAt: new Date(),
      lastUsedAt: null,
      revokedAt: null,
    });
    return secret;
  });
}

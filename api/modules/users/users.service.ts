/**
 * Accounts: sign-up (the first user is an admin; `KILN_SIGNUP=false` closes sign-up to everyone
 * else), password sign-in with a growing lockout after repeated failures, sessions, password change.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DUMMY_HASH, hashPassword, PASSWORD_RULES, verifyPassword } from '../../auth/passwords.ts';
import { CSRF_COOKIE, SESSION_COOKIE } from '../../auth/principal.ts';
import { issueToken } from '../tokens/tokens.service.ts';
import { DEFAULT_CLEANUP_BYTES, type User, UserSchema } from './users.entity.ts';

export const SESSION_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const USERNAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;
/** Failures allowed before the lockout starts; each further one doubles it (1 min, 2, 4, … 1 h). */
const FREE_FAILURES = 5;
const MAX_LOCK_MS = 60 * 60 * 1000;

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string; field?: string };

export class UserService {
  constructor(
    private readonly opts: {
      signup: boolean;
      sessionTtlMs: number;
      /** Where `kiln serve` saves the admin token it creates (KILN_DATA_DIR/bootstrap-token). */
      bootstrapTokenFile?: string | null;
    },
  ) {}

  /** The bootstrap admin's token file as the sign-in page names it; null when not told. */
  get bootstrapTokenFile(): string | null {
    return this.opts.bootstrapTokenFile ?? null;
  }

  async signUp(em: EntityManager, username: string, password: string): Promise<Outcome<User>> {
    if (!USERNAME.test(username)) {
      return {
        ok: false,
        field: 'username',
        reason: 'a username is 1 to 63 letters, digits, - or _, starting with a letter or digit',
      };
    }
    const bad = checkPassword(password);
    if (bad) return { ok: false, field: 'password', reason: bad };
    const passwordHash = await hashPassword(password);
    return em.transactional(async (tx) => {
      await tx.execute('lock table users in share row exclusive mode');
      const first = (await tx.count(UserSchema, {})) === 0;
      if (!first && !this.opts.signup) return { ok: false, reason: 'sign-up is turned off on this server' };
      if (await tx.count(UserSchema, { username: { $ilike: username } })) {
        return { ok: false, field: 'username', reason: `the username ${username} is taken` };
      }
      const user = tx.create(UserSchema, {
        id: randomUUID(),
        username,
        isAdmin: first,
        passwordHash,
        failedLogins: 0,
        lockedUntil: null,
        cleanupBytes: DEFAULT_CLEANUP_BYTES,
        createdAt: new Date(),
      });
      return { ok: true, value: user };
    });
  }

  /** Checks the password; on success opens a session and returns its secret. */
  async logIn(
    em: EntityManager,
    username: string,
    password: string,
  ): Promise<Outcome<{ user: User; secret: string; expiresAt: Date }>> {
    const user = await em.findOne(UserSchema, { username: { $ilike: username } });
    const wrong = { ok: false as const, reason: 'wrong username or password' };
    if (user?.lockedUntil && user.lockedUntil.getTime() > Date.now()) {
      const seconds = Math.ceil((user.lockedUntil.getTime() - Date.now()) / 1000);
      return { ok: false, reason: `too many failed sign-ins: try again in ${seconds} s` };
    }
    // Same work whether or not the user exists, so timing does not tell usernames apart.
    const valid = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user?.passwordHash || !valid) {
      if (user) {
        const failures = user.failedLogins + 1;
        const over = failures - FREE_FAILURES;
        const lockMs = over > 0 ? Math.min(MAX_LOCK_MS, 60_000 * 2 ** (over - 1)) : 0;
        await em.execute('update users set failed_logins = ?, locked_until = ? where id = ?', [
          failures,
          lockMs ? new Date(Date.now() + lockMs) : null,
          user.id,
        ]);
      }
      return wrong;
    }
    await em.execute('update users set failed_logins = 0, locked_until = null where id = ?', [user.id]);
    const expiresAt = new Date(Date.now() + this.opts.sessionTtlMs);
    const { secret } = issueToken(em, user, { kind: 'SESSION', name: 'session', scopes: ['*'], expiresAt });
    await em.flush();
    return { ok: true, value: { user, secret, expiresAt } };
  }

  async changePassword(em: EntityManager, user: User, current: string, next: string): Promise<Outcome<User>> {
    const fresh = await em.findOneOrFail(UserSchema, { id: user.id });
    // The bootstrap admin has no password yet: its token is proof enough to set one.
    if (fresh.passwordHash && !(await verifyPassword(current, fresh.passwordHash))) {
      return { ok: false, field: 'currentPassword', reason: 'the current password is wrong' };
    }
    const bad = checkPassword(next);
    if (bad) return { ok: false, field: 'newPassword', reason: bad };
    fresh.passwordHash = await hashPassword(next);
    await em.flush();
    return { ok: true, value: fresh };
  }

  sessionCookies(secret: string, expiresAt: Date, secure: boolean): string[] {
    const attrs = `Path=/; Expires=${expiresAt.toUTCString()}${secure ? '; Secure' : ''}`;
    const csrf = randomBytes(18).toString('base64url');
    return [
      `${SESSION_COOKIE}=${secret}; HttpOnly; SameSite=Lax; ${attrs}`,
      `${CSRF_COOKIE}=${csrf}; SameSite=Strict; ${attrs}`,
    ];
  }

  clearCookies(): string[] {
    const gone = 'Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
    return [
      `${SESSION_COOKIE}=; HttpOnly; SameSite=Lax; ${gone}`,
      `${CSRF_COOKIE}=; SameSite=Strict; ${gone}`,
    ];
  }
}

export function checkPassword(password: string): string | null {
  if (password.length < PASSWORD_RULES.min) return `a password has at least ${PASSWORD_RULES.min} characters`;
  if (password.length > PASSWORD_RULES.max) return `a password has at most ${PASSWORD_RULES.max} characters`;
  return null;
}

/**
 * Who a request is. A bearer token (HTTP `Authorization`, or graphql-ws `connection_init`
 * `{authorization}`) or the console's session cookie. A cookie-authenticated POST must carry the
 * `x-kiln-csrf` header equal to the `kiln_csrf` cookie (double submit), and a cookie-authenticated
 * WebSocket must come from the same origin, so another site cannot act with a visitor's session.
 * A token that is wrong, expired, revoked or a runner's is refused, never silently anonymous.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { createGraphQLError } from 'graphql-yoga';
import type { TokenKind } from '../modules/tokens/tokens.entity.ts';
import { hashToken } from '../modules/tokens/tokens.service.ts';
import { type User, UserSchema } from '../modules/users/users.entity.ts';
import { ANONYMOUS_SCOPES } from './scopes.ts';

export const SESSION_COOKIE = 'kiln_session';
export const CSRF_COOKIE = 'kiln_csrf';
export const CSRF_HEADER = 'x-kiln-csrf';

export interface Auth {
  viewer: User | null;
  tokenId: string | null;
  kind: TokenKind | 'ANONYMOUS';
  scopes: ReadonlySet<string>;
  via: 'bearer' | 'cookie' | 'none';
  /**
   * Confines what may be seen to one namespace's tree (the namespace and those under it): the rights
   * an outgoing webhook of that namespace runs with. Builds of no namespace are outside it.
   */
  within?: { rootId: string; path: string };
}

export const ANONYMOUS: Auth = {
  viewer: null,
  tokenId: null,
  kind: 'ANONYMOUS',
  scopes: ANONYMOUS_SCOPES,
  via: 'none',
};

export function unauthenticated(message: string) {
  return createGraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

export function forbidden(message: string) {
  return createGraphQLError(message, { extensions: { code: 'FORBIDDEN', http: { status: 403 } } });
}

export function parseCookies(header: string | null | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) cookies.set(part.slice(0, eq).trim(), decodeURIComponent(part.slice(eq + 1).trim()));
  }
  return cookies;
}

export interface Credentials {
  authorization?: string | null;
  cookie?: string | null;
  /** The request's method and CSRF header (HTTP), or null for a WebSocket. */
  http?: { method: string; csrf: string | null } | null;
  /** For WebSockets: is the Origin the server's own? */
  sameOrigin?: boolean;
}

/** An access token's columns (prefixed) and its user's row, as one query returns them. */
type TokenRow = Record<string, unknown> & {
  token_id: string;
  token_kind: TokenKind;
  token_scopes: string[];
  token_last_used_at: Date | null;
  token_expires_at: Date | null;
};

/** Don't write last-use on every request: once a minute is enough to list it. */
const LAST_USED_GRANULARITY_MS = 60_000;

export async function authenticate(em: EntityManager, credentials: Credentials): Promise<Auth> {
  let secret: string | null = null;
  let via: Auth['via'] = 'none';
  if (credentials.authorization) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(credentials.authorization);
    if (!match) throw unauthenticated('the Authorization header must be `Bearer <token>`');
    secret = match[1]!;
    via = 'bearer';
  } else {
    const cookies = parseCookies(credentials.cookie);
    const session = cookies.get(SESSION_COOKIE);
    if (session) {
      if (credentials.http && credentials.http.method !== 'GET') {
        const csrf = cookies.get(CSRF_COOKIE);
        if (!csrf || credentials.http.csrf !== csrf) {
          throw forbidden(
            `a request signed in by cookie must send the ${CSRF_HEADER} header (CSRF protection)`,
          );
        }
      }
      if (!credentials.http && credentials.sameOrigin === false) {
        throw forbidden('a WebSocket signed in by cookie must come from the same origin');
      }
      secret = session;
      via = 'cookie';
    }
  }
  if (!secret) return ANONYMOUS;
  // One query with the user joined, in plain SQL: this runs before every operation, and the ORM's
  // query building and hydration would cost it a millisecond of CPU.
  const [row] = await em.execute<TokenRow[]>(
    `select t.id as token_id, t.kind as token_kind, t.scopes as token_scopes,
       t.last_used_at as token_last_used_at, t.expires_at as token_expires_at, u.*
     from access_tokens t join users u on u.id = t.user_id
     where t.token_hash = ? and t.revoked_at is null`,
    [hashToken(secret)],
  );
  if (!row) throw unauthenticated('the token is not valid (unknown or revoked)');
  const { token_id, token_kind, token_scopes, token_last_used_at, token_expires_at, ...user } = row;
  if (token_expires_at && new Date(token_expires_at).getTime() <= Date.now())
    throw unauthenticated('the session has expired');
  if (token_kind === 'RUNNER') throw unauthenticated('a runner token is only good for the runner endpoints');
  const now = Date.now();
  if (!token_last_used_at || now - new Date(token_last_used_at).getTime() > LAST_USED_GRANULARITY_MS) {
    await em.execute('update access_tokens set last_used_at = now() where id = ?', [token_id]);
  }
  const auth: Auth = {
    viewer: em.map(UserSchema, user),
    tokenId: token_id,
    kind: token_kind,
    scopes: new Set(token_scopes),
    via,
  };
  viewerRows.set(auth, user);
  return auth;
}

/** The user rows authenticated Auths were made from, to give their viewer to another EntityManager. */
const viewerRows = new WeakMap<Auth, Record<string, unknown>>();

/**
 * `auth` again for a new request's EntityManager, without asking the database: its viewer becomes an
 * entity of `em` (an entity is only ever used with the EntityManager that loaded it).
 */
export function reuseAuth(em: EntityManager, auth: Auth): Auth {
  const row = viewerRows.get(auth);
  if (!row) return auth;
  const again: Auth = { ...auth, viewer: em.map(UserSchema, row) };
  viewerRows.set(again, row);
  return again;
}

/**
 * Build tokens: what a runner shows on the runner endpoints for one build (downloading the objects
 * its manifest names, uploading its artifacts). Issued at submit into the BuildJob message, never
 * stored: `kbt_<build id>.<expiry, ms base 36>.<MAC>`, the MAC made with the SecretBox's key for
 * this purpose alone, so any replica with the same KILN_SECRET_KEY recognises it and nobody can
 * forge or stretch one. It expires the build's timeout plus `BUILD_TOKEN_MARGIN_MS` after submit
 * (the margin covers waiting in the queue and redeliveries).
 *
 * Runner tokens (kind RUNNER, created by admins) are good on the same endpoints for every build.
 */
import { timingSafeEqual } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { AccessTokenSchema } from '../modules/tokens/tokens.entity.ts';
import { hashToken } from '../modules/tokens/tokens.service.ts';
import type { SecretBox } from './secret-box.ts';

export const BUILD_TOKEN_MARGIN_MS = 6 * 60 * 60 * 1000;
const PREFIX = 'kbt_';
const PURPOSE = 'build-token';

export function issueBuildToken(secrets: SecretBox, buildId: string, expiresAt: Date): string {
  const body = `${buildId}.${expiresAt.getTime().toString(36)}`;
  return `${PREFIX}${body}.${secrets.mac(PURPOSE, body)}`;
}

/** The build a token is good for, or null when it is forged, malformed or expired. */
export function verifyBuildToken(secrets: SecretBox, token: string, now = Date.now()): string | null {
  if (!token.startsWith(PREFIX)) return null;
  const parts = token.slice(PREFIX.length).split('.');
  if (parts.length !== 3) return null;
  const [buildId, expiry, mac] = parts as [string, string, string];
  const expected = Buffer.from(secrets.mac(PURPOSE, `${buildId}.${expiry}`));
  const given = Buffer.from(mac);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const expiresAt = Number.parseInt(expiry, 36);
  if (!Number.isFinite(expiresAt) || expiresAt <= now) return null;
  return buildId;
}

export type RunnerCredential =
  | { ok: true; via: 'build-token' | 'runner-token' }
  | { ok: false; status: 401 | 403 };

/**
 * Whether `authorization` (an HTTP Authorization header) may use the runner endpoints of build
 * `buildId`: its build token, or a live runner token. 401 without a usable token, 403 for a valid
 * build token of another build.
 */
export async function authorizeRunner(
  em: EntityManager,
  secrets: SecretBox,
  authorization: string | undefined,
  buildId: string,
): Promise<RunnerCredential> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) return { ok: false, status: 401 };
  const secret = match[1]!;
  if (secret.startsWith(PREFIX)) {
    const tokenBuild = verifyBuildToken(secrets, secret);
    if (tokenBuild === null) return { ok: false, status: 401 };
    return tokenBuild === buildId ? { ok: true, via: 'build-token' } : { ok: false, status: 403 };
  }
  const token = await em.findOne(AccessTokenSchema, { tokenHash: hashToken(secret), revokedAt: null });
  if (token?.kind !== 'RUNNER' || (token.expiresAt && token.expiresAt.getTime() <= Date.now())) {
    return { ok: false, status: 401 };
  }
  return { ok: true, via: 'runner-token' };
}

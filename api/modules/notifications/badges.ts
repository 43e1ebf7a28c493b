/**
 * Status badges: `GET /badges/<owner>/<namespace path>.svg[?branch=…&manifest=…&token=…]` draws the
 * status of the namespace's latest finished build (of that branch and manifest, for a repository's
 * builds) as a shields-style SVG, with badge-maker (the library shields.io uses). Before any build
 * finished it says `running` or `queued`. A PUBLIC namespace's badge answers anyone; another's needs
 * `?token=` with the namespace's `badgeToken` (never a personal token in a README), which those who
 * may write it read and regenerate. Cached at most 60 s, with an ETag.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { makeBadge } from 'badge-maker';
import type { BuildStatus } from '../../../runner/contract/status.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { Routes } from '../../http/routes.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { UserSchema } from '../users/users.entity.ts';

const WORDS: Record<BuildStatus, { message: string; color: string }> = {
  PASSED: { message: 'passed', color: 'brightgreen' },
  FAILED: { message: 'failed', color: 'red' },
  PASSED_WITH_FAILURES: { message: 'passed with failures', color: 'yellow' },
  KILLED: { message: 'killed', color: 'lightgrey' },
  TIMED_OUT: { message: 'timed out', color: 'orange' },
  RUNNING: { message: 'running', color: 'blue' },
  QUEUED: { message: 'queued', color: 'lightgrey' },
};
const FINISHED = ['PASSED', 'FAILED', 'PASSED_WITH_FAILURES', 'KILLED', 'TIMED_OUT'];

/** The namespace's badge token, made (and stored sealed) the first time it is asked for. */
export async function badgeTokenOf(em: EntityManager, secrets: SecretBox, ns: Namespace): Promise<string> {
  if (ns.encryptedBadgeToken) return secrets.open(ns.encryptedBadgeToken);
  const token = `kiln_badge_${randomBytes(16).toString('hex')}`;
  // Two first readers at once keep one token: the first to store it.
  const [row] = await em.execute<{ encrypted_badge_token: string }[]>(
    `update namespaces set encrypted_badge_token = coalesce(encrypted_badge_token, ?) where id = ?
     returning encrypted_badge_token`,
    [secrets.seal(token), ns.id],
  );
  ns.encryptedBadgeToken = row!.encrypted_badge_token;
  return secrets.open(row!.encrypted_badge_token);
}

/** A new badge token for the namespace: badges with the old one stop showing. */
export async function regenerateBadgeToken(
  em: EntityManager,
  secrets: SecretBox,
  ns: Namespace,
): Promise<string> {
  const token = `kiln_badge_${randomBytes(16).toString('hex')}`;
  const sealed = secrets.seal(token);
  await em.execute('update namespaces set encrypted_badge_token = ? where id = ?', [sealed, ns.id]);
  ns.encryptedBadgeToken = sealed;
  return token;
}

const same = (a: string, b: string) => {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
};

/** The status the badge shows: the latest finished build's, else the latest build's, else none. */
export async function badgeStatus(
  em: EntityManager,
  namespaceId: string,
  filter: { branch: string | null; manifest: string | null },
): Promise<BuildStatus | null> {
  const where = ['namespace_id = ?'];
  const params: unknown[] = [namespaceId];
  if (filter.branch) {
    where.push(`trigger_data->>'ref' = ?`);
    params.push(`refs/heads/${filter.branch}`);
  }
  if (filter.manifest) {
    where.push(`trigger_data->>'manifestPath' = ?`);
    params.push(filter.manifest);
  }
  const [row] = await em.execute<{ status: BuildStatus }[]>(
    `select status from builds where ${where.join(' and ')}
     order by (status in (${FINISHED.map(() => '?').join(', ')})) desc, created_at desc limit 1`,
    [...params, ...FINISHED],
  );
  return row?.status ?? null;
}

export function badgeSvg(status: BuildStatus | null): string {
  const words = status ? WORDS[status] : { message: 'no builds', color: 'lightgrey' };
  return makeBadge({ label: 'build', message: words.message, color: words.color });
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export function addBadgeRoutes(routes: Routes, deps: { orm: MikroORM; secrets: SecretBox }): void {
  routes.add(['GET', 'HEAD'], '/badges/:owner/*', async (req, res, { params, url }) => {
    const rest = params['*'] ?? '';
    if (!rest.endsWith('.svg'))
      return json(res, 404, { error: 'a badge is /badges/<owner>/<namespace path>.svg' });
    const path = rest.slice(0, -'.svg'.length);
    const em = deps.orm.em.fork();
    const owner = await em.findOne(UserSchema, { username: params.owner! });
    const ns = owner ? await em.findOne(NamespaceSchema, { owner: owner.id, path }) : null;
    const hidden = () => json(res, 404, { error: `no badge for ${params.owner}/${path}` });
    if (!ns) return hidden();
    if (ns.visibility !== 'PUBLIC') {
      const given = url.searchParams.get('token');
      if (!given || !ns.encryptedBadgeToken || !same(given, deps.secrets.open(ns.encryptedBadgeToken))) {
        return hidden();
      }
    }
    const status = await badgeStatus(em, ns.id, {
      branch: url.searchParams.get('branch'),
      manifest: url.searchParams.get('manifest'),
    });
    const svg = badgeSvg(status);
    const etag = `"${createHash('sha1').update(svg).digest('hex')}"`;
    const headers = {
      'content-type': 'image/svg+xml; charset=utf-8',
      'cache-control': `max-age=60, ${ns.visibility === 'PUBLIC' ? 'public' : 'private'}`,
      etag,
    };
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end();
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : svg);
  });
}

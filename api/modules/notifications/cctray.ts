/**
 * `GET /cctray.xml`: the CCTray feed (GoCD's, and CruiseControl's before it) that build lights and
 * menu-bar monitors read. One project per namespace the caller may see, and per manifest and branch
 * for a repository's builds (`<owner>/<path> :: <manifest> :: <branch>`): `activity` (Building while
 * its latest build is queued or running, else Sleeping), `lastBuildStatus` (Success, Failure,
 * Exception for killed and timed-out builds, Unknown before any finished), `lastBuildLabel` (the
 * build number), `lastBuildTime`, `webUrl`. Credentials: a bearer token, or Basic auth whose password
 * is a token (monitors only speak Basic); none shows what anyone may see.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MikroORM } from '@mikro-orm/postgresql';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { BuildStatus } from '../../../runner/contract/status.ts';
import { Access } from '../../auth/access.ts';
import { authenticate } from '../../auth/principal.ts';
import type { Routes } from '../../http/routes.ts';

const FINISHED: readonly BuildStatus[] = ['PASSED', 'FAILED', 'PASSED_WITH_FAILURES', 'KILLED', 'TIMED_OUT'];

const LAST_STATUS: Partial<Record<BuildStatus, string>> = {
  PASSED: 'Success',
  PASSED_WITH_FAILURES: 'Success',
  FAILED: 'Failure',
  KILLED: 'Exception',
  TIMED_OUT: 'Exception',
};

const xml = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!,
  );

/** A bearer token as it came, or the password of Basic credentials, as a bearer token. */
function bearerOf(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (!header) return null;
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!basic) return header;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return `Bearer ${colon >= 0 ? decoded.slice(colon + 1) : decoded}`;
}

interface ProjectRow {
  owner: string;
  path: string;
  manifest_path: string | null;
  ref: string | null;
  latest_status: BuildStatus;
  last_id: string | null;
  last_number: number | null;
  last_status: BuildStatus | null;
  last_time: Date | null;
}

export function addCctrayRoutes(routes: Routes, deps: { orm: MikroORM; publicUrl: () => string }): void {
  routes.add(['GET', 'HEAD'], '/cctray.xml', async (req: IncomingMessage, res: ServerResponse) => {
    const em = deps.orm.em.fork();
    let access: Access;
    try {
      const auth = await authenticate(em, {
        authorization: bearerOf(req),
        cookie: null,
        http: { method: 'GET', csrf: null },
      });
      access = new Access(em, auth);
    } catch {
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="kiln"' })
        .end(JSON.stringify({ error: 'a token, as a bearer token or as the password of Basic auth' }));
      return;
    }
    const visible = access.visibleBuildsSql('b');
    // Per project: its latest build, and its latest finished one.
    const rows = await em.execute<ProjectRow[]>(
      `with visible as (
         select b.*, b.trigger_data->>'manifestPath' as manifest_path,
                case when b.trigger_data->>'manifestPath' is not null then b.trigger_data->>'ref' end as ref
         from builds b where b.namespace_id is not null and ${visible.sql}
       ), latest as (
         select distinct on (namespace_id, manifest_path, ref) namespace_id, manifest_path, ref, status
         from visible order by namespace_id, manifest_path, ref, created_at desc
       ), finished as (
         select distinct on (namespace_id, manifest_path, ref) namespace_id, manifest_path, ref, id, number,
                status, coalesce(finished_at, created_at) as at
         from visible where status in (${FINISHED.map(() => '?').join(', ')})
         order by namespace_id, manifest_path, ref, created_at desc
       )
       select u.username as owner, n.path, l.manifest_path, l.ref, l.status as latest_status,
              f.id as last_id, f.number as last_number, f.status as last_status, f.at as last_time
       from latest l
       join namespaces n on n.id = l.namespace_id
       join users u on u.id = n.owner_id
       left join finished f on f.namespace_id = l.namespace_id
         and f.manifest_path is not distinct from l.manifest_path and f.ref is not distinct from l.ref
       order by u.username, n.path, l.manifest_path nulls first, l.ref nulls first`,
      [...visible.params, ...FINISHED],
    );
    const base = deps.publicUrl().replace(/\/+$/, '');
    const projects = rows.map((r) => {
      const branch = r.ref?.replace(/^refs\/(heads|tags)\//, '') ?? null;
      const name = `${r.owner}/${r.path}${r.manifest_path ? ` :: ${r.manifest_path} :: ${branch ?? ''}` : ''}`;
      const activity =
        r.latest_status === 'QUEUED' || r.latest_status === 'RUNNING' ? 'Building' : 'Sleeping';
      const attrs = [
        `name="${xml(name)}"`,
        `activity="${activity}"`,
        `lastBuildStatus="${(r.last_status && LAST_STATUS[r.last_status]) ?? 'Unknown'}"`,
        `lastBuildLabel="${r.last_number ?? ''}"`,
        `lastBuildTime="${r.last_time ? new Date(r.last_time).toISOString() : ''}"`,
        `webUrl="${xml(
          r.last_id
            ? `${base}/builds/${encodeURIComponent(encodeGlobalID('Build', r.last_id))}`
            : `${base}/namespaces/${encodeURIComponent(r.owner)}/${r.path.split('/').map(encodeURIComponent).join('/')}`,
        )}"`,
      ];
      return `  <Project ${attrs.join(' ')} />`;
    });
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Projects>\n${projects.join('\n')}${projects.length ? '\n' : ''}</Projects>\n`;
    res
      .writeHead(200, { 'content-type': 'application/xml; charset=utf-8', 'cache-control': 'no-store' })
      .end(req.method === 'HEAD' ? undefined : body);
  });
}

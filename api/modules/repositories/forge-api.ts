/**
 * Calls to a forge's REST API with a repository's token: each forge's way of passing the token and
 * of naming the repository in a path, one request function, and errors as words.
 *
 * - GitHub: `Authorization: Bearer <token>`, `/repos/{owner}/{repo}/…`.
 * - Gitea and Forgejo: `Authorization: token <token>`, `/repos/{owner}/{repo}/…`.
 * - GitLab: `PRIVATE-TOKEN: <token>`, `/projects/{id or url-encoded path}/…`.
 */
import type { Forge } from './repositories.entity.ts';

export type ApiForge = Exclude<Forge, 'GENERIC'>;

export interface ForgeTarget {
  forge: ApiForge;
  apiUrl: string;
  /** owner/repo, or GitLab's project path or id. */
  repository: string;
  token: string;
}

/** The repository's path in the forge's API: `/repos/owner/repo` or `/projects/<id>`. */
export function repositoryPath(target: ForgeTarget): string {
  return target.forge === 'GITLAB'
    ? `/projects/${encodeURIComponent(target.repository)}`
    : `/repos/${target.repository.split('/').map(encodeURIComponent).join('/')}`;
}

function authHeaders(target: ForgeTarget): Record<string, string> {
  switch (target.forge) {
    case 'GITHUB':
      return { authorization: `Bearer ${target.token}`, accept: 'application/vnd.github+json' };
    case 'GITLAB':
      return { 'private-token': target.token };
    default:
      return { authorization: `token ${target.token}` };
  }
}

export type ForgeResponse = { ok: true; body: unknown } | { ok: false; failure: string };

/** One request to `path` below the repository's API path; a failure is said in words, never thrown. */
export async function forgeRequest(
  target: ForgeTarget,
  method: 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ForgeResponse> {
  const url = `${target.apiUrl.replace(/\/+$/, '')}${repositoryPath(target)}${path}`;
  try {
    const response = await (opts.fetch ?? fetch)(url, {
      method,
      headers: { 'content-type': 'application/json', 'user-agent': 'Kiln-CI', ...authHeaders(target) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    const text = await response.text().catch(() => '');
    if (!response.ok) {
      const said = text.slice(0, 200).replace(/\s+/g, ' ').trim();
      return { ok: false, failure: `HTTP ${response.status}${said ? `: ${said}` : ''}` };
    }
    try {
      return { ok: true, body: text ? JSON.parse(text) : null };
    } catch {
      return { ok: true, body: null };
    }
  } catch (error) {
    return { ok: false, failure: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * The rules of a repository's settings that need no database: which clone URLs and manifest paths
 * are accepted, which branches its filters let through, and where a forge's API is by default.
 */
import { globToRegExp } from '../../../runner/glob.ts';
import type { Forge, Repository } from './repositories.entity.ts';

/** The kinds of URL a repository may be fetched from. */
export function checkCloneUrl(url: string): string | null {
  if (url.length > 2048) return 'a clone URL is at most 2048 characters';
  if (/^[^/@:\s]+@[^/:\s]+:[^\s]+$/.test(url)) return null; // scp-like: git@host:owner/repo.git
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url.slice(0, 200)}" is not a URL: use https://, ssh://, git@host:path or file://`;
  }
  if (!['https:', 'http:', 'ssh:', 'git:', 'file:'].includes(parsed.protocol)) {
    return `${parsed.protocol}// is not a protocol git fetches from here: use https://, ssh://, git@host:path or file://`;
  }
  if (parsed.protocol !== 'file:' && !parsed.hostname) return 'the clone URL has no host';
  if (parsed.password) return 'put no password in the clone URL: give a forge token or an SSH key';
  return null;
}

/** Whether git reaches `url` over ssh (`ssh://…` or scp-like `user@host:path`). */
export const isSshUrl = (url: string): boolean =>
  /^ssh:\/\//i.test(url) || /^[^/@:\s]+@[^/:\s]+:[^\s]+$/.test(url);

/** A manifest path or glob: relative, inside the repository. */
export function checkManifestPath(p: string): string | null {
  if (p.trim() === '' || p.length > 512) return 'a manifest path is 1 to 512 characters';
  if (p.startsWith('/')) return `"${p}" is absolute: paths are relative to the repository's root`;
  if (p.split('/').includes('..')) return `"${p}" leaves the repository`;
  return null;
}

/**
 * Whether pushes and polls of `ref` build: tags and other refs always do; a branch when it matches an
 * include glob (or there are none) and no exclude glob. Null when it builds, else why not.
 */
export function branchFiltered(
  repo: Pick<Repository, 'includeBranches' | 'excludeBranches'>,
  ref: string,
): string | null {
  if (!ref.startsWith('refs/heads/')) return null;
  const branch = ref.slice('refs/heads/'.length);
  const matches = (glob: string) => globToRegExp(glob).test(branch);
  const excluded = repo.excludeBranches.find(matches);
  if (excluded) return `branch ${branch} is excluded by ${excluded}`;
  if (repo.includeBranches.length > 0 && !repo.includeBranches.some(matches)) {
    return `branch ${branch} matches none of ${repo.includeBranches.join(', ')}`;
  }
  return null;
}

/** The forge's API root, where it follows from the forge and the clone URL. */
export function defaultApiUrl(forge: Forge, cloneUrl: string): string | null {
  if (forge === 'GITHUB') return 'https://api.github.com';
  if (forge === 'GENERIC') return null;
  let origin: string;
  try {
    const parsed = new URL(cloneUrl);
    if (!['https:', 'http:'].includes(parsed.protocol)) return null;
    origin = parsed.origin;
  } catch {
    return null;
  }
  return forge === 'GITLAB' ? `${origin}/api/v4` : `${origin}/api/v1`;
}

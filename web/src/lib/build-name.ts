/**
 * What a build is called: numbers count per namespace (per submitter when it has none), so the
 * number alone is ambiguous. `ada@team/app #3` for a namespace's build, `ada #3` for one of ada's own.
 */
interface NamedBuild {
  number: number;
  namespace: { path: string; owner: { username: string } } | null;
  owner: { username: string };
}

/** `ada@team/app`, or `ada` for a build in no namespace: where its number counts. */
export const buildScope = (b: Omit<NamedBuild, 'number'>): string =>
  b.namespace ? `${b.namespace.owner.username}@${b.namespace.path}` : b.owner.username;

/** `ada@team/app #3`. */
export const buildName = (b: NamedBuild): string => `${buildScope(b)} #${b.number}`;

/**
 * Where a build's page lives: `/ada/team/app/builds/3` for a namespace's build (what people read and
 * share), `/builds/<id>` for one in no namespace. Both open the same page.
 */
export const buildPath = (b: NamedBuild & { id: string }): string =>
  b.namespace
    ? `/${encodeURIComponent(b.namespace.owner.username)}/${b.namespace.path
        .split('/')
        .map(encodeURIComponent)
        .join('/')}/builds/${b.number}`
    : `/builds/${encodeURIComponent(b.id)}`;

/** `/ada/team/app/builds/3` → { namespace: 'ada@team/app', number: 3 }; null for any other path. */
export function parseBuildPath(pathname: string): { namespace: string; number: number } | null {
  const m = /^\/([^/]+)\/(.+)\/builds\/(\d+)\/?$/.exec(pathname);
  if (!m) return null;
  const number = Number(m[3]);
  if (!Number.isSafeInteger(number) || number < 1) return null;
  try {
    return { namespace: `${decodeURIComponent(m[1]!)}@${decodeURIComponent(m[2]!)}`, number };
  } catch {
    return null;
  }
}

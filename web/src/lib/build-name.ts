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

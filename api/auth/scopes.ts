/**
 * Token scopes: `resource:perm` with perm read, write or delete, as in Djinn. A session (and the
 * bootstrap token) holds `*`, everything the user may do; a personal access token only its scopes.
 * Scopes limit what a token may do; they never grant access to a namespace the user cannot reach.
 */
export const RESOURCES = [
  'build',
  'namespace',
  'variable',
  'key',
  'object',
  'artifact',
  'image',
  'cron',
  'repository',
  'webhook',
  'runner',
] as const;
export const PERMS = ['read', 'write', 'delete'] as const;
export type Resource = (typeof RESOURCES)[number];
export type Perm = (typeof PERMS)[number];
export type Scope = `${Resource}:${Perm}`;

export const ALL_SCOPES: Scope[] = RESOURCES.flatMap((r) => PERMS.map((p) => `${r}:${p}` as Scope));

/** What someone without a token may do: read what is public. */
export const ANONYMOUS_SCOPES: ReadonlySet<string> = new Set(RESOURCES.map((r) => `${r}:read`));

export function isScope(value: string): value is Scope {
  return (ALL_SCOPES as string[]).includes(value);
}

export function hasScope(granted: ReadonlySet<string>, scope: Scope): boolean {
  return granted.has('*') || granted.has(scope);
}

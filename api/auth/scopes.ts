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

/** Held by a token, it changes nothing: no operation checks it (yet). */
const RESERVED = 'Reserved: nothing checks it yet.';

/**
 * What each scope lets a token do, as the console shows it when a token is made (Query.scopes). A
 * scope that starts or stops guarding an operation changes its line here.
 */
export const SCOPE_DESCRIPTIONS: { readonly [S in Scope]: string } = {
  'build:read': 'See builds, their jobs and logs, and follow them live.',
  'build:write': 'Submit, kill, pin and unpin builds.',
  'build:delete': RESERVED,
  'namespace:read': 'See namespaces, their children and collaborators.',
  'namespace:write':
    'Create and change namespaces, invite and remove collaborators, accept or reject invites.',
  'namespace:delete': 'Delete namespaces, with their children and everything in them.',
  'variable:read': 'List variables (a masked value is never shown).',
  'variable:write': 'Add variables.',
  'variable:delete': 'Delete variables.',
  'key:read': 'List SSH keys (never the private keys).',
  'key:write': 'Add SSH keys.',
  'key:delete': 'Delete SSH keys.',
  'object:read': 'List and download objects.',
  'object:write': 'Upload objects.',
  'object:delete': 'Delete objects.',
  'artifact:read': 'List and download artifacts.',
  'artifact:write': 'Set how many bytes of your artifacts the curator keeps.',
  'artifact:delete': RESERVED,
  'image:read': RESERVED,
  'image:write': RESERVED,
  'image:delete': RESERVED,
  'cron:read': 'See schedules, their next runs, firings and builds.',
  'cron:write': 'Create, change, pause and resume schedules (with build:write).',
  'cron:delete': 'Delete schedules.',
  'repository:read': 'See repositories, the events forges posted for them and their builds.',
  'repository:write': 'Connect and change repositories, build them, and replay forge events.',
  'repository:delete': 'Disconnect repositories.',
  'webhook:read': RESERVED,
  'webhook:write': RESERVED,
  'webhook:delete': RESERVED,
  'runner:read': 'See the runners and follow their heartbeats.',
  'runner:write': 'Held by runner tokens (createRunnerToken); it lets a personal token do nothing.',
  'runner:delete': RESERVED,
};

/** What someone without a token may do: read what is public. */
export const ANONYMOUS_SCOPES: ReadonlySet<string> = new Set(RESOURCES.map((r) => `${r}:read`));

export function isScope(value: string): value is Scope {
  return (ALL_SCOPES as string[]).includes(value);
}

export function hasScope(granted: ReadonlySet<string>, scope: Scope): boolean {
  return granted.has('*') || granted.has(scope);
}

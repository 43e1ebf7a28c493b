import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type SshKey, SshKeySchema } from '../keys/keys.entity.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';

export type Forge = 'GITHUB' | 'GITLAB' | 'GITEA' | 'FORGEJO' | 'GENERIC';
export const FORGES: readonly Forge[] = ['GITHUB', 'GITLAB', 'GITEA', 'FORGEJO', 'GENERIC'];

/**
 * A namespace's git repository: where to fetch it, which forge posts its events and takes its
 * statuses, and which files of a commit are its manifests. The webhook secret and the forge token
 * are stored sealed (the secret box): the secret must be read back to check signatures, and is shown
 * once, by createRepository; the token is never shown.
 */
export interface Repository {
  id: string;
  namespace: Ref<Namespace>;
  name: string;
  cloneUrl: string;
  forge: Forge;
  defaultBranch: string;
  manifestPaths: string[];
  /** Globs of the branches pushes and polls build (`*` stops at `/`, `**` does not); empty: every branch. */
  includeBranches: string[];
  /** Globs of branches never built, whatever includeBranches says. */
  excludeBranches: string[];
  /** Builds of pull requests from forks get the namespace's masked variables, keys and objects. */
  allowForkSecrets: boolean;
  /** Seconds between polls; null: webhooks only. */
  pollInterval: number | null;
  /**
   * Several commits pushed at once each get their builds, oldest first (GoCD's gocd#938); when false
   * only the pushed head builds.
   */
  buildEveryCommit: boolean;
  /** The namespace's SSH key an ssh clone URL is fetched with (by the server and the checkout job). */
  sshKey: Ref<SshKey> | null;
  forgeApiUrl: string | null;
  forgeRepository: string | null;
  encryptedForgeToken: string | null;
  encryptedWebhookSecret: string;
  lastCheckedAt: Date | null;
  problem: string | null;
  /** When a poll first recorded its heads; null until then (that first poll builds nothing). */
  polledAt: Date | null;
  /** The id of the webhook Kiln installed on the forge (removed with the repository); null: none. */
  forgeHookId: string | null;
  createdAt: Date;
}

export const RepositorySchema = new EntitySchema<Repository>({
  name: 'Repository',
  tableName: 'repositories',
  uniques: [{ properties: ['namespace', 'name'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    namespace: { kind: 'm:1', entity: () => NamespaceSchema, ref: true, deleteRule: 'cascade' },
    name: { type: 'string', length: 128 },
    cloneUrl: { type: 'text' },
    forge: { type: 'string', length: 16 },
    defaultBranch: { type: 'string', length: 255 },
    manifestPaths: { type: 'json' },
    includeBranches: { type: 'json' },
    excludeBranches: { type: 'json' },
    allowForkSecrets: { type: 'boolean', default: false },
    pollInterval: { type: 'integer', nullable: true },
    buildEveryCommit: { type: 'boolean', default: false },
    sshKey: { kind: 'm:1', entity: () => SshKeySchema, ref: true, nullable: true, deleteRule: 'set null' },
    forgeApiUrl: { type: 'text', nullable: true },
    forgeRepository: { type: 'string', length: 512, nullable: true },
    encryptedForgeToken: { type: 'text', nullable: true },
    encryptedWebhookSecret: { type: 'text' },
    lastCheckedAt: { type: 'datetime', nullable: true },
    problem: { type: 'text', nullable: true },
    polledAt: { type: 'datetime', nullable: true },
    forgeHookId: { type: 'string', length: 64, nullable: true },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

/** The head of each branch and tag of a repository as Kiln last saw (and built) it. */
export interface RepositoryHead {
  repository: Ref<Repository>;
  ref: string;
  sha: string;
  updatedAt: Date;
}

export const RepositoryHeadSchema = new EntitySchema<RepositoryHead>({
  name: 'RepositoryHead',
  tableName: 'repository_heads',
  properties: {
    repository: {
      kind: 'm:1',
      entity: () => RepositorySchema,
      ref: true,
      primary: true,
      deleteRule: 'cascade',
    },
    ref: { type: 'string', length: 512, primary: true },
    sha: { type: 'string', length: 40 },
    updatedAt: { type: 'datetime' },
  },
});

/**
 * One webhook delivery, stored whatever became of it (refused, duplicate, ignored, built), with the
 * headers it came with (less any that carry a secret) and its body, so it can be read and replayed.
 */
export interface ForgeEvent {
  id: string;
  repository: Ref<Repository>;
  /** The forge's delivery id; null when the forge sent none. */
  deliveryId: string | null;
  event: string;
  receivedAt: Date;
  verified: boolean;
  /** What Kiln did with it, in words; `received` until it has been worked on. */
  outcome: string;
  headers: Record<string, string>;
  body: string;
  /** The builds it started, by id. */
  buildIds: string[];
  /** The event this one replays, if it is a replay. */
  replayOf: string | null;
  /** A delivery id seen already: recorded, nothing started. */
  duplicate: boolean;
}

export const ForgeEventSchema = new EntitySchema<ForgeEvent>({
  name: 'ForgeEvent',
  tableName: 'forge_events',
  indexes: [
    { properties: ['repository', 'receivedAt'] },
    { properties: ['repository', 'deliveryId'] },
    {
      // A delivery id is taken once per repository (de-duplication); refused deliveries, duplicates
      // and replays are recorded beside the original.
      name: 'forge_events_delivery_unique',
      expression:
        'create unique index "forge_events_delivery_unique" on "forge_events" ("repository_id", "delivery_id") where verified and replay_of is null and not duplicate',
    },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    repository: { kind: 'm:1', entity: () => RepositorySchema, ref: true, deleteRule: 'cascade' },
    deliveryId: { type: 'string', length: 255, nullable: true },
    event: { type: 'string', length: 64 },
    receivedAt: { type: 'datetime', onCreate: () => new Date() },
    verified: { type: 'boolean' },
    outcome: { type: 'text' },
    headers: { type: 'json' },
    body: { type: 'text' },
    buildIds: { type: 'json' },
    replayOf: { type: 'uuid', nullable: true },
    duplicate: { type: 'boolean', default: false },
  },
});

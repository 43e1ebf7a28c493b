import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type Repository, RepositorySchema } from '../repositories/repositories.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

/**
 * A cron schedule of a user (namespace null) or of a namespace: what it builds (a manifest, or a
 * repository's branch) and when. `nextRunAt` is the slot it fires for next, null while it is paused
 * or stopped; the replica that takes its row (FOR UPDATE SKIP LOCKED) claims the slot.
 */
export interface Schedule {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  manifest: string | null;
  repository: Ref<Repository> | null;
  branch: string | null;
  onlyOnChanges: boolean;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  /** The commit this schedule last built of its repository's branch (onlyOnChanges compares with it). */
  lastSha: string | null;
  /** Why the schedule stopped or its last firing built nothing; null when all is well. */
  problem: string | null;
  createdAt: Date;
}

export const ScheduleSchema = new EntitySchema<Schedule>({
  name: 'Schedule',
  tableName: 'schedules',
  indexes: [
    { properties: ['owner'] },
    { properties: ['namespace'] },
    {
      name: 'schedules_due_index',
      properties: ['nextRunAt'],
      expression: `create index "schedules_due_index" on "schedules" ("next_run_at") where "enabled"`,
    },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    owner: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    namespace: {
      kind: 'm:1',
      entity: () => NamespaceSchema,
      ref: true,
      nullable: true,
      deleteRule: 'cascade',
    },
    name: { type: 'string', length: 128 },
    cron: { type: 'string', length: 256 },
    timezone: { type: 'string', length: 64 },
    enabled: { type: 'boolean' },
    manifest: { type: 'text', nullable: true },
    repository: {
      kind: 'm:1',
      entity: () => RepositorySchema,
      ref: true,
      nullable: true,
      deleteRule: 'cascade',
    },
    branch: { type: 'string', length: 255, nullable: true },
    onlyOnChanges: { type: 'boolean', default: false },
    nextRunAt: { type: 'datetime', nullable: true },
    lastRunAt: { type: 'datetime', nullable: true },
    lastSha: { type: 'string', length: 40, nullable: true },
    problem: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

export type FiringState = 'pending' | 'fired' | 'skipped' | 'failed';

/**
 * One slot of a schedule, claimed once: the unique (schedule, slot) row is written in the same
 * transaction that moves the schedule's `nextRunAt` on, and the builds of the slot are written in
 * the transaction that turns it from `pending` to `fired`, so that of two replicas (or a replica and
 * the recovery of a slot whose replica died) exactly one makes them.
 */
export interface ScheduleFiring {
  id: string;
  schedule: Ref<Schedule>;
  slot: Date;
  claimedAt: Date;
  state: FiringState;
  /** The slot fired later than it was due (Kiln was down, or slots were missed). */
  late: boolean;
  outcome: string | null;
  buildIds: string[];
}

export const ScheduleFiringSchema = new EntitySchema<ScheduleFiring>({
  name: 'ScheduleFiring',
  tableName: 'schedule_firings',
  uniques: [{ properties: ['schedule', 'slot'] }],
  indexes: [
    {
      name: 'schedule_firings_pending_index',
      properties: ['claimedAt'],
      expression: `create index "schedule_firings_pending_index" on "schedule_firings" ("claimed_at") where "state" = 'pending'`,
    },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    schedule: { kind: 'm:1', entity: () => ScheduleSchema, ref: true, deleteRule: 'cascade' },
    slot: { type: 'datetime' },
    claimedAt: { type: 'datetime' },
    state: { type: 'string', length: 16 },
    late: { type: 'boolean', default: false },
    outcome: { type: 'text', nullable: true },
    buildIds: { type: 'json' },
  },
});

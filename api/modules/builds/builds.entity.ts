import { EntitySchema, type Ref } from '@mikro-orm/core';
import type { BuildStatus, JobStatus } from '../../../runner/contract/status.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

export const TRIGGER_KINDS = ['MANUAL', 'PUSH', 'PULL', 'SCHEDULE'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

export interface Build {
  id: string;
  /** Who submitted it (or whose cron, webhook… did). */
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  /** What `number` counts within: `user:<id>` now, `namespace:<id>` once namespaces exist. */
  numberScope: string;
  number: number;
  status: BuildStatus;
  manifest: string;
  comment: string | null;
  queue: string;
  driver: string;
  timeoutMs: number;
  /** The attempt the runner reported last; 0 until a runner takes the build. */
  attempt: number;
  runner: string | null;
  /**
   * The run that holds the build: a runner's id for one run of one delivery. Only reports carrying
   * it change the build or its log; another run is accepted once this one's lease has lapsed
   * (`leaseSeenAt` older than LEASE_MS) or was released.
   */
  lease: string | null;
  /** When the holder of `lease` was last heard of (its start, its heartbeats); null once released. */
  leaseSeenAt: Date | null;
  /** Seq of the last log chunk of `attempt`, known once the build is finished. */
  lastSeq: number | null;
  /** Why the build ended the way it did, when that is not a job's exit code. */
  reason: string | null;
  /** Commit statuses (repositories/statuses.ts): the status last reported to the forge, and how that went. */
  forgeReported: string | null;
  forgeReport: string | null;
  forgeReportAttempts: number;
  forgeReportNextAt: Date | null;
  triggerKind: TriggerKind;
  triggerData: Record<string, string>;
  /** Pinned builds keep their artifacts: the curator never deletes them. */
  pinned: boolean;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The mail its final status calls for was sent, or it called for none (builds of before mail: true). */
  mailed?: boolean;
}

export const BuildSchema = new EntitySchema<Build>({
  name: 'Build',
  tableName: 'builds',
  uniques: [{ properties: ['numberScope', 'number'] }],
  indexes: [
    { properties: ['createdAt'] },
    { properties: ['status'] },
    {
      // Builds of a repository, newest first (Repository.builds).
      name: 'builds_repository_index',
      expression: `create index "builds_repository_index" on "builds" ((trigger_data->>'repositoryId'), "created_at") where (trigger_data->>'repositoryId') is not null`,
    },
    {
      // Finished builds not yet mailed, oldest first (the build-mail job).
      name: 'builds_unmailed_index',
      expression: `create index "builds_unmailed_index" on "builds" ("finished_at") where not "mailed" and "finished_at" is not null`,
    },
    {
      // Builds of a schedule, newest first (Schedule.builds).
      name: 'builds_schedule_index',
      expression: `create index "builds_schedule_index" on "builds" ((trigger_data->>'scheduleId'), "created_at") where (trigger_data->>'scheduleId') is not null`,
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
    numberScope: { type: 'string', length: 80 },
    number: { type: 'integer' },
    status: { type: 'string', length: 32 },
    manifest: { type: 'text' },
    comment: { type: 'text', nullable: true },
    queue: { type: 'string', length: 64 },
    driver: { type: 'string', length: 32 },
    timeoutMs: { type: 'integer' },
    attempt: { type: 'integer', default: 0 },
    runner: { type: 'string', length: 255, nullable: true },
    lease: { type: 'string', length: 64, nullable: true },
    leaseSeenAt: { type: 'datetime', nullable: true },
    lastSeq: { type: 'integer', nullable: true },
    reason: { type: 'text', nullable: true },
    forgeReported: { type: 'string', length: 32, nullable: true },
    forgeReport: { type: 'text', nullable: true },
    forgeReportAttempts: { type: 'integer', default: 0 },
    forgeReportNextAt: { type: 'datetime', nullable: true },
    triggerKind: { type: 'string', length: 16 },
    triggerData: { type: 'json' },
    pinned: { type: 'boolean', default: false },
    createdAt: { type: 'datetime' },
    startedAt: { type: 'datetime', nullable: true },
    finishedAt: { type: 'datetime', nullable: true },
    mailed: { type: 'boolean', default: false },
  },
});

export interface BuildTag {
  build: Ref<Build>;
  name: string;
}

export const BuildTagSchema = new EntitySchema<BuildTag>({
  name: 'BuildTag',
  tableName: 'build_tags',
  indexes: [{ properties: ['name'] }],
  properties: {
    build: { kind: 'm:1', entity: () => BuildSchema, ref: true, primary: true, deleteRule: 'cascade' },
    name: { type: 'string', length: 128, primary: true },
  },
});

/** The last build number handed out per scope: `INSERT … ON CONFLICT DO UPDATE … RETURNING` never collides. */
export interface BuildCounter {
  scope: string;
  lastNumber: number;
}

export const BuildCounterSchema = new EntitySchema<BuildCounter>({
  name: 'BuildCounter',
  tableName: 'build_counters',
  properties: {
    scope: { type: 'string', length: 80, primary: true },
    lastNumber: { type: 'integer' },
  },
});

export interface Stage {
  id: string;
  build: Ref<Build>;
  position: number;
  name: string;
  canFail: boolean;
}

export const StageSchema = new EntitySchema<Stage>({
  name: 'Stage',
  tableName: 'stages',
  uniques: [{ properties: ['build', 'position'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    build: { kind: 'm:1', entity: () => BuildSchema, ref: true, deleteRule: 'cascade' },
    position: { type: 'integer' },
    name: { type: 'string', length: 128 },
    canFail: { type: 'boolean' },
  },
});

export interface Job {
  id: string;
  build: Ref<Build>;
  stage: Ref<Stage>;
  /** Order within the build, across stages. */
  position: number;
  name: string;
  stageName: string;
  status: JobStatus;
  /** The build attempt `status` belongs to. */
  attempt: number;
  exitCode: number | null;
  commands: string[];
  artifacts: { src: string; name: string }[];
  startedAt: Date | null;
  finishedAt: Date | null;
}

export const JobSchema = new EntitySchema<Job>({
  name: 'Job',
  tableName: 'jobs',
  uniques: [{ properties: ['build', 'position'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    build: { kind: 'm:1', entity: () => BuildSchema, ref: true, deleteRule: 'cascade' },
    stage: { kind: 'm:1', entity: () => StageSchema, ref: true, deleteRule: 'cascade' },
    position: { type: 'integer' },
    name: { type: 'string', length: 255 },
    stageName: { type: 'string', length: 128 },
    status: { type: 'string', length: 32 },
    attempt: { type: 'integer', default: 0 },
    exitCode: { type: 'integer', nullable: true },
    commands: { type: 'json' },
    artifacts: { type: 'json' },
    startedAt: { type: 'datetime', nullable: true },
    finishedAt: { type: 'datetime', nullable: true },
  },
});

/**
 * A batch of log lines as the runner published it. (build, attempt, seq) is unique, so an event
 * stored twice is stored once; (attempt, seq) orders a build's whole log.
 */
export interface LogChunk {
  build: Ref<Build>;
  attempt: number;
  seq: number;
  job: Ref<Job>;
  firstLine: number;
  lineCount: number;
  /** The lines joined with `\n` (a line never contains `\n`). */
  content: string;
  createdAt: Date;
}

export const LogChunkSchema = new EntitySchema<LogChunk>({
  name: 'LogChunk',
  tableName: 'log_chunks',
  properties: {
    build: { kind: 'm:1', entity: () => BuildSchema, ref: true, primary: true, deleteRule: 'cascade' },
    attempt: { type: 'integer', primary: true },
    seq: { type: 'integer', primary: true },
    job: { kind: 'm:1', entity: () => JobSchema, ref: true, deleteRule: 'cascade' },
    firstLine: { type: 'integer' },
    lineCount: { type: 'integer' },
    content: { type: 'text' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

/**
 * The api ↔ runner contract: every message that crosses the broker, as a zod schema.
 * Payloads are validated before any work; an invalid one is rejected without requeue and so
 * lands in the dead-letter queue.
 *
 * Exchanges (names carry the broker's prefix, `kiln` by default):
 * - `<prefix>.builds` (direct, routing key = queue name): one BuildJob per build. Published by the
 *   api after the build's rows are committed (outbox). Consumed by runners with prefetch = their
 *   concurrency, acked only when the build is finished and its final events are confirmed. A runner
 *   that dies mid-build loses its connection, RabbitMQ redelivers the job and the next runner runs it
 *   as attempt N+1 (attempt = delivery count + 1). Past the delivery limit the job is dead-lettered
 *   and the api marks the build FAILED with a reason.
 * - `<prefix>.events` (topic, routing key = event type): RunnerEvents, published by runners with
 *   publisher confirms. Every event carries (buildId, attempt, seq or jobId) so storing it twice is
 *   harmless. Consumed by one shared queue (storage, competing consumers) and by one exclusive queue per
 *   api process (live fan-out to subscriptions).
 * - `<prefix>.control` (topic, routing key = `build.<id>`): ControlMessages to the runner running that
 *   build. Lost if no runner runs it (a queued build is cancelled by the api itself).
 */
import { z } from 'zod';
import { BUILD_STATUSES, JOB_STATUSES } from './status.ts';

export const BuildStatusSchema = z.enum(BUILD_STATUSES);
export const JobStatusSchema = z.enum(JOB_STATUSES);

export const ArtifactSpecSchema = z.object({ src: z.string(), name: z.string() });

/** One job as the runner runs it: the api assigned its id when it wrote the build's rows. */
export const PlannedJobSchema = z.object({
  id: z.string(),
  name: z.string(),
  commands: z.array(z.string()),
  artifacts: z.array(ArtifactSpecSchema).default([]),
});
export type PlannedJob = z.infer<typeof PlannedJobSchema>;

export const PlannedStageSchema = z.object({
  name: z.string(),
  canFail: z.boolean(),
  jobs: z.array(PlannedJobSchema),
});
export type PlannedStage = z.infer<typeof PlannedStageSchema>;

export const VariableSchema = z.object({
  key: z.string(),
  value: z.string(),
  /** A masked value is replaced by `xxxxxx` wherever it appears in the log. */
  masked: z.boolean().default(false),
});
export type Variable = z.infer<typeof VariableSchema>;

export const DriverSpecSchema = z.record(z.string(), z.string()).and(z.object({ type: z.string() }));
export type DriverSpec = z.infer<typeof DriverSpecSchema>;

/**
 * Published to `<prefix>.builds` with routing key `queue`. Everything the runner needs: it never
 * opens the database.
 */
export const BuildJobSchema = z.object({
  kind: z.literal('build'),
  buildId: z.string(),
  number: z.number().int(),
  queue: z.string(),
  driver: DriverSpecSchema,
  /** The stages in order, including the setup stage with one clone job per source. */
  stages: z.array(PlannedStageSchema),
  /** Build variables in order: stored ones first, then the manifest's `env`. */
  variables: z.array(VariableSchema).default([]),
  /**
   * SSH keys placed at `~/.ssh/<name>` before each job, with a generated `~/.ssh/config` (`config`:
   * this key's ssh_config lines). `name` is a plain file name. Optional, so that messages written
   * before keys existed stay valid.
   */
  keys: z
    .array(
      z.object({
        name: z.string().regex(/^(?!\.+$)[a-zA-Z0-9_.-]+$/),
        privateKey: z.string(),
        config: z.string().default(''),
      }),
    )
    .optional(),
  timeoutMs: z.number().int().positive(),
  submittedAt: z.string(),
  /**
   * The manifest's `objects`, placed into the environment before the first job. The runner
   * downloads each from `url` (GET, `Authorization: Bearer <token>`); `url` is null for an object
   * that did not exist at submit. A missing object (null, or 404 at download) is a log line, never a
   * failure. `apiUrl` is the api's base URL; `token` is good only for this build's object downloads
   * and artifact uploads, until the build's timeout (plus a margin) after submit. Optional, like
   * `artifacts`, so that messages written before objects existed stay valid.
   */
  objects: z
    .object({
      apiUrl: z.string(),
      token: z.string(),
      items: z.array(z.object({ name: z.string(), dest: z.string(), url: z.string().nullable() })),
    })
    .optional(),
  /**
   * Where the jobs' `artifacts` go: `POST <apiUrl>/runner/builds/<buildId>/artifacts?job=<jobId>&name=<name>`
   * with the raw bytes as the body and `Authorization: Bearer <token>`. A file larger than `maxBytes`
   * is truncated to it (with a log line). Collected after every job that ran, also a failed one.
   */
  artifacts: z
    .object({ apiUrl: z.string(), token: z.string(), maxBytes: z.number().int().positive() })
    .optional(),
});
export type BuildJob = z.infer<typeof BuildJobSchema>;

const base = { buildId: z.string(), attempt: z.number().int().min(1), at: z.string() };

/** The runner took the build (attempt N). Resets the jobs of any earlier attempt. */
export const BuildStartedSchema = z.object({ type: z.literal('build.started'), runner: z.string(), ...base });

export const JobStartedSchema = z.object({ type: z.literal('job.started'), jobId: z.string(), ...base });

/**
 * A batch of log lines of one job. `seq` numbers the chunks of one attempt of one build from 1
 * without gaps, across all its jobs, in the order they were written: (attempt, seq) is the log's cursor.
 * `firstLine` is the 1-based number of lines[0] within its job's log.
 */
export const LogChunkSchema = z.object({
  type: z.literal('log.chunk'),
  jobId: z.string(),
  seq: z.number().int().min(1),
  firstLine: z.number().int().min(1),
  lines: z.array(z.string()),
  ...base,
});
export type LogChunkEvent = z.infer<typeof LogChunkSchema>;

export const JobFinishedSchema = z.object({
  type: z.literal('job.finished'),
  jobId: z.string(),
  status: JobStatusSchema,
  exitCode: z.number().int().nullable(),
  ...base,
});

/**
 * The build is over. `lastSeq` is the seq of this attempt's last log chunk (0 when it wrote none), so
 * a reader knows when it has the whole log. `reason` explains failures that are not a job's exit code.
 */
export const BuildFinishedSchema = z.object({
  type: z.literal('build.finished'),
  status: BuildStatusSchema,
  lastSeq: z.number().int().min(0),
  reason: z.string().nullable().default(null),
  ...base,
});

/** Every 5 s from each runner; the api's watchdog treats 30 s of silence as a lost runner. */
export const RunnerHeartbeatSchema = z.object({
  type: z.literal('runner.heartbeat'),
  runner: z.string(),
  queues: z.array(z.string()),
  concurrency: z.number().int(),
  running: z.array(z.object({ buildId: z.string(), attempt: z.number().int() })),
  at: z.string(),
});

/**
 * Published by the api (not by runners) after it has stored a change of a build's or job's status,
 * with the state as committed, so every api replica can show its subscribers each step even when
 * several land at once. Storage ignores it.
 */
export const BuildUpdatedSchema = z.object({
  type: z.literal('build.updated'),
  buildId: z.string(),
  status: BuildStatusSchema,
  attempt: z.number().int(),
  reason: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  /** Every job's state as committed with this change, so each subscriber sees each step. */
  jobs: z.array(
    z.object({
      jobId: z.string(),
      status: JobStatusSchema,
      exitCode: z.number().int().nullable(),
      startedAt: z.string().nullable(),
      finishedAt: z.string().nullable(),
    }),
  ),
  at: z.string(),
});
export type BuildUpdated = z.infer<typeof BuildUpdatedSchema>;

/**
 * The event types storage takes: everything runners publish. `build.updated`, the api's own
 * notification, only goes to the api replicas' fan-out.
 */
export const STORED_EVENT_TYPES = [
  'build.started',
  'job.started',
  'log.chunk',
  'job.finished',
  'build.finished',
  'runner.heartbeat',
] as const;

export const RunnerEventSchema = z.discriminatedUnion('type', [
  BuildUpdatedSchema,
  BuildStartedSchema,
  JobStartedSchema,
  LogChunkSchema,
  JobFinishedSchema,
  BuildFinishedSchema,
  RunnerHeartbeatSchema,
]);
export type RunnerEvent = z.infer<typeof RunnerEventSchema>;
export type RunnerEventOf<T extends RunnerEvent['type']> = Extract<RunnerEvent, { type: T }>;

/** Published to `<prefix>.control` with routing key `build.<buildId>`. */
export const ControlMessageSchema = z.object({
  type: z.literal('kill'),
  buildId: z.string(),
});
export type ControlMessage = z.infer<typeof ControlMessageSchema>;

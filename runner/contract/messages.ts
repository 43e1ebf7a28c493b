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
  /** The job that checks out a repository's commit as the workspace (it gets `checkoutKey`). */
  checkout: z.boolean().optional(),
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

export const SshKeySchema = z.object({
  name: z.string().regex(/^(?!\.+$)[a-zA-Z0-9_.-]+$/),
  privateKey: z.string(),
  config: z.string().default(''),
});

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
  keys: z.array(SshKeySchema).optional(),
  /**
   * The SSH key of the repository the build checks out (an ssh clone URL): placed, with `keys`, for
   * the checkout job alone, so that a build that gets no keys (a fork's pull request) can still be
   * checked out while its own code never sees the key.
   */
  checkoutKey: SshKeySchema.optional(),
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

/**
 * Every report about one build names the run it comes from: `lease` is a fresh id for each run of a
 * delivery. The api stores a run's reports only while that run holds the build (see LEASE_MS), so a
 * second run of the same build (a redelivery after a broker restart, a duplicate publish) can never
 * mix its log or statuses into the run that holds it.
 */
const base = {
  buildId: z.string(),
  attempt: z.number().int().min(1),
  lease: z.string().min(1).max(64),
  at: z.string(),
};

/**
 * How long a run holds its build after it was last heard of (its start, a heartbeat listing it). A
 * runner whose build.started is answered `wait` retries until the holder finishes, releases it, or
 * falls silent this long (it died). Runners' heartbeats must come well within it.
 */
export const LEASE_MS = 15_000;

/**
 * The runner took the build (attempt N) in run `lease`. The api accepts it when nobody holds the build,
 * and it then resets the jobs of any earlier attempt; otherwise it answers with a control message
 * (`wait` while another run holds it, `kill` when the build is over or the report is stale).
 */
export const BuildStartedSchema = z.object({
  type: z.literal('build.started'),
  runner: z.string(),
  /**
   * The runner runs nothing until the api answers (`go`, `wait` or `kill`): a redelivery, or a run
   * told to wait before, may find the build held or over. A first delivery starts at once.
   */
  waiting: z.boolean().default(false),
  ...base,
});

/**
 * The run gives the build up without finishing it (the runner shuts down, or it was told to wait):
 * its lease ends at once, so the next run need not wait for it to lapse.
 */
export const BuildReleasedSchema = z.object({ type: z.literal('build.released'), ...base });

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
  /** The runs going on: each one's lease is renewed by the heartbeat. */
  running: z.array(
    z.object({ buildId: z.string(), attempt: z.number().int(), lease: z.string().optional() }),
  ),
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
  /** The run that holds the build now (null while queued and once released). */
  lease: z.string().nullable().default(null),
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
  'build.released',
  'job.started',
  'log.chunk',
  'job.finished',
  'build.finished',
  'runner.heartbeat',
] as const;

export const RunnerEventSchema = z.discriminatedUnion('type', [
  BuildUpdatedSchema,
  BuildStartedSchema,
  BuildReleasedSchema,
  JobStartedSchema,
  LogChunkSchema,
  JobFinishedSchema,
  BuildFinishedSchema,
  RunnerHeartbeatSchema,
]);
export type RunnerEvent = z.infer<typeof RunnerEventSchema>;
export type RunnerEventOf<T extends RunnerEvent['type']> = Extract<RunnerEvent, { type: T }>;

/**
 * Published to `<prefix>.control` with routing key `build.<buildId>`, heard by every runner:
 * - `kill`: stop the build (someone killed it; or, with `lease`, only that run: the build is over or
 *   that run's report was stale). A runner holding a delivery of the build it does not run any more
 *   acks it: the build is settled.
 * - `wait`: the run `lease` started while another run holds the build. It stops without reporting,
 *   keeps its delivery, and starts again later as a new run.
 * - `go`: the run `lease`, waiting (build.started with `waiting`), holds the build: run it.
 */
export const ControlMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('kill'), buildId: z.string(), lease: z.string().optional() }),
  z.object({ type: z.literal('wait'), buildId: z.string(), lease: z.string() }),
  z.object({ type: z.literal('go'), buildId: z.string(), lease: z.string() }),
]);
export type ControlMessage = z.infer<typeof ControlMessageSchema>;

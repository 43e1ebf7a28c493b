/**
 * Runs one attempt of one build through a driver and reports it as RunnerEvents.
 *
 * Rules (Djinn's, without its HEAD bugs): stages run in order and the jobs of a stage in order, in
 * one driver environment, so files persist between jobs and stages. A job that fails in a stage not
 * listed in `allow_failures` fails the build and every later job (this stage and the next ones)
 * finishes SKIPPED without running; in an allowed stage the build goes on and ends
 * PASSED_WITH_FAILURES at best. The build's status is the worst of its jobs'.
 *
 * Events, in this order (emit publishes with confirms, and the broker keeps the order of publishes
 * made one after another): build.started, then per job job.started, log.chunk… (seq 1, 2, … across
 * all jobs of this attempt, firstLine per job), job.finished, and last build.finished with
 * `lastSeq`. A job that never runs gets only job.finished. The starts are not waited for: the
 * environment is made and the job started while they are confirmed, so the first line is on its way
 * a confirm or two sooner. A job's events are all confirmed before its job.finished is published,
 * and every event before build.finished.
 *
 * Stopping: `signal` aborts with a StopReason. `killed` and `timeout` (the build's own timer, started
 * here) end the running job and every job after it KILLED / TIMED_OUT and the build with the same
 * status. `shutdown` stops the running job and returns QUEUED without job.finished for it or
 * build.finished: the runner hands the build back and the next attempt resets its jobs.
 *
 * Files: the manifest's objects are placed (DriverSession.putFile) when the first job starts, with a
 * log line each in that job's log; a missing one is logged and skipped. After every job that ran to
 * its end (passed or failed, not stopped), the files its `artifacts` globs match are read
 * (DriverSession.files) and stored, each truncated to the sink's limit; problems are log lines of
 * that job and never change its status. That includes a path that resolves outside the workspace:
 * the driver refuses it (an object is not placed, an artifact is skipped) and the log says so.
 *
 * Errors: a driver that cannot make its environment fails the build (the first job FAILED with the
 * reason in its log, the others SKIPPED, the reason in build.finished). A failing `emit` is an
 * infrastructure failure: the job is stopped, the environment destroyed and the error thrown, so the
 * runner does not ack. The environment is destroyed in every case.
 */
import type { ArtifactSink, ObjectSource } from './build-files.ts';
import { artifactFileName } from './build-files.ts';
import type { BuildJob, PlannedJob, PlannedStage, RunnerEvent } from './contract/messages.ts';
import {
  type BuildStatus,
  buildStatusOfJob,
  finalStatusOfStop,
  type JobStatus,
  type StopReason,
  worstBuildStatus,
} from './contract/status.ts';
import { type Driver, DriverError, type DriverSession, type JobResult } from './drivers/driver.ts';
import { artifactName } from './glob.ts';
import { createLogBatcher } from './log-batcher.ts';
import { jobScript } from './manifest/plan.ts';
import { createMasker } from './masking.ts';

/** The subset of pino's logger the runner uses. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ExecuteBuildOptions {
  job: BuildJob;
  attempt: number;
  /** This run's id, on every event: the api stores a run's events only while it holds the build. */
  lease: string;
  /** The runner published build.started itself (and waited for the api's go-ahead). */
  announced?: boolean;
  driver: Driver;
  emit: (events: RunnerEvent[]) => Promise<void>;
  /** Aborted with a StopReason: `killed`, `timeout` or `shutdown` (anything else counts as `killed`). */
  signal: AbortSignal;
  runnerName: string;
  now?: () => Date;
  /** Limit on making the driver's environment, apart from the build's timeout; default 5 minutes. */
  createTimeoutMs?: number;
  logger?: Logger;
  /** The manifest's objects, placed before the first job; none when absent. */
  objects?: ObjectSource;
  /** Where the jobs' artifacts go; without it they are not collected (with a log line). */
  artifacts?: ArtifactSink;
}

export interface ExecuteBuildResult {
  /** Final, or QUEUED when the runner shut down mid-build and must hand it back. */
  status: BuildStatus;
  lastSeq: number;
  reason: string | null;
}

export const DEFAULT_CREATE_TIMEOUT_MS = 5 * 60 * 1000;
/** setTimeout's largest delay; longer timeouts would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function stopReasonOf(reason: unknown): StopReason {
  return reason === 'timeout' || reason === 'shutdown' ? reason : 'killed';
}

/** `90000` → `1m30s`, for reasons people read. */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const parts: string[] = [];
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) parts.push(`${h}h`);
  if (m > 0) parts.push(`${m}m`);
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

function stopMessage(reason: Exclude<StopReason, 'shutdown'>, timeoutMs: number): string {
  switch (reason) {
    case 'killed':
      return 'the build was killed';
    case 'timeout':
      return `the build ran past its timeout of ${formatDuration(timeoutMs)}`;
  }
}

export function buildEnv(job: BuildJob): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of job.variables) env[variable.key] = variable.value;
  env.KILN_BUILD_ID = job.buildId;
  env.KILN_BUILD_NUMBER = String(job.number);
  return env;
}

/** Thrown when `emit` fails: the events of this attempt are incomplete and the delivery must not be acked. */
export class EmitError extends Error {
  override name = 'EmitError';
}

export async function executeBuild(opts: ExecuteBuildOptions): Promise<ExecuteBuildResult> {
  const { job, attempt, driver } = opts;
  const now = opts.now ?? (() => new Date());
  const base = () => ({ buildId: job.buildId, attempt, lease: opts.lease, at: now().toISOString() });
  const env = buildEnv(job);
  const keys = sshKeysSetup(job.keys ?? [], env);
  // The checkout job alone gets the repository's key, first, beside the build's own keys.
  const checkoutKeys = job.checkoutKey
    ? sshKeysSetup(
        [job.checkoutKey, ...(job.keys ?? []).filter((k) => k.name !== job.checkoutKey!.name)],
        env,
        { removeAtExit: true },
      )
    : keys;
  const masker = createMasker([
    ...job.variables.filter((v) => v.masked).map((v) => v.value),
    ...keys.secrets,
    ...(checkoutKeys === keys ? [] : checkoutKeys.secrets),
  ]);

  const stopper = new AbortController();
  let emitFailure: unknown = null;
  const forward = () => stopper.abort(stopReasonOf(opts.signal.reason));
  if (opts.signal.aborted) forward();
  else opts.signal.addEventListener('abort', forward, { once: true });
  const timer = setTimeout(() => stopper.abort('timeout'), Math.min(job.timeoutMs, MAX_TIMER_MS));
  const stopped = (): StopReason | null =>
    stopper.signal.aborted ? stopReasonOf(stopper.signal.reason) : null;

  let seq = 0;
  const emit = async (events: RunnerEvent[]): Promise<void> => {
    try {
      await opts.emit(events);
    } catch (error) {
      emitFailure ??= error;
      stopper.abort('shutdown');
      throw new EmitError(`cannot publish the build's events: ${(error as Error).message}`, { cause: error });
    }
  };
  const emitChunk = (jobId: string, firstLine: number, lines: string[]) =>
    emit([{ type: 'log.chunk', jobId, seq: ++seq, firstLine, lines, ...base() }]);
  /** Published, not yet confirmed: each is confirmed before the job or build that follows it ends. */
  const unconfirmed: Promise<void>[] = [];
  const publish = (events: RunnerEvent[]): void => {
    const confirm = emit(events);
    confirm.catch(() => {});
    unconfirmed.push(confirm);
  };
  const confirmed = async (): Promise<void> => {
    await Promise.all(unconfirmed.splice(0));
  };
  const finishJob = (jobId: string, status: JobStatus, exitCode: number | null) =>
    emit([{ type: 'job.finished', jobId, status, exitCode, ...base() }]);

  const jobs: { stage: PlannedStage; job: PlannedJob }[] = job.stages.flatMap((stage) =>
    stage.jobs.map((planned) => ({ stage, job: planned })),
  );
  let status: BuildStatus = 'PASSED';
  let reason: string | null = null;
  /** A job failed in a stage that may not fail: the rest are SKIPPED. */
  let blocked = false;
  /** Set once a stop has actually ended a job; a stop after the last job changes nothing. */
  let stoppedBy: StopReason | null = null;
  let session: DriverSession | null = null;
  let next = 0;
  let objectsPlaced = false;

  try {
    // The start is confirmed while the environment is made and the first job starts.
    if (!opts.announced)
      publish([{ type: 'build.started', runner: opts.runnerName, waiting: false, ...base() }]);

    try {
      session = await createSession(driver, job, env, stopper.signal, opts.createTimeoutMs);
    } catch (error) {
      await confirmed();
      if (stopped() === null) {
        reason =
          error instanceof DriverError
            ? error.message
            : `cannot create the ${driver.type} environment: ${(error as Error).message}`;
        status = 'FAILED';
        blocked = true;
        const first = jobs[0];
        if (first) {
          await emit([{ type: 'job.started', jobId: first.job.id, ...base() }]);
          await emitChunk(first.job.id, 1, [`kiln: ${reason}`]);
          await finishJob(first.job.id, 'FAILED', null);
          next = 1;
        }
      }
    }

    for (; next < jobs.length; next++) {
      const { stage, job: planned } = jobs[next]!;
      // Once the build has failed, a later kill or shutdown changes nothing: the rest is SKIPPED.
      if (blocked) {
        await finishJob(planned.id, 'SKIPPED', null);
        continue;
      }
      const stop = stopped();
      if (stop === 'shutdown') {
        stoppedBy = stop;
        break;
      }
      if (stop !== null || session === null) {
        const final = stop ?? 'killed';
        stoppedBy = final;
        await finishJob(planned.id, finalStatusOfStop(final), null);
        continue;
      }

      publish([{ type: 'job.started', jobId: planned.id, ...base() }]);
      const batcher = createLogBatcher({
        masker,
        sink: (batch) => emitChunk(planned.id, batch.firstLine, batch.lines),
        onError: () => stopper.abort('shutdown'),
      });
      // Kiln's own lines start on a line of their own, also after output without a final newline.
      let atLineStart = true;
      const note = (line: string) => {
        batcher.write(`${atLineStart ? '' : '\n'}kiln: ${line}\n`);
        atLineStart = true;
      };
      if (!objectsPlaced) {
        objectsPlaced = true;
        if (opts.objects) await placeObjects(session, driver.type, opts.objects, note, stopper.signal);
      }
      let result: JobResult | null = null;
      const jobKeys = planned.checkout ? checkoutKeys : keys;
      try {
        result = await session.run({
          name: planned.name,
          script: jobKeys.preamble + jobScript(planned.commands),
          env: { ...env, ...jobKeys.env, KILN_JOB: planned.name },
          signal: stopper.signal,
          output: (data) => {
            if (data.length > 0) atLineStart = data[data.length - 1] === 0x0a;
            batcher.write(data);
          },
        });
      } catch (error) {
        batcher.write(
          `\nkiln: the ${driver.type} driver could not run the job: ${(error as Error).message}\n`,
        );
      }
      if (result && !result.aborted && stopped() === null && planned.artifacts.length > 0) {
        await collectArtifacts(session, driver.type, planned, opts.artifacts, note, stopper.signal);
      }
      await batcher.end();
      await confirmed();

      let jobStatus: JobStatus;
      if (result?.aborted) {
        const stop = stopped() ?? 'killed';
        stoppedBy = stop;
        if (stop === 'shutdown') break;
        jobStatus = finalStatusOfStop(stop);
      } else {
        jobStatus = result?.exitCode === 0 ? 'PASSED' : 'FAILED';
      }
      await finishJob(planned.id, jobStatus, result?.exitCode ?? null);
      status = worstBuildStatus(status, buildStatusOfJob(jobStatus, stage.canFail));
      if (jobStatus === 'FAILED' && !stage.canFail) blocked = true;
    }

    if (stoppedBy === 'shutdown') {
      return { status: 'QUEUED', lastSeq: seq, reason: 'the runner shut down' };
    }
    if (stoppedBy !== null) {
      status = worstBuildStatus(status, finalStatusOfStop(stoppedBy));
      reason ??= stopMessage(stoppedBy, job.timeoutMs);
    }
    await confirmed();
    await emit([{ type: 'build.finished', status, lastSeq: seq, reason, ...base() }]);
    return { status, lastSeq: seq, reason };
  } catch (error) {
    if (emitFailure !== null && !(error instanceof EmitError)) {
      throw new EmitError(`cannot publish the build's events: ${(emitFailure as Error).message}`, {
        cause: emitFailure,
      });
    }
    throw error;
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener('abort', forward);
    if (session) {
      await session.destroy().catch((error: unknown) => {
        opts.logger?.warn({ err: error, buildId: job.buildId }, 'could not destroy the driver environment');
      });
    }
  }
}

/**
 * How each job gets the build's SSH keys, with every driver: a preamble run first in the job's own
 * shell writes `$HOME/.ssh/<name>` (0600) and `$HOME/.ssh/config` (StrictHostKeyChecking no,
 * UserKnownHostsFile /dev/null, an IdentityFile per key, then each key's config lines). It runs in
 * every job, not once, because a driver need not keep HOME between jobs (docker runs each job in a
 * fresh container; only the workspace persists).
 *
 * The key material travels in the job's environment (`KILN_SSH_*`, unset by the preamble before the
 * job's commands run), never in the script, which drivers write to disk. The preamble prints nothing;
 * when it fails, the job fails with one line that names the directory, not the keys. `secrets` are
 * the keys' lines for the masker. `GIT_SSH_COMMAND` points git at the generated config, because ssh
 * reads the passwd home's config, not $HOME's (the os driver gives each build its own HOME).
 *
 * With `removeAtExit` (the checkout job, which alone gets the repository's key) the files are removed
 * when the job's shell exits, so that later jobs, which may run code that must not see that key,
 * find nothing where a driver keeps HOME between jobs.
 */
export function sshKeysSetup(
  keys: NonNullable<BuildJob['keys']>,
  buildEnv: Record<string, string>,
  opts: { removeAtExit?: boolean } = {},
): { preamble: string; env: Record<string, string>; secrets: string[] } {
  if (keys.length === 0) return { preamble: '', env: {}, secrets: [] };
  const env: Record<string, string> = {};
  const steps = ['umask 077', 'mkdir -p "$HOME/.ssh"', 'chmod 700 "$HOME/.ssh"'];
  const files: string[] = [];
  keys.forEach((key, i) => {
    // The api normalises names; a name that would leave ~/.ssh is normalised again here.
    const name = /^\.+$/.test(key.name) ? '_' : key.name.replace(/[^a-zA-Z0-9_.-]/g, '_');
    const variable = `KILN_SSH_KEY_${i + 1}`;
    env[variable] = key.privateKey.replace(/\r\n?/g, '\n').replace(/\n+$/, '');
    steps.push(`printf '%s\\n' "$${variable}" > "$HOME/.ssh/${name}"`, `chmod 600 "$HOME/.ssh/${name}"`);
    files.push(`"$HOME/.ssh/${name}"`);
  });
  env.KILN_SSH_CONFIG = keys
    .map((key) => key.config.trim())
    .filter(Boolean)
    .join('\n\n');
  steps.push(
    `{ printf 'StrictHostKeyChecking no\\nUserKnownHostsFile /dev/null\\n' && printf 'IdentityFile "%s"\\n' ${files.join(' ')} && printf '\\n%s\\n' "$KILN_SSH_CONFIG"; } > "$HOME/.ssh/config"`,
  );
  const preamble = [
    ...(opts.removeAtExit ? [`trap 'rm -f ${files.join(' ')} "$HOME/.ssh/config"' EXIT`] : []),
    `( ${steps.join(' &&\n  ')} ) >/dev/null 2>&1 || { echo "kiln: cannot place the build's SSH keys in $HOME/.ssh"; exit 1; }`,
    `unset ${Object.keys(env).join(' ')}`,
    '',
  ].join('\n');
  if (!('GIT_SSH_COMMAND' in buildEnv)) env.GIT_SSH_COMMAND = 'ssh -F "$HOME/.ssh/config"';
  const secrets = keys.flatMap((key) =>
    key.privateKey.split(/\r?\n/).filter((line) => line.trim().length >= 6 && !line.startsWith('-----')),
  );
  return { preamble, env, secrets };
}

const messageOf = (error: unknown) => (error as Error)?.message ?? String(error);

async function placeObjects(
  session: DriverSession,
  driverType: string,
  source: ObjectSource,
  note: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  for (const item of source.items) {
    if (signal.aborted) return;
    if (!session.putFile) {
      note(`the ${driverType} driver cannot place objects; object "${item.name}" skipped`);
      continue;
    }
    let opened: Awaited<ReturnType<ObjectSource['open']>> = null;
    try {
      opened = await source.open(item, signal);
      if (!opened) {
        note(`object "${item.name}" not found, skipped`);
        continue;
      }
      await session.putFile(item.dest, opened.content, opened.size, 0o644);
      note(`object "${item.name}" placed at ${item.dest} (${opened.size} bytes)`);
    } catch (error) {
      if (signal.aborted) return;
      note(`could not place object "${item.name}" at ${item.dest}: ${messageOf(error)}`);
    } finally {
      opened?.content.destroy();
    }
  }
}

/** The first `size` bytes of `content`; stops reading there. */
async function* firstBytes(content: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let left = size;
  if (left <= 0) return;
  for await (const chunk of content) {
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    yield part;
    if (left <= 0) return;
  }
}

async function collectArtifacts(
  session: DriverSession,
  driverType: string,
  planned: PlannedJob,
  sink: ArtifactSink | undefined,
  note: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  if (!sink) {
    note('artifacts are not collected for this build (no artifact store)');
    return;
  }
  if (!session.files) {
    note(`the ${driverType} driver cannot collect artifacts; skipped`);
    return;
  }
  const names = new Set<string>();
  for (const spec of planned.artifacts) {
    let matched = 0;
    try {
      for await (const file of session.files(spec.src)) {
        if (signal.aborted) return;
        matched++;
        if ('skipped' in file) {
          note(`artifact ${file.path}: skipped, ${file.skipped}`);
          continue;
        }
        const name = artifactFileName(artifactName(spec, file.path));
        if (names.has(name)) {
          note(`artifact "${name}" (${file.path}) has the name of one collected before; skipped`);
          continue;
        }
        names.add(name);
        const size = Math.min(file.size, sink.maxBytes);
        if (file.size > sink.maxBytes) {
          note(`artifact "${name}" is ${file.size} bytes, over the limit of ${sink.maxBytes}: truncated`);
        }
        try {
          await sink.store(planned.id, name, firstBytes(file.content, size), size, signal);
          note(`artifact "${name}" collected from ${file.path} (${size} bytes)`);
        } catch (error) {
          if (signal.aborted) return;
          note(`could not store artifact "${name}": ${messageOf(error)}`);
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      note(`could not collect artifacts from ${spec.src}: ${messageOf(error)}`);
      continue;
    }
    if (matched === 0) note(`artifact ${spec.src} matched no file, skipped`);
  }
}

/** Makes the driver's environment within `timeoutMs`; a session made too late is destroyed. */
async function createSession(
  driver: Driver,
  job: BuildJob,
  env: Record<string, string>,
  signal: AbortSignal,
  timeoutMs = DEFAULT_CREATE_TIMEOUT_MS,
): Promise<DriverSession> {
  const { type: _type, ...options } = job.driver;
  const pending = driver.create({ env, signal }, options);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DriverError(
            `the ${driver.type} environment took longer than ${formatDuration(timeoutMs)} to create`,
          ),
        ),
      Math.min(timeoutMs, MAX_TIMER_MS),
    );
    onAbort = () => reject(new Error('stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([pending, limit]);
  } catch (error) {
    pending.then((late) => late.destroy()).catch(() => undefined);
    throw error;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * One interface for every driver (os, docker, qemu). A driver makes an environment for one build
 * (`create`), runs each job's script in it in turn (`run`; jobs share the environment, so files
 * persist between jobs and stages), and always destroys it afterwards, also after a kill or timeout.
 *
 * Cancellation: `signal` aborts a running job; the driver must stop the job's whole process tree
 * (or container, or VM process) within a second and resolve `run` with `{ aborted: true }`.
 * Errors: a job that cannot be started (missing image, spawn failure) resolves `run` with a non-zero
 * exitCode after writing the reason to `output`; `create` throws a DriverError with a message for
 * the log when the environment cannot be made.
 */

export interface DriverEnvironment {
  /** Variables of the build, in order; later keys override earlier ones. */
  env: Record<string, string>;
  signal: AbortSignal;
}

export interface JobRun {
  name: string;
  /** The job's commands joined into one POSIX shell script, run with `sh -e`. */
  script: string;
  env: Record<string, string>;
  signal: AbortSignal;
  /** stdout and stderr, interleaved as written. */
  output: (data: Buffer) => void;
}

export interface JobResult {
  exitCode: number;
  /** True when `signal` stopped the job. */
  aborted: boolean;
}

/** A regular file of a build's environment, as `DriverSession.files` finds it. */
export interface EnvironmentFile {
  /** Relative to the workspace, POSIX, e.g. `dist/app.tgz`. */
  path: string;
  size: number;
  /** Its bytes; read them (or leave them) before asking for the next file. */
  content: AsyncIterable<Buffer>;
}

export interface DriverSession {
  /** A human-readable description for the log, e.g. the workspace path or container image. */
  readonly description: string;
  run(job: JobRun): Promise<JobResult>;
  destroy(): Promise<void>;
  /**
   * Writes `size` bytes of `content` to `path`, creating its directories: a path relative to the
   * workspace, or absolute (the docker driver: inside the workspace; the os driver: under the
   * workspace, which stands for the root). Places the manifest's objects before the first job.
   * Rejects with a DriverError for a path that leaves the workspace. Optional: a driver without it
   * cannot place objects (the build goes on, with a log line).
   */
  putFile?(
    path: string,
    content: AsyncIterable<Buffer | Uint8Array>,
    size: number,
    mode?: number,
  ): Promise<void>;
  /**
   * The regular files matching `pattern` (a path relative to the workspace, or absolute as for
   * putFile, with the globs of runner/glob.ts), in archive or directory order; none when nothing
   * matches. Symbolic links are not followed. Collects a job's artifacts. Optional, like putFile.
   */
  files?(pattern: string): AsyncIterable<EnvironmentFile>;
}

export interface Driver {
  readonly type: string;
  create(env: DriverEnvironment, options: Record<string, string>): Promise<DriverSession>;
}

export class DriverError extends Error {
  override name = 'DriverError';
}

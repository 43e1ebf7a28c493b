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

/** A path `DriverSession.files` matched but did not read, and why. */
export interface SkippedFile {
  /** Relative to the workspace, as matched (or the pattern itself, when it leaves the workspace). */
  path: string;
  /** Words for the log after "skipped, ", e.g. OUTSIDE_WORKSPACE. */
  skipped: string;
}

/**
 * Why a path is refused when it resolves outside the workspace. No path of putFile or files may:
 * `.` and `..` are taken as written, before any link, and a path that climbs out of the workspace
 * with them is refused; then symbolic links are followed as the system follows them, and a path
 * that a link leads out of the workspace is refused too. A driver resolves links where the files
 * are and reads or writes what it resolved, so nothing outside the workspace (on the runner's
 * host, or in the build's container) is ever read or written through a link the build made.
 */
export const OUTSIDE_WORKSPACE = 'it resolves outside the workspace';

/** True when `path` is `root` or lies under it; both absolute, POSIX and without `.` or `..`. */
export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : `${root}/`);
}

/** `path` relative to the root it is under, `.` and `..` taken as written; null when it climbs out. */
export function lexicallyWithin(path: string): string | null {
  const kept: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment !== '..') kept.push(segment);
    else if (kept.pop() === undefined) return null;
  }
  return kept.join('/');
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
   * Rejects with a DriverError, writing nothing, for a path that resolves outside the workspace
   * (see OUTSIDE_WORKSPACE). Optional: a driver without it cannot place objects (the build goes
   * on, with a log line).
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
   * matches. A link the pattern names or matches is followed when it resolves inside the workspace
   * and skipped when it resolves outside (see OUTSIDE_WORKSPACE), as is the pattern itself when
   * it leaves the workspace; a directory walk does not enter linked directories. Collects a job's
   * artifacts. Optional, like putFile.
   */
  files?(pattern: string): AsyncIterable<EnvironmentFile | SkippedFile>;
}

export interface Driver {
  readonly type: string;
  create(env: DriverEnvironment, options: Record<string, string>): Promise<DriverSession>;
}

export class DriverError extends Error {
  override name = 'DriverError';
}

/**
 * Build and job statuses: closed unions, their order of precedence and the predicates every
 * process uses. A build's status is the worst of its jobs' statuses, in the order below.
 */

export const BUILD_STATUSES = [
  /** Submitted, waiting for a runner to take it. */
  'QUEUED',
  /** A runner took it and is running its jobs. */
  'RUNNING',
  /** Every job passed. */
  'PASSED',
  /** A job failed in a stage listed in `allow_failures`; everything else passed. */
  'PASSED_WITH_FAILURES',
  /** A job failed in a stage not allowed to fail, or the runner could not run the build. */
  'FAILED',
  /** Someone killed it. */
  'KILLED',
  /** It ran past its `timeout`. */
  'TIMED_OUT',
] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];

export const JOB_STATUSES = [
  /** Waiting for its turn. */
  'QUEUED',
  /** Its script is running. */
  'RUNNING',
  /** Its script exited 0. */
  'PASSED',
  /** Its script exited non-zero, or the driver could not run it. */
  'FAILED',
  /** It never ran: an earlier job failed the build, or the build was killed or timed out first. */
  'SKIPPED',
  /**
   * The build was killed while this job was running. (A runner also reports it for the jobs after
   * that one; the api stores those, which never started, SKIPPED.)
   */
  'KILLED',
  /** The build's timeout ran out while this job was running (later jobs: as for KILLED). */
  'TIMED_OUT',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const FINAL_BUILD: ReadonlySet<BuildStatus> = new Set([
  'PASSED',
  'PASSED_WITH_FAILURES',
  'FAILED',
  'KILLED',
  'TIMED_OUT',
]);
const FINAL_JOB: ReadonlySet<JobStatus> = new Set(['PASSED', 'FAILED', 'SKIPPED', 'KILLED', 'TIMED_OUT']);

export const isFinalBuild = (status: BuildStatus): boolean => FINAL_BUILD.has(status);
export const isFinalJob = (status: JobStatus): boolean => FINAL_JOB.has(status);
export const isRunningBuild = (status: BuildStatus): boolean => status === 'RUNNING';

/** The worse of two build statuses (the later one in BUILD_STATUSES). */
export function worstBuildStatus(a: BuildStatus, b: BuildStatus): BuildStatus {
  return BUILD_STATUSES.indexOf(a) >= BUILD_STATUSES.indexOf(b) ? a : b;
}

/**
 * What a finished job means for its build, given whether its stage may fail.
 * SKIPPED jobs say nothing about the build: the job that caused the skip already did.
 */
export function buildStatusOfJob(status: JobStatus, stageCanFail: boolean): BuildStatus {
  switch (status) {
    case 'QUEUED':
      return 'QUEUED';
    case 'RUNNING':
      return 'RUNNING';
    case 'PASSED':
    case 'SKIPPED':
      return 'PASSED';
    case 'FAILED':
      return stageCanFail ? 'PASSED_WITH_FAILURES' : 'FAILED';
    case 'KILLED':
      return 'KILLED';
    case 'TIMED_OUT':
      return 'TIMED_OUT';
  }
}

/** Why a runner ended a build early; each maps to one final status. */
export type StopReason =
  /** A person or integration called killBuild: the user's choice. */
  | 'killed'
  /** The manifest's timeout ran out: the user's limit. */
  | 'timeout'
  /** The runner is shutting down (SIGTERM) and hands the build back: the system's doing, not final. */
  | 'shutdown';

export function finalStatusOfStop(reason: Exclude<StopReason, 'shutdown'>): 'KILLED' | 'TIMED_OUT' {
  switch (reason) {
    case 'killed':
      return 'KILLED';
    case 'timeout':
      return 'TIMED_OUT';
  }
}

/**
 * Build and job statuses as the API names them, and the predicates the console needs, in one place.
 */
export type BuildStatus =
  | 'QUEUED'
  | 'RUNNING'
  | 'PASSED'
  | 'PASSED_WITH_FAILURES'
  | 'FAILED'
  | 'KILLED'
  | 'TIMED_OUT';
export type JobStatus = 'QUEUED' | 'RUNNING' | 'PASSED' | 'FAILED' | 'SKIPPED' | 'KILLED' | 'TIMED_OUT';

export const BUILD_STATUSES: readonly BuildStatus[] = [
  'QUEUED',
  'RUNNING',
  'PASSED',
  'PASSED_WITH_FAILURES',
  'FAILED',
  'KILLED',
  'TIMED_OUT',
];

/** A final status never changes again: nothing left to watch. */
export const isFinal = (s: BuildStatus | JobStatus): boolean => s !== 'QUEUED' && s !== 'RUNNING';

/** How a status reads to a person. */
export function statusLabel(s: BuildStatus | JobStatus): string {
  switch (s) {
    case 'QUEUED':
      return 'Queued';
    case 'RUNNING':
      return 'Running';
    case 'PASSED':
      return 'Passed';
    case 'PASSED_WITH_FAILURES':
      return 'Passed with failures';
    case 'FAILED':
      return 'Failed';
    case 'KILLED':
      return 'Killed';
    case 'TIMED_OUT':
      return 'Timed out';
    case 'SKIPPED':
      return 'Skipped';
  }
}

/** The colour family of a status, for CSS. */
export function statusTone(s: BuildStatus | JobStatus): 'ok' | 'warn' | 'bad' | 'live' | 'idle' {
  switch (s) {
    case 'PASSED':
      return 'ok';
    case 'PASSED_WITH_FAILURES':
      return 'warn';
    case 'FAILED':
    case 'KILLED':
    case 'TIMED_OUT':
      return 'bad';
    case 'RUNNING':
      return 'live';
    case 'QUEUED':
    case 'SKIPPED':
      return 'idle';
  }
}

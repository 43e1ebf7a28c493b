/**
 * Build and job statuses as the schema names them (its BuildStatus and JobStatus enums, read by
 * gql.tada from schema.graphql), and what the console makes of them. A status the schema gains or
 * loses fails the typecheck here until the console knows how to show it.
 */
import type { graphql } from '../graphql.ts';

export type BuildStatus = ReturnType<typeof graphql.scalar<'BuildStatus'>>;
export type JobStatus = ReturnType<typeof graphql.scalar<'JobStatus'>>;

/** How each build status reads to a person, in the API's order of precedence. */
const BUILD_LABELS = {
  QUEUED: 'Queued',
  RUNNING: 'Running',
  PASSED: 'Passed',
  PASSED_WITH_FAILURES: 'Passed with failures',
  FAILED: 'Failed',
  KILLED: 'Killed',
  TIMED_OUT: 'Timed out',
} as const satisfies { readonly [S in BuildStatus]: string };

const LABELS: { readonly [S in BuildStatus | JobStatus]: string } = { ...BUILD_LABELS, SKIPPED: 'Skipped' };

/** Every build status, for filters. */
export const BUILD_STATUSES = Object.keys(BUILD_LABELS) as BuildStatus[];

/** A final status never changes again: nothing left to watch. */
export const isFinal = (s: BuildStatus | JobStatus): boolean => s !== 'QUEUED' && s !== 'RUNNING';

/** How a status reads to a person. */
export const statusLabel = (s: BuildStatus | JobStatus): string => LABELS[s];

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

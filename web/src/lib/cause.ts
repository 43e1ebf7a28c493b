/** A build's cause (the schema's BuildCause) as people read it: short refs, short shas, names. */
import type { graphql } from '../graphql.ts';

type TriggerKind = ReturnType<typeof graphql.scalar<'TriggerKind'>>;

const KIND_WORDS = {
  MANUAL: 'manual',
  PUSH: 'push',
  PULL: 'pull request',
  SCHEDULE: 'schedule',
} as const satisfies { readonly [K in TriggerKind]: string };

export const kindWords = (kind: TriggerKind): string => KIND_WORDS[kind];

/** The 7 hex digits people quote a commit by. */
export const shortSha = (sha: string): string => sha.slice(0, 7);

/** `refs/heads/main` → `main`, `refs/tags/v1.2` → `v1.2`, `refs/pull/7/head` → `#7`; others as given. */
export function shortRef(ref: string): string {
  const pull = /^refs\/(?:pull|merge-requests)\/(\d+)\//.exec(ref);
  if (pull) return `#${pull[1]}`;
  return ref.replace(/^refs\/(?:heads|tags)\//, '');
}

/** The subject of a commit message. */
export const firstLine = (message: string): string => message.split('\n')[0]!.trim();

/** `Ada Lovelace <ada@example.com>` → `Ada Lovelace`; a bare name or address as given. */
export const authorName = (author: string): string => author.replace(/\s*<[^>]*>\s*$/, '') || author;

/**
 * One line for lists: `push main@abc1234`, `pull request #7@abc1234`, `manual`. A pull request is
 * named by its number rather than its ref.
 */
export function causeSummary(cause: {
  kind: TriggerKind;
  ref?: string | null;
  sha?: string | null;
  pullRequest?: number | null;
}): string {
  const where = cause.pullRequest != null ? `#${cause.pullRequest}` : cause.ref ? shortRef(cause.ref) : '';
  const at = cause.sha ? `@${shortSha(cause.sha)}` : '';
  return [kindWords(cause.kind), `${where}${at}`].filter(Boolean).join(' ');
}

/**
 * Reading a build's stored log: chunks after a cursor, in (attempt, seq) order. The cursor is opaque
 * to clients (`log:<attempt>:<seq>`, base64url); one that does not decode is refused, never read as
 * "from the start".
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { BuildStatus } from '../../../runner/contract/status.ts';

/** A page of a build's log: chunks after a cursor in (attempt, seq) order. */
export interface StoredChunk {
  buildId: string;
  attempt: number;
  seq: number;
  jobId: string;
  firstLine: number;
  lines: string[];
}

export interface LogCursor {
  attempt: number;
  seq: number;
}

export const encodeLogCursor = (c: LogCursor): string =>
  Buffer.from(`log:${c.attempt}:${c.seq}`).toString('base64url');

export type DecodedCursor = { ok: true; cursor: LogCursor | null } | { ok: false; reason: string };

/** No cursor (null: from the start), a cursor, or why `text` is not one. */
export function decodeLogCursor(text: string | null | undefined): DecodedCursor {
  if (text === null || text === undefined) return { ok: true, cursor: null };
  const m = /^log:(\d{1,9}):(\d{1,12})$/.exec(Buffer.from(text, 'base64url').toString());
  if (!m || text.length > 64) {
    return { ok: false, reason: 'not a log cursor: pass the `cursor` of a LogChunk, or nothing to start' };
  }
  return { ok: true, cursor: { attempt: Number(m[1]), seq: Number(m[2]) } };
}

const CHUNKS_AFTER = `select attempt, seq, job_id, first_line, content from log_chunks
  where build_id = ? and (attempt, seq) > (?, ?) order by attempt, seq limit ?`;

type ChunkRow = { attempt: number; seq: number; job_id: string; first_line: number; content: string };

const chunkOf = (buildId: string, r: ChunkRow): StoredChunk => ({
  buildId,
  attempt: r.attempt,
  seq: r.seq,
  jobId: r.job_id,
  firstLine: r.first_line,
  lines: r.content.split('\n'),
});

const params = (buildId: string, after: LogCursor | null, limit: number) => [
  buildId,
  after?.attempt ?? 0,
  after?.seq ?? 0,
  limit,
];

export async function logAfter(
  em: EntityManager,
  buildId: string,
  after: LogCursor | null,
  limit: number,
): Promise<StoredChunk[]> {
  const rows = await em.execute<ChunkRow[]>(CHUNKS_AFTER, params(buildId, after, limit));
  return rows.map((r) => chunkOf(buildId, r));
}

export interface LogState {
  status: BuildStatus;
  attempt: number;
  lastSeq: number | null;
}

/**
 * `logAfter`, and the build's status, attempt and last chunk as they are just after that read:
 * two statements in one round trip (every log subscription starts and ends with this).
 */
export async function logAfterWithState(
  em: EntityManager,
  buildId: string,
  after: LogCursor | null,
  limit: number,
): Promise<{ chunks: StoredChunk[]; build: LogState | null }> {
  const format = (sql: string, values: unknown[]) => em.getPlatform().formatQuery(sql, values);
  const results = (await em
    .getKnex()
    .raw(
      [
        format(CHUNKS_AFTER, params(buildId, after, limit)),
        format('select status, attempt, last_seq from builds where id = ?', [buildId]),
      ].join(';\n'),
    )) as unknown as { rows: Record<string, unknown>[] }[];
  const chunks = (results[0]!.rows as ChunkRow[]).map((r) => chunkOf(buildId, r));
  const [row] = results[1]!.rows as { status: BuildStatus; attempt: number; last_seq: number | null }[];
  return { chunks, build: row ? { status: row.status, attempt: row.attempt, lastSeq: row.last_seq } : null };
}

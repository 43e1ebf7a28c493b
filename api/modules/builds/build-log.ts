/**
 * Reading a build's stored log: the chunks of the attempt that holds the build, after a cursor. The
 * cursor is opaque to clients (`log:<attempt>:<seq>`, base64url); one that does not decode is
 * refused, never read as "from the start". Earlier attempts' chunks stay stored but are not read:
 * a reader sees one attempt's log, the current one, and is told when it replaces an earlier one.
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
  /** The first chunk of an attempt that replaces lines of an earlier one the reader had. */
  restarted?: boolean;
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

type ChunkRow = { attempt: number; seq: number; job_id: string; first_line: number; content: string };

const chunkOf = (buildId: string, r: ChunkRow): StoredChunk => ({
  buildId,
  attempt: r.attempt,
  seq: r.seq,
  jobId: r.job_id,
  firstLine: r.first_line,
  lines: r.content.split('\n'),
});

export interface LogState {
  status: BuildStatus;
  /** The run that holds the build: its attempt (0 while queued) and lease. */
  attempt: number;
  lease: string | null;
  /** The seq of the current attempt's last chunk, once the build is finished. */
  lastSeq: number | null;
}

export interface CurrentLog {
  build: LogState | null;
  /** Chunks of the build's current attempt after the cursor, in seq order. */
  chunks: StoredChunk[];
  /**
   * The cursor was of an earlier attempt than the current one: these chunks replace the lines it
   * stood for, from the current attempt's first line.
   */
  restarted: boolean;
}

/**
 * The log of the attempt that holds the build now, after `after`: the build's state and up to `limit`
 * chunks in one statement (so both are of the same moment). A cursor of another attempt reads the
 * current attempt from its start, and says so (`restarted`).
 */
export async function readCurrentLog(
  em: EntityManager,
  buildId: string,
  after: LogCursor | null,
  limit: number,
): Promise<CurrentLog> {
  const rows = await em.execute<
    (Partial<ChunkRow> & {
      status: BuildStatus;
      build_attempt: number;
      lease: string | null;
      last_seq: number | null;
    })[]
  >(
    `select b.status, b.attempt as build_attempt, b.lease, b.last_seq,
       l.attempt, l.seq, l.job_id, l.first_line, l.content
     from builds b left join lateral (
       select attempt, seq, job_id, first_line, content from log_chunks c
       where c.build_id = b.id and c.attempt = b.attempt
         and c.seq > case when b.attempt = ? then ? else 0 end
       order by c.seq limit ?) l on true
     where b.id = ?`,
    [after?.attempt ?? 0, after?.seq ?? 0, limit, buildId],
  );
  const [first] = rows;
  if (!first) return { build: null, chunks: [], restarted: false };
  const build: LogState = {
    status: first.status,
    attempt: first.build_attempt,
    lease: first.lease,
    lastSeq: first.last_seq,
  };
  const chunks = rows
    .filter((r) => r.seq !== null && r.seq !== undefined)
    .map((r) => chunkOf(buildId, r as ChunkRow));
  const restarted = after !== null && after.attempt !== build.attempt && (after.attempt > 0 || after.seq > 0);
  if (restarted && chunks[0]) chunks[0].restarted = true;
  return { build, chunks, restarted };
}

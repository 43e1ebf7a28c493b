/**
 * The `buildLog` subscription: the stored chunks after a cursor, then the live ones, in (attempt, seq)
 * order without a gap or a repeat, on any replica; it ends once the build is finished and every chunk
 * up to its last one has been delivered.
 *
 * It subscribes to the pubsub first and only then reads the database, so a chunk published in
 * between is both buffered and read, and dropped the second time by the cursor. The chunks the pubsub
 * saw just before (`recentLog`) come first: a client that subscribes right after submitting gets the
 * first lines without waiting for them to be stored, or for a database read; a live chunk that
 * directly follows the cursor goes out while the database is still being read. A live chunk that is
 * not the next one (it arrived before an earlier one was stored) sends it back to the database; if the
 * database does not have the missing chunk yet, it looks again shortly: the ingester stores it soon.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { LogChunkEvent } from '../../../runner/contract/messages.ts';
import { isFinalBuild } from '../../../runner/contract/status.ts';
import type { PubSub, PubSubEvent } from '../../events/pubsub.ts';
import { type LogCursor, logAfterWithState, type StoredChunk } from './build-log.ts';

const PAGE = 500;
/** How long to wait for a missing chunk to be stored before reading the database again. */
const GAP_RETRY_MS = 100;
/** Reads the build again this often even when nothing is published, in case a notification was lost. */
const IDLE_CHECK_MS = 2_000;
/**
 * A chunk published just before the subscription began, and stored just after its first read, is in
 * neither: read again a few times right after starting, by when the ingester has stored it.
 */
const EARLY_CHECKS = 3;

interface StoredRead {
  chunks: StoredChunk[];
  /** A full page: more may follow. */
  more: boolean;
  /** The build is gone. */
  gone: boolean;
  /** The build's last chunk, when the build is finished. */
  last: LogCursor | null;
}

const after = (c: { attempt: number; seq: number }, cursor: LogCursor) =>
  c.attempt > cursor.attempt || (c.attempt === cursor.attempt && c.seq > cursor.seq);

const isNext = (c: { attempt: number; seq: number }, cursor: LogCursor) =>
  (c.attempt === cursor.attempt && c.seq === cursor.seq + 1) || (c.attempt > cursor.attempt && c.seq === 1);

function sleep(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

export async function* streamLog(opts: {
  orm: MikroORM;
  pubsub: PubSub;
  buildId: string;
  after: LogCursor | null;
  signal?: AbortSignal;
}): AsyncGenerator<StoredChunk> {
  const { orm, pubsub, buildId } = opts;
  const live = pubsub.subscribe([`build:${buildId}:log`, `build:${buildId}`], opts.signal);
  const replayed = pubsub.recentLog(buildId);
  let cursor: LogCursor = opts.after ?? { attempt: 0, seq: 0 };
  let pending: Promise<IteratorResult<PubSubEvent>> | null = null;
  const toStored = (chunk: LogChunkEvent): StoredChunk => ({
    buildId,
    attempt: chunk.attempt,
    seq: chunk.seq,
    jobId: chunk.jobId,
    firstLine: chunk.firstLine,
    lines: chunk.lines,
  });
  /** The stored chunks after `from` (a page), and once they are all read, the build's end if it has one. */
  const readStored = async (from: LogCursor): Promise<StoredRead> => {
    const { chunks, build } = await logAfterWithState(orm.em.fork(), buildId, from, PAGE);
    if (chunks.length === PAGE) return { chunks, more: true, gone: false, last: null };
    if (!build) return { chunks, more: false, gone: true, last: null };
    const last =
      isFinalBuild(build.status) && build.lastSeq !== null
        ? { attempt: build.attempt, seq: build.lastSeq }
        : null;
    return { chunks, more: false, gone: false, last };
  };
  try {
    let needDb = true;
    /** A read of the database in flight: live chunks that follow the cursor go out meanwhile. */
    let reading: Promise<StoredRead> | null = null;
    /** A chunk known to exist after the cursor that the database did not have yet. */
    let missing: LogCursor | null = null;
    let early = EARLY_CHECKS;
    for (;;) {
      // A replayed chunk that directly follows the cursor goes out before any database read.
      const head = replayed[0];
      if (head && (!after(head, cursor) || isNext(head, cursor))) {
        replayed.shift();
        if (!after(head, cursor)) continue;
        const stored = toStored(head);
        yield stored;
        cursor = stored;
        continue;
      }
      if (needDb && !reading) {
        needDb = false;
        reading = readStored(cursor);
        // Awaited below; marked handled for when the stream ends before it settles.
        reading.catch(() => {});
      }
      if (replayed.length > 0) {
        // After a gap: the database has (or soon has) them and the chunks before them.
        if (!missing || after(replayed.at(-1)!, missing)) missing = replayed.at(-1)!;
        replayed.length = 0;
      }
      if (missing && !after(missing, cursor)) missing = null;
      pending ??= live.next();
      const result: IteratorResult<PubSubEvent> | StoredRead | 'timeout' = await Promise.race([
        pending,
        ...(reading ? [reading] : [sleep(missing || early > 0 ? GAP_RETRY_MS : IDLE_CHECK_MS)]),
      ]);
      if (result === 'timeout') {
        early--;
        needDb = true;
        continue;
      }
      if ('chunks' in result) {
        reading = null;
        if (result.gone) return;
        // Chunks the live stream delivered meanwhile are behind the cursor already.
        for (const chunk of result.chunks) {
          if (!after(chunk, cursor)) continue;
          yield chunk;
          cursor = chunk;
        }
        if (result.more) {
          needDb = true;
          continue;
        }
        if (result.last) {
          // Done when the cursor reached the last chunk, or the last attempt wrote nothing.
          if (result.last.seq === 0 || !after(result.last, cursor)) return;
          missing = result.last;
        }
        continue;
      }
      pending = null;
      if (result.done) return;
      const event: PubSubEvent = result.value;
      // Only an end needs the database (for the number of the last chunk); reading it on every
      // status change would only add reads while the build runs.
      if (event.topic === 'build') {
        if (isFinalBuild(event.update.status)) needDb = true;
        continue;
      }
      const chunk: LogChunkEvent = event.chunk;
      if (!after(chunk, cursor)) continue;
      if (!isNext(chunk, cursor)) {
        missing = chunk;
        needDb = true;
        continue;
      }
      const stored = toStored(chunk);
      yield stored;
      cursor = stored;
    }
  } finally {
    await live.return?.();
  }
}

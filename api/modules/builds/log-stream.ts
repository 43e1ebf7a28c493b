/**
 * The `buildLog` subscription: the log of the attempt that holds the build, stored chunks after a
 * cursor and then live ones, in seq order without a gap or a repeat, on any replica; it ends once the
 * build is finished and every chunk up to its last one has been delivered.
 *
 * Which run counts: the one holding the build (its attempt and lease), as the database says, or a
 * `build.updated` newer than the last read; before either is known, the run of attempt 1 (a first
 * delivery starts without asking, so it is the one that takes the build). A live chunk goes out only when it is of that run and
 * directly follows the cursor, so a run that does not hold the build (told to wait, or stale) never
 * reaches a subscriber. When a new attempt takes over, the stream starts over from its first chunk,
 * which says `restarted`.
 *
 * It subscribes to the pubsub first and only then reads the database, so a chunk published in
 * between is both buffered and read, and dropped the second time by the cursor. The chunks the pubsub
 * saw just before (`recentLog`) come first, when the pubsub also knows the run they belong to: a client
 * that subscribes right after submitting gets the first lines without waiting for them to be stored.
 * A live chunk that is not the next one (it arrived before an earlier one was stored), and a
 * subscriber that fell behind (the pubsub dropped its buffer: `lagged`), send the stream back to the
 * database, which it reads by its cursor, a page at a time as the client takes them; if the database
 * does not have a missing chunk yet, it looks again shortly: the ingester stores it soon.
 *
 * A subscriber that cannot keep up with a build printing a line at a time gets what waits for it in
 * fewer, larger messages: consecutive chunks of one job (waiting in its buffer, or read in one page)
 * go out as one, up to JOINED_BYTES of text; the joined chunk's cursor is its last one's. Each message
 * costs an execution of the subscription and a frame on the socket, so a thousand subscribers of a
 * build printing 50 lines a second would otherwise ask for 50,000 of each a second.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { LogChunkEvent } from '../../../runner/contract/messages.ts';
import { isFinalBuild } from '../../../runner/contract/status.ts';
import type { PubSub, PubSubEvent } from '../../events/pubsub.ts';
import { type CurrentLog, type LogCursor, readCurrentLog, type StoredChunk } from './build-log.ts';

const PAGE = 500;
/** The most log text one joined chunk carries (one chunk longer than that goes out as it is). */
const JOINED_BYTES = 256 * 1024;
/** How long to wait for a missing chunk to be stored before reading the database again. */
const GAP_RETRY_MS = 100;
/** Reads the build again this often even when nothing is published, in case a notification was lost. */
const IDLE_CHECK_MS = 2_000;
/**
 * A chunk published just before the subscription began, and stored just after its first read, is in
 * neither: read again a few times right after starting, by when the ingester has stored it.
 */
const EARLY_CHECKS = 3;
/** Chunks kept while it is not known yet which run holds the build. */
const EARLY_CHUNKS = 64;

/** The run whose chunks count. */
interface Holder {
  attempt: number;
  lease: string | null;
}

function sleep(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

const textBytes = (lines: string[]) => lines.reduce((n, line) => n + line.length + 1, 0);

/** `next` continues `chunk` (same attempt and job, the next seq): one chunk of both, or null. */
function join(
  chunk: StoredChunk & { bytes?: number },
  next: StoredChunk,
): (StoredChunk & { bytes: number }) | null {
  if (next.attempt !== chunk.attempt || next.jobId !== chunk.jobId || next.seq !== chunk.seq + 1) return null;
  const bytes = (chunk.bytes ?? textBytes(chunk.lines)) + textBytes(next.lines);
  if (bytes > JOINED_BYTES) return null;
  return { ...chunk, seq: next.seq, lines: chunk.lines.concat(next.lines), bytes };
}

/** Consecutive chunks of one job joined, as `join` allows; the rest as they are. */
function joinRuns(chunks: StoredChunk[]): StoredChunk[] {
  const out: (StoredChunk & { bytes?: number })[] = [];
  for (const chunk of chunks) {
    const last = out.at(-1);
    const joined = last ? join(last, chunk) : null;
    if (joined) out[out.length - 1] = joined;
    else out.push(chunk);
  }
  return out.map(({ bytes: _, ...chunk }) => chunk);
}

const toStored = (chunk: LogChunkEvent): StoredChunk => ({
  buildId: chunk.buildId,
  attempt: chunk.attempt,
  seq: chunk.seq,
  jobId: chunk.jobId,
  firstLine: chunk.firstLine,
  lines: chunk.lines,
});

export async function* streamLog(opts: {
  orm: MikroORM;
  pubsub: PubSub;
  buildId: string;
  after: LogCursor | null;
  signal?: AbortSignal;
}): AsyncGenerator<StoredChunk> {
  const { orm, pubsub, buildId } = opts;
  const live = pubsub.subscribe([`build:${buildId}:log`, `build:${buildId}`], opts.signal);
  let cursor: LogCursor = opts.after ?? { attempt: 0, seq: 0 };
  /** Lines delivered (or resumed from) belong to an attempt a newer one may replace. */
  let holder: Holder | null = null;
  /** The next chunk delivered starts a new attempt over lines the client has: it says so. */
  let restart = false;
  const recent = pubsub.recentUpdate(buildId);
  /** Chunks seen before the run they belong to is known, kept until it is. */
  let early: LogChunkEvent[] = pubsub.recentLog(buildId);
  let pending: Promise<IteratorResult<PubSubEvent>> | null = null;
  let needDb = true;
  /** A read of the database in flight: live chunks that follow the cursor go out meanwhile. */
  let reading: Promise<CurrentLog> | null = null;
  /** A chunk of the holder known to exist after the cursor that the database did not have yet. */
  let missing: LogCursor | null = null;
  let earlyChecks = EARLY_CHECKS;
  let last: number | null = null;

  /** A newer run holds the build: the stream goes on from its start. */
  const follow = (next: Holder): void => {
    if (holder && next.attempt < holder.attempt) return;
    if (holder?.attempt === next.attempt && holder.lease === next.lease) return;
    holder = next;
    if (cursor.attempt !== next.attempt) {
      if (cursor.attempt > 0 || cursor.seq > 0) restart = true;
      cursor = { attempt: next.attempt, seq: 0 };
      missing = null;
      last = null;
    }
  };
  if (recent && recent.attempt > 0) follow({ attempt: recent.attempt, lease: recent.lease });

  /** The chunk to deliver when `chunk` is the next one of the holder; marks gaps and newer runs. */
  const take = (chunk: LogChunkEvent): StoredChunk | null => {
    if (!holder && chunk.attempt === 1 && cursor.attempt <= 1) {
      // A first delivery's run starts without asking (only a redelivery waits for a verdict), so
      // the one run of attempt 1 is the one that takes the build: its chunks need not wait for the
      // database to say so. A later attempt that takes over restarts the stream, as ever.
      follow({ attempt: 1, lease: chunk.lease });
    }
    if (!holder) {
      // Kept a little while; past that, the database has them by the time the run is known.
      if (early.length < EARLY_CHUNKS) early.push(chunk);
      else needDb = true;
      return null;
    }
    if (chunk.attempt > holder.attempt) {
      // Perhaps a new run took the build: the database (or its build.updated) will say.
      needDb = true;
      return null;
    }
    if (chunk.attempt !== holder.attempt || chunk.lease !== holder.lease || chunk.seq <= cursor.seq)
      return null;
    if (chunk.seq !== cursor.seq + 1) {
      missing = { attempt: chunk.attempt, seq: chunk.seq };
      needDb = true;
      return null;
    }
    return toStored(chunk);
  };

  /** Events drained from the subscription but not joined: taken before the next one. */
  const held: PubSubEvent[] = [];
  /**
   * `first`, with the chunks waiting behind it in the buffer that continue it joined to it. The first
   * event that does not continue it, and every one after, are held for the loop.
   */
  const withWaiting = (first: StoredChunk): StoredChunk => {
    if (held.length > 0) return first;
    let joined: StoredChunk & { bytes?: number } = first;
    for (const event of live.drain()) {
      const next =
        held.length === 0 && event.topic === 'log' && holder && event.chunk.lease === holder.lease
          ? join(joined, toStored(event.chunk))
          : null;
      if (next) joined = next;
      else held.push(event);
    }
    const { bytes: _, ...chunk } = joined;
    return chunk;
  };

  const deliver = (chunk: StoredChunk): StoredChunk => {
    cursor = { attempt: chunk.attempt, seq: chunk.seq };
    if (restart) {
      restart = false;
      return { ...chunk, restarted: true };
    }
    return chunk;
  };

  try {
    for (;;) {
      // Chunks seen before their run was known: the ones of the holder that follow go out now.
      if (holder && early.length > 0) {
        const held = early;
        early = [];
        for (const chunk of held) {
          const next = take(chunk);
          if (next) yield deliver(next);
        }
      }
      if (last !== null && cursor.seq >= last) return;
      if (needDb && !reading) {
        needDb = false;
        reading = readCurrentLog(orm.em.fork(), buildId, cursor, PAGE);
        // Awaited below; marked handled for when the stream ends before it settles.
        reading.catch(() => {});
      }
      if (missing && cursor.seq >= missing.seq) missing = null;
      pending ??= held.length > 0 ? Promise.resolve({ value: held.shift()!, done: false }) : live.next();
      const result: IteratorResult<PubSubEvent> | CurrentLog | 'timeout' = await Promise.race([
        pending,
        ...(reading ? [reading] : [sleep(missing || earlyChecks > 0 ? GAP_RETRY_MS : IDLE_CHECK_MS)]),
      ]);
      if (result === 'timeout') {
        earlyChecks--;
        needDb = true;
        continue;
      }
      if ('chunks' in result) {
        reading = null;
        const { build, chunks }: CurrentLog = result;
        if (!build) return;
        if (build.attempt > 0) follow({ attempt: build.attempt, lease: build.lease });
        // Chunks the live stream delivered meanwhile are behind the cursor already.
        const ahead = chunks.filter((c) => c.attempt === cursor.attempt && c.seq > cursor.seq);
        for (const chunk of joinRuns(ahead)) {
          if (chunk.seq <= cursor.seq) continue;
          yield deliver(chunk);
        }
        if (chunks.length === PAGE) {
          needDb = true;
          continue;
        }
        if (isFinalBuild(build.status) && build.lastSeq !== null && build.attempt === cursor.attempt) {
          // Done when the cursor reaches the last chunk (or the last attempt wrote nothing).
          const lastSeq = build.lastSeq;
          last = lastSeq;
          if (cursor.seq < lastSeq) missing = { attempt: cursor.attempt, seq: lastSeq };
        } else if (isFinalBuild(build.status) && build.attempt === 0) {
          return; // ended before any runner took it: no log
        }
        continue;
      }
      pending = null;
      if (result.done) return;
      const event = result.value;
      switch (event.topic) {
        case 'lagged':
          // The pubsub dropped what this subscriber had not taken yet: the database has it.
          needDb = true;
          continue;
        case 'build':
          if (event.update.attempt > 0) follow({ attempt: event.update.attempt, lease: event.update.lease });
          // An end needs the database (for the number of the last chunk); reading it on every status
          // change would only add reads while the build runs.
          if (isFinalBuild(event.update.status)) needDb = true;
          continue;
        case 'log': {
          const next = take(event.chunk);
          if (next) yield deliver(withWaiting(next));
          continue;
        }
      }
    }
  } finally {
    await live.return?.();
  }
}

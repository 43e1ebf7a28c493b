/**
 * Turns the bytes one job writes into numbered batches of log lines for `log.chunk` events.
 *
 * Lines: split on `\n` (a `\r` before it is dropped), UTF-8 decoded across writes, NUL bytes
 * replaced by `NUL`, lines longer than `maxLineBytes` cut into pieces, and the partial last line kept
 * until the next write or `end()`. Every complete line goes through `masker` before it is queued.
 *
 * Batching: a batch is handed to `sink` at once when the job has been quiet (lines written in the
 * same tick still go together: the flush waits for setImmediate), at most once per `intervalMs`
 * while it keeps writing, and at once when the queued lines reach `maxBatchBytes` (a batch carries
 * at most that much, or one line). `sink` is asynchronous (a publish with confirms): there is never
 * more than one call in flight, so batches reach it in order; whatever arrives meanwhile goes into
 * the next batch.
 *
 * Errors: the first rejection of `sink` stops the batcher (later writes are dropped), is reported to
 * `onError` at once, and makes `end()` reject with it.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Masker } from './masking.ts';

export interface LogBatch {
  /** 1-based number of lines[0] within the job's log. */
  firstLine: number;
  lines: string[];
}

export interface LogBatcherOptions {
  sink: (batch: LogBatch) => Promise<void>;
  masker?: Masker;
  onError?: (error: unknown) => void;
  intervalMs?: number;
  maxBatchBytes?: number;
  maxLineBytes?: number;
}

export interface LogBatcher {
  write(data: Buffer | string): void;
  /** Flushes the partial last line and everything queued; resolves once `sink` has taken it all. */
  end(): Promise<void>;
}

/**
 * A line written right after a flush waits this long at most: short enough that a line reaches
 * subscribers well within 50 ms, long enough that a chatty job sends at most 40 chunks a second.
 */
export const LOG_INTERVAL_MS = 25;
export const LOG_MAX_BATCH_BYTES = 64 * 1024;
export const LOG_MAX_LINE_BYTES = 64 * 1024;

/** Index in `text` of the longest prefix that fits in `maxBytes` of UTF-8, never inside a surrogate pair. */
function cutIndex(text: string, maxBytes: number): number {
  if (text.length * 3 <= maxBytes) return text.length;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const isPair = code >= 0xd800 && code <= 0xdbff && i + 1 < text.length;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : isPair ? 4 : 3;
    if (bytes + size > maxBytes) return Math.max(i, 1);
    bytes += size;
    if (isPair) i++;
  }
  return text.length;
}

export function createLogBatcher(options: LogBatcherOptions): LogBatcher {
  const intervalMs = options.intervalMs ?? LOG_INTERVAL_MS;
  const maxBatchBytes = options.maxBatchBytes ?? LOG_MAX_BATCH_BYTES;
  const maxLineBytes = options.maxLineBytes ?? LOG_MAX_LINE_BYTES;
  const masker = options.masker;
  const overlap = masker?.overlap ?? 0;

  const decoder = new StringDecoder('utf8');
  let partial = '';
  const queued: string[] = [];
  let queuedBytes = 0;
  let nextLine = 1;
  let lastFlushAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | null = null;
  let interval: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  let failure: { error: unknown } | null = null;
  let ended = false;
  let drained: (() => void) | null = null;

  const queue = (line: string): void => {
    const clean = line.includes('\0') ? line.replaceAll('\0', 'NUL') : line;
    const text = masker ? masker.mask(clean) : clean;
    queued.push(text);
    queuedBytes += Buffer.byteLength(text) + 1;
  };

  const cutLongPartial = (final: boolean): void => {
    while (partial.length * 3 > maxLineBytes && Buffer.byteLength(partial) > maxLineBytes) {
      let cut = cutIndex(partial, maxLineBytes);
      // A secret may straddle the cut: wait until enough of the line is known to tell.
      if (!final && partial.length - cut < overlap) return;
      if (masker) {
        const safe = masker.safeCut(partial, cut);
        if (safe > 0) cut = safe;
      }
      queue(partial.slice(0, cut));
      partial = partial.slice(cut);
    }
  };

  const take = (): string[] => {
    let bytes = 0;
    let count = 0;
    while (count < queued.length) {
      const size = Buffer.byteLength(queued[count]!) + 1;
      if (count > 0 && bytes + size > maxBatchBytes) break;
      bytes += size;
      count++;
    }
    queuedBytes -= bytes;
    return queued.splice(0, count);
  };

  const flush = (): void => {
    interval = null;
    immediate = null;
    if (inFlight || failure || queued.length === 0) {
      schedule();
      return;
    }
    const lines = take();
    const batch = { firstLine: nextLine, lines };
    nextLine += lines.length;
    lastFlushAt = performance.now();
    inFlight = options.sink(batch).then(
      () => {
        inFlight = null;
        schedule();
      },
      (error: unknown) => {
        inFlight = null;
        failure = { error };
        queued.length = 0;
        options.onError?.(error);
        schedule();
      },
    );
  };

  function schedule(): void {
    if (inFlight || immediate) return;
    if (failure || queued.length === 0) {
      if (ended && drained) drained();
      return;
    }
    const wait = lastFlushAt + intervalMs - performance.now();
    if (ended || queuedBytes >= maxBatchBytes || wait <= 0) {
      // A full batch does not wait for the interval timer set while the queue was small.
      if (interval) clearTimeout(interval);
      interval = null;
      immediate = setImmediate(flush);
    } else if (!interval) {
      interval = setTimeout(flush, wait);
    }
  }

  return {
    write(data) {
      if (ended || failure) return;
      const text = decoder.write(typeof data === 'string' ? Buffer.from(data) : data);
      if (text.length === 0) return;
      partial += text;
      let start = 0;
      for (let nl = partial.indexOf('\n'); nl !== -1; nl = partial.indexOf('\n', start)) {
        const end = nl > start && partial.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        let line = partial.slice(start, end);
        start = nl + 1;
        while (line.length * 3 > maxLineBytes && Buffer.byteLength(line) > maxLineBytes) {
          let cut = cutIndex(line, maxLineBytes);
          const safe = masker?.safeCut(line, cut) ?? cut;
          if (safe > 0) cut = safe;
          queue(line.slice(0, cut));
          line = line.slice(cut);
        }
        queue(line);
      }
      partial = partial.slice(start);
      cutLongPartial(false);
      schedule();
    },
    end() {
      if (!ended) {
        ended = true;
        partial += decoder.end();
        // A trailing `\r` of a line cut off by the end of the output is not part of the line.
        if (partial.endsWith('\r')) partial = partial.slice(0, -1);
        cutLongPartial(true);
        if (partial.length > 0) queue(partial);
        partial = '';
      }
      return new Promise<void>((resolve, reject) => {
        drained = () => (failure ? reject(failure.error) : resolve());
        schedule();
      });
    },
  };
}

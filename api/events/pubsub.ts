/**
 * In-process publish/subscribe for GraphQL subscriptions: one topic per entity id. It is fed only
 * from the broker's fan-out queue (every replica sees every event), never by polling.
 *
 * - `build:<id>`: the build or one of its jobs changed status (payload: the state after the change).
 * - `build:<id>:log`: a log chunk of the build, as the runner published it.
 * - `builds`: every build's changes (the same payloads as `build:<id>`), for lists of builds.
 * - `runners`: every runner heartbeat, as the runner published it.
 *
 * The last few log chunks of each build stay replayable for a short while (RECENT_LOG_MS, at most
 * RECENT_LOG_CHUNKS a build): a subscriber that arrives just after a chunk was published (a client
 * watching a build it has just submitted) gets it at once instead of waiting for it to be stored.
 * So does each build's last `build.updated`, so a new log subscriber knows which run's chunks count.
 *
 * A subscriber's buffer is bounded (SUBSCRIBER_BUFFER_BYTES, weighing log chunks by their text): a
 * subscriber that stops reading (a slow client) does not grow the process. Past the bound its buffer
 * is dropped and it is told `lagged` instead: what it missed is in the database (the log stream
 * reads it from there by its cursor; a build's state is read again).
 */
import type { BuildUpdated, LogChunkEvent, RunnerEventOf } from '../../runner/contract/messages.ts';

export type RunnerHeartbeat = RunnerEventOf<'runner.heartbeat'>;

export type PubSubEvent =
  | { topic: 'build'; update: BuildUpdated }
  | { topic: 'log'; chunk: LogChunkEvent }
  /** Events were dropped for this subscriber, which fell behind: read what it needs from the database. */
  | { topic: 'lagged' };

/** An iterator of a subscriber's events that can also hand over, at once, every event waiting. */
export interface Subscription<T> extends AsyncIterableIterator<T> {
  /** The events buffered now, oldest first, taken out of the buffer (none when it is empty). */
  drain(): T[];
}

/** Build and log topics carry PubSubEvents; `runners` carries heartbeats (see subscribeRunners). */
type Listener = (event: unknown) => void;

/** How long a published log chunk can be replayed to a late subscriber. */
export const RECENT_LOG_MS = 2_000;
/** The newest chunks of a build kept for replay (64 KiB at most each). */
export const RECENT_LOG_CHUNKS = 8;
/** What one subscriber may have waiting before it is told it lagged: 1 MiB of log text. */
export const SUBSCRIBER_BUFFER_BYTES = 1024 * 1024;

/** A rough size of an event waiting in a buffer: its log text, or a small constant. */
function weigh(event: unknown): number {
  const chunk = (event as { topic?: string; chunk?: LogChunkEvent }).chunk;
  if (!chunk) return 256;
  let bytes = 256;
  for (const line of chunk.lines) bytes += line.length + 16;
  return bytes;
}

export class PubSub {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** By log topic, in order of last publish: the stalest topics come first. */
  private readonly recent = new Map<string, { chunk: LogChunkEvent; at: number }[]>();
  /** By build, the last build.updated, in order of publish: the stalest first. */
  private readonly lastUpdates = new Map<string, { update: BuildUpdated; at: number }>();

  constructor(private readonly bufferBytes = SUBSCRIBER_BUFFER_BYTES) {}

  publishBuild(update: BuildUpdated): void {
    const now = performance.now();
    this.lastUpdates.delete(update.buildId);
    this.lastUpdates.set(update.buildId, { update, at: now });
    for (const [buildId, last] of this.lastUpdates) {
      if (last.at >= now - RECENT_LOG_MS) break;
      this.lastUpdates.delete(buildId);
    }
    const event: PubSubEvent = { topic: 'build', update };
    this.emit(`build:${update.buildId}`, event);
    this.emit('builds', event);
  }

  publishRunner(beat: RunnerHeartbeat): void {
    this.emit('runners', beat);
  }

  publishLog(chunk: LogChunkEvent): void {
    const topic = `build:${chunk.buildId}:log`;
    this.remember(topic, chunk);
    this.emit(topic, { topic: 'log', chunk });
  }

  /** The build's last build.updated, if it was published in the last RECENT_LOG_MS. */
  recentUpdate(buildId: string): BuildUpdated | null {
    const last = this.lastUpdates.get(buildId);
    return last && last.at >= performance.now() - RECENT_LOG_MS ? last.update : null;
  }

  /** The log chunks of a build published in the last RECENT_LOG_MS (the newest few), oldest first. */
  recentLog(buildId: string): LogChunkEvent[] {
    const since = performance.now() - RECENT_LOG_MS;
    return (this.recent.get(`build:${buildId}:log`) ?? []).filter((r) => r.at >= since).map((r) => r.chunk);
  }

  /**
   * Events of the given topics, buffered from the moment of the call until the iterator is
   * returned or `signal` aborts, so nothing published after subscribing is missed.
   */
  subscribe(topics: string[], signal?: AbortSignal): Subscription<PubSubEvent> {
    return this.listen<PubSubEvent>(topics, signal);
  }

  /** Every runner heartbeat from the moment of the call, like `subscribe` (a lag drops some). */
  subscribeRunners(signal?: AbortSignal): AsyncIterableIterator<RunnerHeartbeat> {
    const lagged: RunnerHeartbeat | null = null;
    return this.listen<RunnerHeartbeat>(['runners'], signal, lagged);
  }

  /** Subscribers listening now (tests: that a finished subscription left nothing behind). */
  listenerCount(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }

  private listen<T>(topics: string[], signal?: AbortSignal, lagged?: T | null): Subscription<T> {
    const laggedEvent = (lagged === undefined ? { topic: 'lagged' } : lagged) as T | null;
    let buffer: T[] = [];
    let buffered = 0;
    let wake: (() => void) | null = null;
    let done = false;
    const listener: Listener = (event) => {
      const weight = weigh(event);
      if (buffered + weight > this.bufferBytes) {
        // Fell behind: what it would have had is in the database; it reads it from there.
        buffer = laggedEvent === null ? [] : [laggedEvent];
        buffered = 0;
      } else {
        buffer.push(event as T);
        buffered += weight;
      }
      wake?.();
    };
    const stop = () => {
      if (done) return;
      done = true;
      for (const topic of topics) this.listeners.get(topic)?.delete(listener);
      wake?.();
    };
    for (const topic of topics) {
      let set = this.listeners.get(topic);
      if (!set) {
        set = new Set();
        this.listeners.set(topic, set);
      }
      set.add(listener);
    }
    signal?.addEventListener('abort', stop, { once: true });
    const iterator: Subscription<T> = {
      drain() {
        const waiting = buffer;
        buffer = [];
        buffered = 0;
        return waiting;
      },
      async next() {
        while (buffer.length === 0 && !done) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
        const value = buffer.shift();
        if (value) buffered = Math.max(0, buffered - weigh(value));
        return value ? { value, done: false } : { value: undefined, done: true };
      },
      async return() {
        stop();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  private remember(topic: string, chunk: LogChunkEvent): void {
    const now = performance.now();
    const recent = this.recent.get(topic) ?? [];
    recent.push({ chunk, at: now });
    if (recent.length > RECENT_LOG_CHUNKS) recent.shift();
    this.recent.delete(topic);
    this.recent.set(topic, recent);
    for (const [stale, events] of this.recent) {
      if (events.at(-1)!.at >= now - RECENT_LOG_MS) break;
      this.recent.delete(stale);
    }
  }

  private emit(topic: string, event: unknown): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const listener of set) listener(event);
    if (set.size === 0) this.listeners.delete(topic);
  }
}

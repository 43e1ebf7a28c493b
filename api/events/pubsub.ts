/**
 * In-process publish/subscribe for GraphQL subscriptions: one topic per entity id. It is fed only
 * from the broker's fan-out queue (every replica sees every event), never by polling.
 *
 * - `build:<id>`: the build or one of its jobs changed status (payload: the state after the change).
 * - `build:<id>:log`: a log chunk of the build, as the runner published it.
 */
import type { BuildUpdated, LogChunkEvent } from '../../runner/contract/messages.ts';

export type PubSubEvent = { topic: 'build'; update: BuildUpdated } | { topic: 'log'; chunk: LogChunkEvent };

type Listener = (event: PubSubEvent) => void;

export class PubSub {
  private readonly listeners = new Map<string, Set<Listener>>();

  publishBuild(update: BuildUpdated): void {
    this.emit(`build:${update.buildId}`, { topic: 'build', update });
  }

  publishLog(chunk: LogChunkEvent): void {
    this.emit(`build:${chunk.buildId}:log`, { topic: 'log', chunk });
  }

  /**
   * Events of the given topics, buffered from the moment of the call until the iterator is
   * returned or `signal` aborts, so nothing published after subscribing is missed.
   */
  subscribe(topics: string[], signal?: AbortSignal): AsyncIterableIterator<PubSubEvent> {
    const buffer: PubSubEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const listener: Listener = (event) => {
      buffer.push(event);
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
    const iterator: AsyncIterableIterator<PubSubEvent> = {
      async next() {
        while (buffer.length === 0 && !done) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
        const value = buffer.shift();
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

  private emit(topic: string, event: PubSubEvent): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const listener of set) listener(event);
    if (set.size === 0) this.listeners.delete(topic);
  }
}

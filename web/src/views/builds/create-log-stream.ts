/**
 * A build's log, live: `buildLog` replays what is stored and then streams, into a LogStore. The
 * subscription's `after` is re-read at every (re)subscription, so after a dropped connection
 * graphql-ws resumes from the last chunk received; the store drops any line it already has.
 * A stream, its store and its cursor belong to one build: another build gets a stream of its own.
 */
import { type Accessor, createEffect, createSignal, on, onCleanup, untrack } from 'solid-js';
import type { StreamState } from '../../components/log/LogViewer.tsx';
import { createLogStore, type LogStore } from '../../components/log/log-store.ts';
import { graphql } from '../../graphql.ts';
import { useKiln } from '../../lib/kiln-context.ts';

const BuildLogSubscription = graphql(`
  subscription BuildLog($buildId: ID!, $after: String) {
    buildLog(buildId: $buildId, after: $after) {
      cursor
      attempt
      firstLine
      lines
      job {
        id
        name
      }
    }
  }
`);

export interface LogStream {
  store: LogStore;
  state: Accessor<StreamState>;
  error: Accessor<string | null>;
  /** Starts again from the last chunk received, after an error. */
  retry(): void;
}

export function createLogStream(buildId: string, onComplete?: () => void): LogStream {
  const { client } = useKiln();
  const store = createLogStore();
  const [state, setState] = createSignal<StreamState>('connecting');
  const [error, setError] = createSignal<string | null>(null);
  const [generation, setGeneration] = createSignal(0);
  let cursor: string | null = null;

  createEffect(
    on(generation, () => {
      setState('connecting');
      setError(null);
      const dispose = client.subscribeResumable(BuildLogSubscription, () => ({ buildId, after: cursor }), {
        next(result) {
          if (result.errors?.length) {
            setError(result.errors.map((e) => e.message).join('; '));
            return;
          }
          const chunk = result.data?.buildLog;
          if (!chunk) return;
          store.append(chunk);
          cursor = chunk.cursor;
          setState('live');
        },
        error(err) {
          if (untrack(state) === 'complete') return;
          const list = Array.isArray(err) ? (err as { message?: string }[]) : [err as { message?: string }];
          const code = (err as { code?: unknown })?.code;
          setError(
            list.map((e) => e?.message).join('; ') ||
              `the connection to the server was lost${typeof code === 'number' ? ` (close code ${code})` : ''}`,
          );
          setState('error');
        },
        complete() {
          setState('complete');
          onComplete?.();
        },
      });
      onCleanup(dispose);
    }),
  );

  // While the socket is down, say so; graphql-ws resubscribes (from `cursor`) when it is back.
  createEffect(
    on(client.connection, (c) => {
      const s = untrack(state);
      if (s === 'complete' || s === 'error') return;
      if (c === 'reconnecting') setState('reconnecting');
      else if (c === 'connected') setState('live');
    }),
  );

  return { store, state, error, retry: () => setGeneration((g) => g + 1) };
}

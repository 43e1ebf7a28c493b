import { createSubscription } from '@urql/solid';
import { For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { createNow } from '../../lib/create-now.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';

/** The list at once, then again as heartbeats arrive (each runner beats every 5 s). */
const RunnersUpdated = graphql(`
  subscription RunnersUpdated {
    runnersUpdated {
      name
      queues
      concurrency
      running
      online
      lastSeenAt
    }
  }
`);

export default function RunnersPage() {
  const now = createNow(1000);
  const [runners] = createSubscription({ query: RunnersUpdated });
  const list = () => runners.data?.runnersUpdated;
  return (
    <section class="page">
      <h1>Runners</h1>
      <p class="muted">Live: a runner is online when it was heard from in the last 30 seconds.</p>
      <Show when={runners.error}>
        <ErrorNotice error={runners.error!} title="Could not watch the runners" />
      </Show>
      <Show when={!list() && !runners.error}>
        <Loading label="Waiting for the runners…" />
      </Show>
      <Show when={list()}>
        {(items) => (
          <Show
            when={items().length > 0}
            fallback={
              <EmptyState title="No runners yet">
                <p>
                  Start one with <code>kiln runner</code>; it shows up here at its first heartbeat.
                </p>
              </EmptyState>
            }
          >
            <ul class="item-list" aria-label="Runners">
              <For each={items()}>
                {(r) => (
                  <li class="item" data-runner={r.name}>
                    <span class="item-name">{r.name}</span>
                    <span
                      class={`badge ${r.online ? 'badge-ok' : 'badge-bad'}`}
                      data-online={r.online ? 'yes' : 'no'}
                    >
                      {r.online ? 'online' : 'offline'}
                    </span>
                    <span class="muted">
                      {r.running}/{r.concurrency} running · queues {r.queues.join(', ')}
                    </span>
                    <time class="muted" datetime={r.lastSeenAt} title={formatDate(r.lastSeenAt)}>
                      seen {formatAgo(r.lastSeenAt, now())}
                    </time>
                  </li>
                )}
              </For>
            </ul>
          </Show>
        )}
      </Show>
    </section>
  );
}

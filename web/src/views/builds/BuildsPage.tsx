import { A, useSearchParams } from '@solidjs/router';
import { createQuery, createSubscription } from '@urql/solid';
import { createMemo, createSignal, For, onCleanup, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { createNow } from '../../lib/create-now.ts';
import { elapsed, formatAgo, formatDate, formatDuration } from '../../lib/format.ts';
import { BUILD_STATUSES, type BuildStatus, isFinal, statusLabel } from '../../lib/status.ts';
import { BuildRowFragment } from './build-fragments.ts';

const PAGE_SIZE = 20;
/** New builds have no subscription yet (see the report's `buildsUpdated` proposal): look again this often. */
const REFRESH_MS = 4_000;

const BuildsQuery = graphql(
  `
  query Builds($first: Int, $after: String, $status: BuildStatus, $tag: String) {
    builds(first: $first, after: $after, status: $status, tag: $tag) {
      edges {
        cursor
        node {
          ...BuildRow
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`,
  [BuildRowFragment],
);

const BuildRowUpdated = graphql(
  `
  subscription BuildRowUpdated($buildId: ID!) {
    buildUpdated(buildId: $buildId) {
      ...BuildRow
    }
  }
`,
  [BuildRowFragment],
);

type BuildRowData = ResultOf<typeof BuildRowFragment>;

function BuildRow(props: { build: BuildRowData; now: number; onTag: (tag: string) => void }) {
  // Memos, so a refetched list (new objects, same values) does not restart the subscription.
  const buildId = createMemo(() => props.build.id);
  const settled = createMemo(() => isFinal(props.build.status));
  const [live] = createSubscription({
    query: BuildRowUpdated,
    variables: () => ({ buildId: buildId() }),
    pause: settled,
  });
  /** The newest of what the list query and the subscription said. */
  const build = () => {
    const update = live.data?.buildUpdated;
    if (!update || isFinal(props.build.status)) return props.build;
    return update;
  };
  const duration = () => elapsed(build().startedAt, build().finishedAt, props.now);
  return (
    <li class="build-row" data-build-number={build().number}>
      <A href={`/builds/${build().id}`} class="build-link">
        <span class="build-number">#{build().number}</span>
        <span class="build-comment">{build().comment || <span class="muted">No comment</span>}</span>
      </A>
      <StatusBadge status={build().status} />
      <div class="build-tags">
        <For each={build().tags}>
          {(tag) => (
            <button
              type="button"
              class="tag"
              title={`Show builds tagged ${tag}`}
              onClick={() => props.onTag(tag)}
            >
              {tag}
            </button>
          )}
        </For>
      </div>
      <div class="build-meta muted">
        <span>{build().trigger.toLowerCase()}</span>
        <span>{duration() === null ? 'not started' : formatDuration(duration()!)}</span>
        <time datetime={build().createdAt} title={formatDate(build().createdAt)}>
          {formatAgo(build().createdAt, props.now)}
        </time>
      </div>
    </li>
  );
}

export function BuildsPage() {
  const [params, setParams] = useSearchParams<{ status?: string; tag?: string; after?: string }>();
  const now = createNow(1000);
  const status = () => {
    const s = params.status?.toUpperCase();
    return s && (BUILD_STATUSES as readonly string[]).includes(s) ? (s as BuildStatus) : null;
  };
  const [builds, refetch] = createQuery({
    query: BuildsQuery,
    variables: () => ({
      first: PAGE_SIZE,
      after: params.after || null,
      status: status(),
      tag: params.tag || null,
    }),
    requestPolicy: 'cache-and-network',
  });
  const timer = setInterval(() => {
    if (!params.after && document.visibilityState === 'visible') refetch({ requestPolicy: 'network-only' });
  }, REFRESH_MS);
  onCleanup(() => clearInterval(timer));

  const [tagDraft, setTagDraft] = createSignal(params.tag ?? '');
  const filtered = () => Boolean(status() || params.tag);
  const edges = () => builds.data?.builds.edges ?? [];

  return (
    <section class="page">
      <div class="page-head">
        <h1>Builds</h1>
        <A href="/builds/new" class="button primary">
          New build
        </A>
      </div>
      <form
        class="filters"
        aria-label="Filter builds"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ tag: tagDraft().trim() || undefined, after: undefined });
        }}
      >
        <label for="filter-status">
          Status
          <select
            id="filter-status"
            value={status() ?? ''}
            onChange={(e) => setParams({ status: e.currentTarget.value || undefined, after: undefined })}
          >
            <option value="">Any</option>
            <For each={BUILD_STATUSES}>{(s) => <option value={s}>{statusLabel(s)}</option>}</For>
          </select>
        </label>
        <label for="filter-tag">
          Tag
          <input
            id="filter-tag"
            type="search"
            name="tag"
            value={tagDraft()}
            placeholder="e.g. release"
            onInput={(e) => setTagDraft(e.currentTarget.value)}
          />
        </label>
        <button type="submit">Filter</button>
        <Show when={filtered()}>
          <button
            type="button"
            class="link-button"
            onClick={() => {
              setTagDraft('');
              setParams({ status: undefined, tag: undefined, after: undefined });
            }}
          >
            Clear filters
          </button>
        </Show>
      </form>

      <Show when={builds.error && !builds.data}>
        <ErrorNotice error={builds.error!} title="Could not load builds" retry={() => refetch()} />
      </Show>
      <Show when={!builds.data && builds.fetching}>
        <Loading label="Loading builds…" />
      </Show>
      <Show when={builds.data}>
        <Show
          when={edges().length > 0}
          fallback={
            <Show
              when={filtered() || params.after}
              fallback={
                <EmptyState title="No builds yet">
                  <p>
                    Submit a manifest to run the first one: <A href="/builds/new">new build</A>.
                  </p>
                </EmptyState>
              }
            >
              <EmptyState title="No builds match these filters">
                <p>Try another status or tag, or clear the filters.</p>
              </EmptyState>
            </Show>
          }
        >
          <ul class="build-list" aria-label="Builds">
            <For each={edges()}>
              {(edge) => (
                <BuildRow
                  build={edge.node}
                  now={now()}
                  onTag={(tag) => {
                    setTagDraft(tag);
                    setParams({ tag, after: undefined });
                  }}
                />
              )}
            </For>
          </ul>
        </Show>
        <nav class="pager" aria-label="Pages">
          <Show when={params.after}>
            <A href={`/builds?${new URLSearchParams(strip({ status: params.status, tag: params.tag }))}`}>
              ← Newest
            </A>
          </Show>
          <Show when={builds.data?.builds.pageInfo.hasNextPage && builds.data.builds.pageInfo.endCursor}>
            {(cursor) => (
              <A
                href={`/builds?${new URLSearchParams(
                  strip({ status: params.status, tag: params.tag, after: cursor() }),
                )}`}
              >
                Older →
              </A>
            )}
          </Show>
        </nav>
      </Show>
    </section>
  );
}

function strip(o: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => Boolean(e[1])));
}

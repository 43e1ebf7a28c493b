import { A, useSearchParams } from '@solidjs/router';
import { createQuery, createSubscription } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { buildName, buildPath } from '../../lib/build-name.ts';
import { causeSummary, firstLine } from '../../lib/cause.ts';
import { createNow } from '../../lib/create-now.ts';
import { elapsed, formatAgo, formatDate, formatDuration } from '../../lib/format.ts';
import { BUILD_STATUSES, type BuildStatus, isFinal, statusLabel } from '../../lib/status.ts';
import { BuildRowFragment } from './build-fragments.ts';

const PAGE_SIZE = 20;

const BuildsQuery = graphql(
  `
  query Builds($first: Int, $after: String, $status: BuildStatus, $tag: String, $namespace: String) {
    builds(first: $first, after: $after, status: $status, tag: $tag, namespace: $namespace) {
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

/** Every build of the list's tag and namespace, as it is created and whenever its status changes. */
const BuildsUpdated = graphql(
  `
  subscription BuildsUpdated($tag: String, $namespace: String) {
    buildsUpdated(tag: $tag, namespace: $namespace) {
      ...BuildRow
    }
  }
`,
  [BuildRowFragment],
);

type BuildRowData = ResultOf<typeof BuildRowFragment>;

/** What a build without a comment says instead: its commit's subject, or who or what asked for it. */
function causeText(cause: BuildRowData['cause']): string {
  if (cause.message) return firstLine(cause.message);
  return cause.user ? `${causeSummary(cause)} by ${cause.user.username}` : causeSummary(cause);
}

function BuildRow(props: {
  build: BuildRowData;
  live: BuildRowData | undefined;
  now: number;
  onTag: (tag: string) => void;
}) {
  /** The newest of what the list query and the subscription said: a finished build stays finished. */
  const build = () => (!props.live || isFinal(props.build.status) ? props.build : props.live);
  return (
    <li class="build-row" data-build-number={build().number}>
      <A href={buildPath(build())} class="build-link">
        <span class="build-number">{buildName(build())}</span>
        <span class="build-comment">
          {build().comment || <span class="muted">{causeText(build().cause)}</span>}
        </span>
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
        <span class="build-cause" title={build().cause.ref ?? undefined}>
          {causeSummary(build().cause)}
        </span>
        <BuildTimes build={build()} now={props.now} />
      </div>
    </li>
  );
}

/**
 * When a build ran, as a list reads it: `started 3 minutes ago · ran 1m 4s` (the absolute times on
 * hover), `started … · running 12s`, or `queued for 40s` before a runner took it.
 */
function BuildTimes(props: {
  build: { createdAt: string; startedAt: string | null; finishedAt: string | null };
  now: number;
}) {
  const duration = () => elapsed(props.build.startedAt, props.build.finishedAt, props.now);
  return (
    <span class="build-times" data-testid="build-times">
      <Show
        when={props.build.startedAt}
        fallback={
          <Show
            when={props.build.finishedAt}
            fallback={
              <span title={`Created ${formatDate(props.build.createdAt)}`}>
                queued for{' '}
                <time datetime={props.build.createdAt} data-testid="queued-since">
                  {formatDuration(Math.max(0, props.now - Date.parse(props.build.createdAt)))}
                </time>
              </span>
            }
          >
            {(finished) => (
              <span>
                ended{' '}
                <time datetime={finished()} title={formatDate(finished())} data-testid="finished-at">
                  {formatAgo(finished(), props.now)}
                </time>{' '}
                without starting
              </span>
            )}
          </Show>
        }
      >
        {(started) => (
          <>
            <span>
              started{' '}
              <time datetime={started()} title={formatDate(started())} data-testid="started-at">
                {formatAgo(started(), props.now)}
              </time>
            </span>
            <Show
              when={props.build.finishedAt}
              fallback={<span>running {formatDuration(duration() ?? 0)}</span>}
            >
              {(finished) => (
                <span>
                  ran{' '}
                  <time
                    datetime={finished()}
                    title={`Finished ${formatDate(finished())}`}
                    data-testid="finished-at"
                  >
                    {formatDuration(duration() ?? 0)}
                  </time>
                </span>
              )}
            </Show>
          </>
        )}
      </Show>
    </span>
  );
}

export function BuildsPage() {
  const [params, setParams] = useSearchParams<{
    status?: string;
    tag?: string;
    namespace?: string;
    after?: string;
  }>();
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
      namespace: params.namespace || null,
    }),
    requestPolicy: 'cache-and-network',
  });
  // The newest state of each build the subscription told of, by id; a new build (or one that left
  // the status filter) reloads the first page instead.
  const [live] = createSubscription(
    {
      query: BuildsUpdated,
      variables: () => ({ tag: params.tag || null, namespace: params.namespace || null }),
    },
    (seen: Map<string, BuildRowData> = new Map(), data) => {
      const update = data.buildsUpdated;
      const listed = edges().some((e) => e.node.id === update.id);
      const wanted = !status() || update.status === status();
      if (!params.after && (!listed || !wanted)) refetch({ requestPolicy: 'network-only' });
      return new Map(seen).set(update.id, update);
    },
  );

  const [tagDraft, setTagDraft] = createSignal(params.tag ?? '');
  const [namespaceDraft, setNamespaceDraft] = createSignal(params.namespace ?? '');
  const filtered = () => Boolean(status() || params.tag || params.namespace);
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
          setParams({
            tag: tagDraft().trim() || undefined,
            namespace: namespaceDraft().trim() || undefined,
            after: undefined,
          });
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
        <label for="filter-namespace">
          Namespace
          <input
            id="filter-namespace"
            type="search"
            name="namespace"
            value={namespaceDraft()}
            placeholder="e.g. team/app"
            onInput={(e) => setNamespaceDraft(e.currentTarget.value)}
          />
        </label>
        <button type="submit">Filter</button>
        <Show when={filtered()}>
          <button
            type="button"
            class="link-button"
            onClick={() => {
              setTagDraft('');
              setNamespaceDraft('');
              setParams({ status: undefined, tag: undefined, namespace: undefined, after: undefined });
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
                <p>Try another status, tag or namespace, or clear the filters.</p>
              </EmptyState>
            </Show>
          }
        >
          <ul class="build-list" aria-label="Builds">
            <For each={edges()}>
              {(edge) => (
                <BuildRow
                  build={edge.node}
                  live={live.data?.get(edge.node.id)}
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
            <A
              href={`/builds?${new URLSearchParams(strip({ status: params.status, tag: params.tag, namespace: params.namespace }))}`}
            >
              ← Newest
            </A>
          </Show>
          <Show when={builds.data?.builds.pageInfo.hasNextPage && builds.data.builds.pageInfo.endCursor}>
            {(cursor) => (
              <A
                href={`/builds?${new URLSearchParams(
                  strip({
                    status: params.status,
                    tag: params.tag,
                    namespace: params.namespace,
                    after: cursor(),
                  }),
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

import { A, useNavigate, useParams } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { causeSummary } from '../../lib/cause.ts';
import { createEvery } from '../../lib/create-every.ts';
import { createNow } from '../../lib/create-now.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';
import { BuildRowFragment } from '../builds/build-fragments.ts';
import { namespaceHref } from '../namespaces/NamespacesPage.tsx';
import { forgeLabel, type Refusal, RepositoryForm, type RepositorySettings } from './RepositoryForm.tsx';
import { hookWords, pollWords } from './RepositorySummary.tsx';
import {
  DeleteRepository,
  ReplayForgeEvent,
  RepositoryFieldsFragment,
  TriggerRepository,
  UpdateRepository,
} from './repository-documents.ts';
import { WebhookSetup } from './WebhookSetup.tsx';

const RepositoryQuery = graphql(
  `
  query Repository($id: ID!) {
    node(id: $id) {
      __typename
      ... on Repository {
        ...RepositoryFields
        namespace {
          id
          path
          canWrite
          owner {
            username
          }
        }
        builds(first: 10) {
          edges {
            node {
              ...BuildRow
            }
          }
        }
      }
    }
  }
`,
  [RepositoryFieldsFragment, BuildRowFragment],
);

/** Only those who may write the namespace see its forge events: asked once that is known. */
const RepositoryEvents = graphql(`
  query RepositoryEvents($id: ID!) {
    node(id: $id) {
      __typename
      ... on Repository {
        id
        events(first: 20) {
          edges {
            node {
              id
              deliveryId
              event
              receivedAt
              verified
              outcome
              replayOf {
                id
                receivedAt
              }
              builds {
                id
                number
                status
              }
            }
          }
        }
      }
    }
  }
`);

type EventNode = Extract<
  NonNullable<ResultOf<typeof RepositoryEvents>['node']>,
  { __typename: 'Repository' }
>['events']['edges'][number]['node'];

/** An event still waiting for, or in, its work: its outcome changes soon. */
const pending = (e: EventNode) => e.outcome === 'received' || e.outcome === 'working';

/** A repository: its settings, building it now, its forge events and its builds. */
export default function RepositoryPage() {
  const params = useParams<{ id: string }>();
  const navigate = useNavigate();
  // A repository's global id ends in `=`, which its address carries escaped; the router keeps it so.
  const id = () => decodeURIComponent(params.id);
  const now = createNow(1000);
  const [query, refetch] = createQuery({
    query: RepositoryQuery,
    variables: () => ({ id: id() }),
    requestPolicy: 'cache-and-network',
  });
  const repo = () => {
    const node = query.data?.node;
    return node?.__typename === 'Repository' ? node : null;
  };
  const canWrite = () => repo()?.namespace.canWrite ?? false;
  const [eventsQuery, refetchEvents] = createQuery({
    query: RepositoryEvents,
    variables: () => ({ id: id() }),
    pause: () => !canWrite(),
  });
  const events = () => {
    const node = eventsQuery.data?.node;
    return node?.__typename === 'Repository' ? node.events.edges.map((e) => e.node) : [];
  };
  const reload = () => refetch({ requestPolicy: 'network-only' });
  const reloadEvents = () => {
    if (canWrite()) refetchEvents({ requestPolicy: 'network-only' });
  };
  // The API has no subscription for forge events: look again while the page is open (sooner while an
  // event is still being worked on), and reload the builds when an event started new ones.
  let seenBuilds = '';
  let tick = 0;
  createEvery(2_000, () => {
    tick++;
    if (events().some(pending) || tick % 3 === 0) reloadEvents();
    const started = events()
      .flatMap((e) => e.builds.map((b) => b.id))
      .join();
    const unfinished = repo()?.builds.edges.some((e) => ['QUEUED', 'RUNNING'].includes(e.node.status));
    if (started !== seenBuilds || (unfinished && tick % 3 === 0)) {
      seenBuilds = started;
      reload();
    }
  });

  const [editing, setEditing] = createSignal(false);
  const [saved, setSaved] = createSignal(false);
  const [, update] = createMutation(UpdateRepository);
  const [deleting, remove] = createMutation(DeleteRepository);
  const [deleteError, setDeleteError] = createSignal<string | null>(null);

  async function save(settings: RepositorySettings): Promise<Refusal | null> {
    const result = await update({ input: { id: id(), ...settings } });
    if (result.error) return { message: result.error.message };
    const r = result.data?.updateRepository;
    switch (r?.__typename) {
      case 'UpdateRepositorySuccess':
        setEditing(false);
        setSaved(true);
        reload();
        return null;
      case 'InputError':
        return { message: r.message, path: r.path };
      case 'NotFoundError':
        return { message: r.message };
      default:
        return { message: 'no answer from the server' };
    }
  }

  async function onDelete() {
    const r = repo();
    if (!r) return;
    const ok = window.confirm(
      `Delete the repository ${r.name}? Its builds stay; its forge events go, and webhooks posted to it are refused.${
        r.webhookInstalled ? ' Kiln removes the webhook it installed on the forge.' : ''
      }`,
    );
    if (!ok) return;
    setDeleteError(null);
    const result = await remove({ input: { id: id() } });
    if (result.error) return setDeleteError(result.error.message);
    const answer = result.data?.deleteRepository;
    if (answer?.__typename === 'NotFoundError') return setDeleteError(answer.message);
    navigate(`${namespaceHref(r.namespace.owner.username, r.namespace.path)}#repositories`);
  }

  return (
    <section class="page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <A href="/namespaces">Namespaces</A>
        <Show when={repo()}>
          {(r) => (
            <>
              {' / '}
              <A href={`${namespaceHref(r().namespace.owner.username, r().namespace.path)}#repositories`}>
                {r().namespace.owner.username}@{r().namespace.path}
              </A>
            </>
          )}
        </Show>
      </nav>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the repository" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the repository…" />
      </Show>
      <Show when={query.data && !repo()}>
        <h1>Not found</h1>
        <EmptyState title="No such repository">
          <p>It does not exist, it was deleted, or you may not see it.</p>
        </EmptyState>
      </Show>
      <Show when={repo()}>
        {(r) => (
          <>
            <div class="page-head">
              <h1>
                {r().name} <span class="badge badge-idle">{forgeLabel(r().forge)}</span>
              </h1>
              <Show when={canWrite()}>
                <div class="actions">
                  <button
                    type="button"
                    aria-expanded={editing()}
                    onClick={() => {
                      setSaved(false);
                      setEditing(!editing());
                    }}
                  >
                    Edit
                  </button>
                  <button type="button" class="danger" disabled={deleting.fetching} onClick={onDelete}>
                    {deleting.fetching ? 'Deleting…' : 'Delete'}
                  </button>
                </div>
              </Show>
            </div>
            <Show when={r().problem}>
              {(p) => (
                <p class="notice notice-error problem" role="alert" data-testid="repository-problem">
                  <strong>Problem:</strong> {p()}
                </p>
              )}
            </Show>
            <Show when={deleteError()}>
              {(m) => <ErrorNotice error={m()} title="Could not delete the repository" />}
            </Show>
            <Show when={saved()}>
              <p class="notice notice-ok" role="status">
                Saved.
              </p>
            </Show>
            <Show when={editing()}>
              <RepositoryForm
                id="edit-repository"
                initial={r()}
                submitLabel="Save"
                busyLabel="Saving…"
                submit={save}
                onCancel={() => setEditing(false)}
              />
            </Show>
            <dl class="facts">
              <div class="fact-wide">
                <dt>Clone URL</dt>
                <dd>
                  <code>{r().cloneUrl}</code>
                </dd>
              </div>
              <div>
                <dt>Default branch</dt>
                <dd>
                  <code>{r().defaultBranch}</code>
                </dd>
              </div>
              <div>
                <dt>Polling</dt>
                <dd>{pollWords(r().pollInterval)}</dd>
              </div>
              <div>
                <dt>Webhook</dt>
                <dd>{hookWords(r())}</dd>
              </div>
              <div>
                <dt>Last checked</dt>
                <dd>
                  <Show when={r().lastCheckedAt} fallback={<span class="muted">never</span>}>
                    {(at) => (
                      <time datetime={at()} title={formatDate(at())}>
                        {formatAgo(at(), now())}
                      </time>
                    )}
                  </Show>
                </dd>
              </div>
              <div>
                <dt>Manifests</dt>
                <dd>{r().manifestPaths.join(', ')}</dd>
              </div>
              <div>
                <dt>Branches</dt>
                <dd>
                  {r().includeBranches.length > 0 ? r().includeBranches.join(', ') : 'all'}
                  <Show when={r().excludeBranches.length > 0}>, not {r().excludeBranches.join(', ')}</Show>
                </dd>
              </div>
              <div>
                <dt>Pushes build</dt>
                <dd>{r().buildEveryCommit ? 'every commit' : 'the head commit'}</dd>
              </div>
              <Show when={r().sshKey}>
                {(key) => (
                  <div>
                    <dt>SSH key</dt>
                    <dd>{key()}</dd>
                  </div>
                )}
              </Show>
              <div>
                <dt>Forks' pull requests</dt>
                <dd>{r().allowForkSecrets ? 'get secrets' : 'no secrets'}</dd>
              </div>
              <Show when={r().forge !== 'GENERIC'}>
                <div>
                  <dt>Commit statuses</dt>
                  <dd>
                    {r().hasForgeToken
                      ? `to ${r().forgeRepository ?? '?'} at ${r().forgeApiUrl ?? '?'}`
                      : 'off (no forge token)'}
                  </dd>
                </div>
              </Show>
            </dl>
            <Show when={canWrite()}>
              <BuildNow repositoryId={r().id} defaultBranch={r().defaultBranch} onBuilt={reload} />
            </Show>
            <details class="card webhook-details">
              <summary>Webhook</summary>
              <WebhookSetup forge={r().forge} webhookUrl={r().webhookUrl} installed={r().webhookInstalled} />
            </details>
            <Show when={canWrite()}>
              <Events
                events={events()}
                loading={!eventsQuery.data && eventsQuery.fetching}
                error={eventsQuery.error?.message ?? null}
                now={now()}
                onRefresh={reloadEvents}
                onReplayed={reloadEvents}
              />
            </Show>
            <section aria-labelledby="builds-heading" id="builds">
              <h2 id="builds-heading">Recent builds</h2>
              <Show
                when={r().builds.edges.length > 0}
                fallback={<p class="muted">No builds of this repository yet.</p>}
              >
                <ul class="item-list" aria-label="Builds of the repository">
                  <For each={r().builds.edges}>
                    {/* Not destructured: urql's store reconciles an edge in place, and only reads
                        through it follow. */}
                    {(edge) => (
                      <li class="item">
                        <A class="item-name" href={`/builds/${edge.node.id}`}>
                          #{edge.node.number}
                        </A>
                        <StatusBadge status={edge.node.status} small />
                        <span class="item-value">{edge.node.comment}</span>
                        <span class="muted">{causeSummary(edge.node.cause)}</span>
                        <time
                          class="muted"
                          datetime={edge.node.createdAt}
                          title={formatDate(edge.node.createdAt)}
                        >
                          {formatAgo(edge.node.createdAt, now())}
                        </time>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
          </>
        )}
      </Show>
    </section>
  );
}

/** triggerRepository: a branch or tag (the default branch when blank), built now. */
function BuildNow(props: { repositoryId: string; defaultBranch: string; onBuilt: () => void }) {
  const [ref, setRef] = createSignal('');
  const [refusal, setRefusal] = createSignal<Refusal | null>(null);
  const [started, setStarted] = createSignal<{ outcome: string; builds: { id: string; number: number }[] }>();
  const [triggering, trigger] = createMutation(TriggerRepository);

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setRefusal(null);
    setStarted(undefined);
    const result = await trigger({
      input: { repositoryId: props.repositoryId, ref: ref().trim() || null },
    });
    if (result.error) return setRefusal({ message: result.error.message });
    const r = result.data?.triggerRepository;
    switch (r?.__typename) {
      case 'TriggerRepositorySuccess':
        setStarted({ outcome: r.outcome, builds: r.builds });
        props.onBuilt();
        return;
      case 'InputError':
        return setRefusal({ message: r.message, path: r.path });
      case 'NotFoundError':
        return setRefusal({ message: r.message });
      default:
        return setRefusal({ message: 'no answer from the server' });
    }
  }
  const refError = () => (refusal()?.path === 'input.ref' ? refusal()!.message : null);
  const otherError = () => (refusal() && refusal()?.path !== 'input.ref' ? refusal()!.message : null);

  return (
    <form class="card build-now" aria-label="Build now" onSubmit={onSubmit}>
      <div class="build-now-row">
        <div class="field" data-field="ref">
          <label for="build-now-ref">Branch or tag (optional)</label>
          <input
            id="build-now-ref"
            autocomplete="off"
            spellcheck={false}
            value={ref()}
            placeholder={props.defaultBranch}
            aria-invalid={refError() ? 'true' : undefined}
            aria-describedby={refError() ? 'build-now-ref-error' : undefined}
            onInput={(e) => setRef(e.currentTarget.value)}
          />
          <Show when={refError()}>
            {(m) => (
              <span class="field-error" id="build-now-ref-error" role="alert">
                {m()}
              </span>
            )}
          </Show>
        </div>
        <button type="submit" class="primary" disabled={triggering.fetching}>
          {triggering.fetching ? 'Starting…' : 'Build now'}
        </button>
      </div>
      <Show when={otherError()}>{(m) => <ErrorNotice error={m()} title="Could not build" />}</Show>
      <Show when={started()}>
        {(s) => (
          <p class="notice notice-ok" role="status" data-testid="build-now-outcome">
            {s().outcome}
            <For each={s().builds}>
              {(b) => (
                <>
                  {' '}
                  <A href={`/builds/${b.id}`}>#{b.number}</A>
                </>
              )}
            </For>
          </p>
        )}
      </Show>
    </form>
  );
}

/** The forge events, newest first, with a Replay for each verified one. */
function Events(props: {
  events: EventNode[];
  loading: boolean;
  error: string | null;
  now: number;
  onRefresh: () => void;
  onReplayed: () => void;
}) {
  const [replaying, replay] = createMutation(ReplayForgeEvent);
  const [replayError, setReplayError] = createSignal<{ id: string; message: string } | null>(null);

  async function onReplay(event: EventNode) {
    setReplayError(null);
    const result = await replay({ input: { id: event.id } });
    const r = result.data?.replayForgeEvent;
    if (result.error) setReplayError({ id: event.id, message: result.error.message });
    else if (r && r.__typename !== 'ReplayForgeEventSuccess')
      setReplayError({ id: event.id, message: r.message });
    props.onReplayed();
  }

  return (
    <section aria-labelledby="events-heading" id="events">
      <div class="page-head">
        <h2 id="events-heading">Recent events</h2>
        <button type="button" class="link-button" onClick={() => props.onRefresh()}>
          Refresh
        </button>
      </div>
      <Show when={props.error && props.events.length === 0}>
        <ErrorNotice error={props.error!} title="Could not load the events" retry={props.onRefresh} />
      </Show>
      <Show when={props.loading}>
        <Loading label="Loading events…" />
      </Show>
      <Show
        when={props.events.length > 0}
        fallback={
          <Show when={!props.loading}>
            <p class="muted">
              No events yet: what the forge posts to the webhook URL shows here, accepted or refused.
            </p>
          </Show>
        }
      >
        <ul class="item-list events" aria-label="Forge events">
          <For each={props.events}>
            {(e) => (
              <li class="item event" data-event={e.id} data-delivery={e.deliveryId ?? ''}>
                <time class="muted" datetime={e.receivedAt} title={formatDate(e.receivedAt)}>
                  {formatAgo(e.receivedAt, props.now)}
                </time>
                <code class="item-name">{e.event}</code>
                <span class={`badge badge-small ${e.verified ? 'badge-ok' : 'badge-bad'}`}>
                  {e.verified ? 'verified' : 'refused'}
                </span>
                <span class="event-outcome item-value">
                  {e.outcome}
                  <Show when={e.replayOf}>
                    {(of) => (
                      <span class="muted"> (a replay of the event of {formatDate(of().receivedAt)})</span>
                    )}
                  </Show>
                </span>
                <Show when={e.builds.length > 0}>
                  <span class="event-builds">
                    <For each={e.builds}>
                      {(b) => (
                        <A href={`/builds/${b.id}`} title={b.status.toLowerCase()}>
                          #{b.number}
                        </A>
                      )}
                    </For>
                  </span>
                </Show>
                <span class="muted event-delivery" title="The forge's delivery id">
                  {e.deliveryId ?? 'no delivery id'}
                </span>
                <Show when={e.verified}>
                  <button
                    type="button"
                    class="link-button"
                    aria-label={`Replay the ${e.event} event of ${formatDate(e.receivedAt)}`}
                    disabled={replaying.fetching}
                    onClick={() => onReplay(e)}
                  >
                    Replay
                  </button>
                </Show>
                <Show when={replayError()?.id === e.id}>
                  <ErrorNotice error={replayError()!.message} title="Could not replay" />
                </Show>
              </li>
            )}
          </For>
        </ul>
      </Show>
    </section>
  );
}

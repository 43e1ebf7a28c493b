import { A, useNavigate, useParams } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import { graphql } from '../../graphql.ts';
import { causeSummary } from '../../lib/cause.ts';
import { createEvery } from '../../lib/create-every.ts';
import { createNow } from '../../lib/create-now.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';
import { isFinal } from '../../lib/status.ts';
import { BuildRowFragment } from '../builds/build-fragments.ts';
import { namespaceHref } from '../namespaces/NamespacesPage.tsx';
import { ScheduleActions } from './ScheduleActions.tsx';
import { type Refusal, ScheduleForm, type ScheduleSettings } from './ScheduleForm.tsx';
import { BuildsWhat, NextRun, ScheduleStateBadge } from './ScheduleSummary.tsx';
import { ScheduleFieldsFragment, UpdateSchedule } from './schedule-documents.ts';
import { formatInZone } from './schedule-words.ts';

const ScheduleQuery = graphql(
  `
  query Schedule($id: ID!) {
    node(id: $id) {
      __typename
      ... on Schedule {
        ...ScheduleFields
        upcoming: nextRuns(first: 5)
        owner {
          username
        }
        namespace {
          id
          path
          canWrite
          owner {
            username
          }
        }
        firings(first: 20) {
          slot
          firedAt
          late
          state
          outcome
          builds {
            id
            number
            status
          }
        }
        recent: builds(first: 10) {
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
  [ScheduleFieldsFragment, BuildRowFragment],
);

/** The badge tone of a firing's state (pending, fired, skipped or failed). */
const FIRING_TONES: Record<string, string> = { pending: 'live', fired: 'ok', skipped: 'idle', failed: 'bad' };

/** A schedule: its settings and times, Pause/Resume, Edit and Delete, its latest firings and builds. */
export default function SchedulePage() {
  const params = useParams<{ id: string }>();
  const navigate = useNavigate();
  // A schedule's global id may end in `=`, which its address carries escaped.
  const id = () => decodeURIComponent(params.id);
  const now = createNow(1000);
  const [query, refetch] = createQuery({
    query: ScheduleQuery,
    variables: () => ({ id: id() }),
    requestPolicy: 'cache-and-network',
  });
  const schedule = () => {
    const node = query.data?.node;
    return node?.__typename === 'Schedule' ? node : null;
  };
  // The viewer's own schedule (no namespace) is seen by its owner alone, who may change it.
  const canWrite = () => {
    const s = schedule();
    return Boolean(s && (s.namespace ? s.namespace.canWrite : true));
  };
  const backHref = () => {
    const ns = schedule()?.namespace;
    return ns ? `${namespaceHref(ns.owner.username, ns.path)}#schedules` : '/schedules';
  };
  const reload = () => refetch({ requestPolicy: 'network-only' });
  // No subscription for schedules: look again while a time has passed or a build or firing is unfinished.
  let tick = 0;
  createEvery(2_000, () => {
    tick++;
    const s = schedule();
    if (!s) return;
    const next = s.upcoming[0];
    const busy =
      s.recent.edges.some((e) => !isFinal(e.node.status)) || s.firings.some((f) => f.state === 'pending');
    if ((next && Date.parse(next) <= Date.now()) || busy || tick % 15 === 0) reload();
  });

  const [editing, setEditing] = createSignal(false);
  const [saved, setSaved] = createSignal(false);
  const [, update] = createMutation(UpdateSchedule);

  async function save(settings: ScheduleSettings): Promise<Refusal | null> {
    const s = schedule();
    if (!s) return { message: 'the schedule is gone' };
    const result = await update({
      input: {
        id: id(),
        name: settings.name,
        cron: settings.cron,
        timezone: settings.timezone ?? 'UTC',
        enabled: settings.enabled,
        ...(s.repository
          ? { branch: settings.branch ?? '', onlyOnChanges: settings.onlyOnChanges }
          : { manifest: settings.manifest }),
      },
    });
    if (result.error) return { message: result.error.message };
    const r = result.data?.updateSchedule;
    switch (r?.__typename) {
      case 'UpdateScheduleSuccess':
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

  return (
    <section class="page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <Show when={schedule()} fallback={<A href="/schedules">Your schedules</A>}>
          {(s) => (
            <Show when={s().namespace} fallback={<A href="/schedules">Your schedules</A>}>
              {(ns) => (
                <>
                  <A href="/namespaces">Namespaces</A>
                  {' / '}
                  <A href={backHref()}>
                    {ns().owner.username}@{ns().path}
                  </A>
                </>
              )}
            </Show>
          )}
        </Show>
      </nav>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the schedule" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the schedule…" />
      </Show>
      <Show when={query.data && !schedule()}>
        <h1>Not found</h1>
        <EmptyState title="No such schedule">
          <p>It does not exist, it was deleted, or you may not see it.</p>
        </EmptyState>
      </Show>
      <Show when={schedule()}>
        {(s) => (
          <>
            <div class="page-head">
              <h1>
                {s().name} <ScheduleStateBadge schedule={s()} />
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
                  <ScheduleActions schedule={s()} onChanged={reload} onDeleted={() => navigate(backHref())} />
                </div>
              </Show>
            </div>
            <Show when={s().problem}>
              {(p) => (
                <p class="notice notice-error problem" role="alert" data-testid="schedule-problem">
                  <strong>Problem:</strong> {p()}
                </p>
              )}
            </Show>
            <Show when={saved()}>
              <p class="notice notice-ok" role="status">
                Saved.
              </p>
            </Show>
            <Show when={editing()}>
              <ScheduleForm
                id="edit-schedule"
                namespace={
                  s().namespace ? `${s().namespace!.owner.username}@${s().namespace!.path}` : undefined
                }
                repositories={[]}
                initial={s()}
                submitLabel="Save"
                busyLabel="Saving…"
                submit={save}
                onCancel={() => setEditing(false)}
              />
            </Show>
            <dl class="facts">
              <div>
                <dt>Expression</dt>
                <dd>
                  <code>{s().cron}</code>
                </dd>
              </div>
              <div>
                <dt>Zone</dt>
                <dd>{s().timezone}</dd>
              </div>
              <div class="fact-wide">
                <dt>Next run</dt>
                <dd>
                  <NextRun schedule={s()} now={now()} />
                </dd>
              </div>
              <div>
                <dt>Last fired for</dt>
                <dd>
                  <Show when={s().lastRunAt} fallback={<span class="muted">never</span>}>
                    {(at) => (
                      <time datetime={at()} title={formatDate(at())}>
                        {formatAgo(at(), now())}
                      </time>
                    )}
                  </Show>
                </dd>
              </div>
              <div class="fact-wide">
                <dt>Each firing</dt>
                <dd>
                  <BuildsWhat schedule={s()} />
                </dd>
              </div>
              <div>
                <dt>Builds as</dt>
                <dd>{s().owner.username}</dd>
              </div>
            </dl>
            <Show when={s().upcoming.length > 1}>
              <section aria-labelledby="upcoming-heading">
                <h2 id="upcoming-heading">Coming times</h2>
                <ol class="preview-times" data-testid="upcoming">
                  <For each={s().upcoming}>
                    {(t) => (
                      <li data-time={t}>
                        <time class="preview-zone" datetime={t}>
                          {formatInZone(t, s().timezone) ?? t}
                        </time>
                        <span class="preview-local muted">your time: {formatDate(t)}</span>
                        <span class="preview-ago muted">{formatAgo(t, now())}</span>
                      </li>
                    )}
                  </For>
                </ol>
              </section>
            </Show>
            <Show when={s().manifest}>
              {(m) => (
                <details class="manifest">
                  <summary>Manifest</summary>
                  <pre>{m()}</pre>
                </details>
              )}
            </Show>
            <section aria-labelledby="firings-heading" id="firings">
              <h2 id="firings-heading">Recent firings</h2>
              <Show
                when={s().firings.length > 0}
                fallback={<p class="muted">It has not fired yet: each time it does shows here.</p>}
              >
                <ul class="item-list" aria-label="Firings">
                  <For each={s().firings}>
                    {(f) => (
                      <li class="item firing" data-slot={f.slot} data-state={f.state}>
                        <time class="item-name" datetime={f.slot} title={`claimed ${formatDate(f.firedAt)}`}>
                          {formatInZone(f.slot, s().timezone) ?? formatDate(f.slot)}
                        </time>
                        <span class={`badge badge-small badge-${FIRING_TONES[f.state] ?? 'idle'}`}>
                          {f.state}
                        </span>
                        <Show when={f.late}>
                          <span class="badge badge-small badge-warn" title="Kiln was not running at its time">
                            late
                          </span>
                        </Show>
                        <span class="item-value">{f.outcome}</span>
                        <Show when={f.builds.length > 0}>
                          <span class="event-builds">
                            <For each={f.builds}>
                              {(b) => (
                                <span>
                                  <A href={`/builds/${b.id}`}>#{b.number}</A>{' '}
                                  <StatusBadge status={b.status} small />
                                </span>
                              )}
                            </For>
                          </span>
                        </Show>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
            <section aria-labelledby="builds-heading" id="builds">
              <h2 id="builds-heading">Recent builds</h2>
              <Show
                when={s().recent.edges.length > 0}
                fallback={<p class="muted">No builds of this schedule yet.</p>}
              >
                <ul class="item-list" aria-label="Builds of the schedule">
                  <For each={s().recent.edges}>
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

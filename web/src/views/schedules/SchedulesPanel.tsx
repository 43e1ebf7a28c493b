import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { Dynamic } from 'solid-js/web';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { createEvery } from '../../lib/create-every.ts';
import { createNow } from '../../lib/create-now.ts';
import { isFinal } from '../../lib/status.ts';
import { ScheduleActions } from './ScheduleActions.tsx';
import { type Refusal, ScheduleForm, type ScheduleSettings } from './ScheduleForm.tsx';
import { type ScheduleFields, ScheduleSummary } from './ScheduleSummary.tsx';
import { CreateSchedule, ScheduleFieldsFragment } from './schedule-documents.ts';

const NamespaceSchedules = graphql(
  `
  query NamespaceSchedules($path: String!) {
    namespace(path: $path) {
      id
      schedules {
        ...ScheduleFields
      }
    }
  }
`,
  [ScheduleFieldsFragment],
);

const ViewerSchedules = graphql(
  `
  query ViewerSchedules {
    viewer {
      id
      schedules {
        ...ScheduleFields
      }
    }
  }
`,
  [ScheduleFieldsFragment],
);

/** The repositories a new schedule of the namespace may build: asked once the form opens. */
const ScheduleRepositories = graphql(`
  query ScheduleRepositories($path: String!) {
    namespace(path: $path) {
      id
      repositories {
        id
        name
        defaultBranch
      }
    }
  }
`);

/**
 * The schedules of a namespace (`namespace` is `owner@path`) or, without one, the viewer's own, and
 * for those who may write them, the form that creates one. The API has no subscription for
 * schedules: the list looks again while it is open, every two seconds once a next run has passed or
 * a last build is unfinished, else every half minute.
 */
export function SchedulesPanel(props: { namespace?: string; canWrite: boolean }) {
  const now = createNow(1000);
  const [nsQuery, refetchNs] = createQuery({
    query: NamespaceSchedules,
    variables: () => ({ path: props.namespace ?? '' }),
    pause: () => !props.namespace,
    requestPolicy: 'cache-and-network',
  });
  const [ownQuery, refetchOwn] = createQuery({
    query: ViewerSchedules,
    pause: () => Boolean(props.namespace),
    requestPolicy: 'cache-and-network',
  });
  const query = () => (props.namespace ? nsQuery : ownQuery);
  const schedules = (): ScheduleFields[] =>
    (props.namespace ? nsQuery.data?.namespace?.schedules : ownQuery.data?.viewer?.schedules) ?? [];
  const reload = () =>
    props.namespace
      ? refetchNs({ requestPolicy: 'network-only' })
      : refetchOwn({ requestPolicy: 'network-only' });

  const [creating, setCreating] = createSignal(false);
  const [created, setCreated] = createSignal<string | null>(null);
  const [repos] = createQuery({
    query: ScheduleRepositories,
    variables: () => ({ path: props.namespace ?? '' }),
    pause: () => !props.namespace || !creating(),
    requestPolicy: 'network-only',
  });
  const [, create] = createMutation(CreateSchedule);

  let tick = 0;
  createEvery(2_000, () => {
    tick++;
    const t = Date.now();
    const due = schedules().some((s) => {
      const next = s.nextRuns[0];
      const last = s.builds.edges[0]?.node;
      return (next && Date.parse(next) <= t) || (last && !isFinal(last.status));
    });
    if (due || tick % 15 === 0) reload();
  });

  async function submit(settings: ScheduleSettings): Promise<Refusal | null> {
    const result = await create({
      input: {
        namespace: props.namespace ?? null,
        name: settings.name,
        cron: settings.cron,
        timezone: settings.timezone,
        enabled: settings.enabled,
        manifest: settings.manifest,
        repositoryId: settings.repositoryId,
        branch: settings.branch,
        onlyOnChanges: settings.repositoryId ? settings.onlyOnChanges : null,
      },
    });
    if (result.error) return { message: result.error.message };
    const r = result.data?.createSchedule;
    switch (r?.__typename) {
      case 'CreateScheduleSuccess':
        setCreated(r.schedule.name);
        setCreating(false);
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
    <section aria-labelledby="schedules-heading" id="schedules">
      <div class="page-head">
        <Dynamic component={props.namespace ? 'h2' : 'h1'} id="schedules-heading">
          {props.namespace ? 'Schedules' : 'Your schedules'}
        </Dynamic>
        <Show when={props.canWrite && !creating()}>
          <button
            type="button"
            onClick={() => {
              setCreated(null);
              setCreating(true);
            }}
          >
            New schedule
          </button>
        </Show>
      </div>
      <Show when={!props.namespace}>
        <p class="muted">
          Schedules of your own build a manifest as you, at the times of a cron expression. A namespace's
          schedules are on its page.
        </p>
      </Show>
      <Show when={created()}>
        {(name) => (
          <p class="notice notice-ok" role="status" data-testid="created-schedule">
            Created the schedule {name()}.
          </p>
        )}
      </Show>
      <Show when={creating()}>
        <Show when={repos.error}>
          {(e) => <ErrorNotice error={e()} title="Could not load the namespace's repositories" />}
        </Show>
        <ScheduleForm
          id="new-schedule"
          namespace={props.namespace}
          repositories={repos.data?.namespace?.repositories ?? []}
          submitLabel="Create"
          busyLabel="Creating…"
          submit={submit}
          onCancel={() => setCreating(false)}
        />
      </Show>
      <Show when={query().error && !query().data}>
        <ErrorNotice error={query().error!} title="Could not load the schedules" retry={reload} />
      </Show>
      <Show when={!query().data && query().fetching}>
        <Loading label="Loading schedules…" />
      </Show>
      <Show when={query().data}>
        <Show
          when={schedules().length > 0}
          fallback={
            <EmptyState title="No schedules yet">
              <p class="muted">
                {props.canWrite
                  ? 'Create one: it starts a build at the times of a cron expression.'
                  : 'Those who may write this namespace create them.'}
              </p>
            </EmptyState>
          }
        >
          <ul class="item-list" aria-label="Schedules">
            <For each={schedules()}>
              {(s) => (
                <li class="item schedule-item" data-schedule={s.name}>
                  <ScheduleSummary schedule={s} now={now()} />
                  <Show when={props.canWrite}>
                    <ScheduleActions schedule={s} onChanged={reload} onDeleted={reload} />
                  </Show>
                </li>
              )}
            </For>
          </ul>
        </Show>
      </Show>
    </section>
  );
}

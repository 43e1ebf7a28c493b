import { A } from '@solidjs/router';
import { Show } from 'solid-js';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import type { ResultOf } from '../../graphql.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';
import { repositoryHref } from '../repositories/repository-href.ts';
import type { ScheduleFieldsFragment } from './schedule-documents.ts';
import { formatInZone, STATE_TONES, scheduleHref, scheduleState } from './schedule-words.ts';

export type ScheduleFields = ResultOf<typeof ScheduleFieldsFragment>;

/** A schedule's state as a badge: enabled, paused, or stopped (by Kiln; see its problem). */
export function ScheduleStateBadge(props: { schedule: Pick<ScheduleFields, 'enabled' | 'problem'> }) {
  const state = () => scheduleState(props.schedule);
  return (
    <span class={`badge badge-${STATE_TONES[state()]}`} data-testid="schedule-state" data-state={state()}>
      {state()}
    </span>
  );
}

/** When it fires next: relative, then absolute in the viewer's time (the schedule's zone on hover). */
export function NextRun(props: { schedule: ScheduleFields; now: number }) {
  return (
    <Show
      when={props.schedule.nextRuns[0]}
      fallback={
        <span class="muted" data-testid="no-next-run">
          no next run{props.schedule.enabled ? '' : ` (${scheduleState(props.schedule)})`}
        </span>
      }
    >
      {(at) => (
        <span data-testid="next-run">
          next{' '}
          <time
            datetime={at()}
            title={`${formatInZone(at(), props.schedule.timezone) ?? at()} (${props.schedule.timezone})`}
          >
            {formatAgo(at(), props.now)}, {formatDate(at())}
          </time>
        </span>
      )}
    </Show>
  );
}

/** What each firing builds, in words. */
export function BuildsWhat(props: { schedule: ScheduleFields }) {
  return (
    <Show when={props.schedule.repository} fallback={<span>builds a manifest</span>}>
      {(repo) => (
        <span>
          builds <A href={repositoryHref(repo().id)}>{repo().name}</A>{' '}
          <code>{props.schedule.branch ?? repo().defaultBranch}</code>
          {props.schedule.onlyOnChanges ? ', only on changes' : ''}
        </span>
      )}
    </Show>
  );
}

/**
 * One schedule in a list: its name (a link to its page), expression and zone, state, next run, last
 * build, and its problem prominently.
 */
export function ScheduleSummary(props: { schedule: ScheduleFields; now: number }) {
  const s = () => props.schedule;
  const last = () => s().builds.edges[0]?.node;
  return (
    <div class="schedule-summary">
      <div class="schedule-line">
        <A class="item-name" href={scheduleHref(s().id)}>
          {s().name}
        </A>
        <ScheduleStateBadge schedule={s()} />
        <code data-testid="schedule-cron">{s().cron}</code>
        <span class="muted" data-testid="schedule-zone">
          {s().timezone}
        </span>
      </div>
      <div class="schedule-meta muted">
        <NextRun schedule={s()} now={props.now} />
        <Show when={last()} fallback={<span data-testid="no-last-build">no builds yet</span>}>
          {(b) => (
            <span data-testid="last-build">
              last build{' '}
              <A href={`/builds/${b().id}`} title={formatDate(b().createdAt)}>
                #{b().number}
              </A>{' '}
              <StatusBadge status={b().status} small />
            </span>
          )}
        </Show>
        <BuildsWhat schedule={s()} />
      </div>
      <Show when={s().problem}>
        {(p) => (
          <p class="notice notice-error problem" role="alert" data-testid="schedule-problem">
            <strong>Problem:</strong> {p()}
          </p>
        )}
      </Show>
    </div>
  );
}

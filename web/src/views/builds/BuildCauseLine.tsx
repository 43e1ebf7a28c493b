import { A } from '@solidjs/router';
import { Show } from 'solid-js';
import type { ResultOf } from '../../graphql.ts';
import { authorName, firstLine, kindWords, shortRef, shortSha } from '../../lib/cause.ts';
import { formatDate } from '../../lib/format.ts';
import { repositoryHref } from '../repositories/repository-href.ts';
import { formatInZone, scheduleHref } from '../schedules/schedule-words.ts';
import type { BuildCauseFragment } from './build-fragments.ts';

/**
 * Why a build exists, on one line under its title: `push main @ abc1234 · Ada Lovelace · "Fix the
 * thing" · repo · reported success to github`. A manifest submitted by hand says who submitted it; a
 * schedule's build, which schedule and the time it was due (`scheduled by nightly for …`, and `late`).
 */
export function BuildCauseLine(props: { build: ResultOf<typeof BuildCauseFragment> }) {
  const c = () => props.build.cause;
  /** The slot as the schedule's zone reads it, for the hover. */
  const inScheduleZone = (at: string) => {
    const s = c().schedule;
    return s ? `${formatInZone(at, s.timezone) ?? at} (${s.timezone})` : at;
  };
  return (
    <p class="cause muted" data-testid="build-cause">
      <span class="cause-kind">{kindWords(c().kind)}</span>
      <Show when={c().pullRequest !== null}>
        {' '}
        <span data-testid="cause-pull-request">#{c().pullRequest}</span>
      </Show>
      <Show when={c().ref}>
        {(ref) => (
          <>
            {' '}
            <code data-testid="cause-ref" title={ref()}>
              {shortRef(ref())}
            </code>
          </>
        )}
      </Show>
      <Show when={c().sha}>
        {(sha) => (
          <>
            {' @ '}
            <Show
              when={c().url}
              fallback={
                <code data-testid="cause-sha" title={sha()}>
                  {shortSha(sha())}
                </code>
              }
            >
              {(url) => (
                <a href={url()} target="_blank" rel="noopener noreferrer" title={sha()}>
                  <code data-testid="cause-sha">{shortSha(sha())}</code>
                </a>
              )}
            </Show>
          </>
        )}
      </Show>
      <Show when={c().author}>
        {(author) => (
          <>
            <Sep />
            <span data-testid="cause-author" title={author()}>
              {authorName(author())}
            </span>
          </>
        )}
      </Show>
      <Show when={c().message}>
        {(message) => (
          <>
            <Sep />
            <span class="cause-message" data-testid="cause-message" title={message()}>
              {firstLine(message())}
            </span>
          </>
        )}
      </Show>
      <Show when={c().repository}>
        {(repo) => (
          <>
            <Sep />
            <A href={repositoryHref(repo().id)} data-testid="cause-repository">
              {repo().name}
            </A>
          </>
        )}
      </Show>
      <Show when={c().scheduledFor}>
        {(at) => (
          <>
            <Sep />
            <span data-testid="cause-schedule">
              scheduled
              <Show when={c().schedule}>
                {(s) => (
                  <>
                    {' by '}
                    <A href={scheduleHref(s().id)}>{s().name}</A>
                  </>
                )}
              </Show>{' '}
              for{' '}
              <time datetime={at()} title={inScheduleZone(at())}>
                {formatDate(at())}
              </time>
            </span>
            <Show when={c().late}>
              {' '}
              <span
                class="badge badge-small badge-warn"
                data-testid="cause-late"
                title="Kiln was not running at its time: it fired when it came back"
              >
                late
              </span>
            </Show>
          </>
        )}
      </Show>
      <Show when={c().kind === 'MANUAL' && c().user}>
        {(user) => (
          <>
            <Sep />
            by {user().username}
          </>
        )}
      </Show>
      <Show when={props.build.forgeStatus}>
        {(status) => (
          <>
            <Sep />
            <span data-testid="forge-status">{status()}</span>
          </>
        )}
      </Show>
    </p>
  );
}

function Sep() {
  return <span aria-hidden="true"> · </span>;
}

import { A, useLocation, useNavigate } from '@solidjs/router';
import { createMutation, createQuery, createSubscription } from '@urql/solid';
import { createEffect, createMemo, createSignal, For, on, onCleanup, Show, untrack } from 'solid-js';
import { LogViewer } from '../../components/log/LogViewer.tsx';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { StatusBadge } from '../../components/StatusBadge.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { buildName, buildScope } from '../../lib/build-name.ts';
import { createNow } from '../../lib/create-now.ts';
import { elapsed, formatAgo, formatBytes, formatDate, formatDuration } from '../../lib/format.ts';
import { useKiln } from '../../lib/kiln-context.ts';
import { isFinal, type JobStatus } from '../../lib/status.ts';
import { BuildCauseLine } from './BuildCauseLine.tsx';
import { BuildCauseFragment, BuildStateFragment } from './build-fragments.ts';
import { createLogStream } from './create-log-stream.ts';

const BuildQuery = graphql(
  `
  query Build($id: ID!) {
    build(id: $id) {
      ...BuildState
      ...BuildCause
      manifest
      pinned
      namespace {
        id
        canWrite
      }
      artifacts {
        id
        name
        size
        sha256
        downloadUrl
      }
    }
  }
`,
  [BuildStateFragment, BuildCauseFragment],
);

/** Who is looking: pinning is for those who may write the build. */
const BuildViewer = graphql(`
  query BuildViewer {
    viewer {
      id
      username
      isAdmin
    }
  }
`);

const PinBuild = graphql(`
  mutation PinBuild($input: PinBuildInput!) {
    pinBuild(input: $input) {
      __typename
      ... on PinBuildSuccess {
        build {
          id
          pinned
        }
      }
      ... on NotFoundError {
        message
      }
    }
  }
`);

const UnpinBuild = graphql(`
  mutation UnpinBuild($input: PinBuildInput!) {
    unpinBuild(input: $input) {
      __typename
      ... on UnpinBuildSuccess {
        build {
          id
          pinned
        }
      }
      ... on NotFoundError {
        message
      }
    }
  }
`);

const BuildUpdated = graphql(
  `
  subscription BuildUpdated($buildId: ID!) {
    buildUpdated(buildId: $buildId) {
      ...BuildState
    }
  }
`,
  [BuildStateFragment],
);

const KillBuild = graphql(
  `
  mutation KillBuild($input: KillBuildInput!) {
    killBuild(input: $input) {
      __typename
      ... on KillBuildSuccess {
        build {
          ...BuildState
        }
      }
      ... on NotFoundError {
        message
      }
    }
  }
`,
  [BuildStateFragment],
);

const RerunBuild = graphql(`
  mutation RerunBuild($input: SubmitBuildInput!) {
    submitBuild(input: $input) {
      __typename
      ... on SubmitBuildSuccess {
        build {
          id
        }
      }
      ... on ManifestError {
        message
      }
    }
  }
`);

type BuildState = ResultOf<typeof BuildStateFragment>;

/** One build's page; App mounts a new one for each build id. */
export default function BuildPage(props: { id: string }) {
  const location = useLocation();
  const navigate = useNavigate();
  const now = createNow(1000);
  const { session } = useKiln();
  /** Signed out: a public build is shown, but nothing may be done to it. */
  const signedIn = () => session.token() !== null;
  const buildId = props.id;
  const id = () => buildId;

  const [query, refetch] = createQuery({
    query: BuildQuery,
    variables: () => ({ id: id() }),
    requestPolicy: 'cache-and-network',
  });
  /** The newest state from whichever source spoke last: the query, the subscription or a kill. */
  const [latest, setLatest] = createSignal<BuildState | null>(null);
  const accept = (next: BuildState | null | undefined) => {
    if (!next) return;
    // Untracked: the effects that call this must rerun only when their own source changes.
    const cur = untrack(latest);
    // A status never goes back from final: an older message arriving late must not undo it.
    if (cur && cur.id === next.id && isFinal(cur.status) && !isFinal(next.status)) return;
    setLatest(next);
  };
  createEffect(() => accept(query.data?.build));

  // A boolean memo: createSubscription restarts whenever what `pause` reads changes, and `latest`
  // changes with every update.
  const settled = createMemo(() => !!latest() && isFinal(latest()!.status));
  const [updates] = createSubscription({
    query: BuildUpdated,
    variables: () => ({ buildId: id() }),
    pause: settled,
  });
  createEffect(() => accept(updates.data?.buildUpdated));
  // The forge hears of the final status after it is stored: when this page saw the build finish,
  // ask once more, a little later, for what reporting it came to.
  const sawUnfinished = createMemo(
    (seen: boolean) => seen || (!!latest() && !isFinal(latest()!.status)),
    false,
  );
  createEffect(
    on(settled, (done) => {
      if (!done || !untrack(sawUnfinished) || !untrack(() => query.data?.build?.cause.repository)) return;
      const timer = setTimeout(() => refetch({ requestPolicy: 'network-only' }), 3_000);
      onCleanup(() => clearTimeout(timer));
    }),
  );

  const stream = createLogStream(buildId, () => refetch({ requestPolicy: 'network-only' }));
  // A build that started between the query and the subscription: its log says it runs, so ask again.
  let asked = '';
  createEffect(() => {
    const b = latest();
    if (b?.status === 'QUEUED' && stream.store.lineCount() > 0 && asked !== b.id) {
      asked = b.id;
      refetch({ requestPolicy: 'network-only' });
    }
  });
  createEffect(() => {
    const b = latest();
    if (b) stream.store.setJobs(b.stages.flatMap((s) => s.jobs));
  });
  /**
   * What the page shows: the latest state, with a queued job that already has lines of this attempt
   * in the log (lines can come a moment before the status that says the job started) shown running,
   * and its build with it.
   */
  const shown = createMemo((): BuildState | null => {
    const b = latest();
    if (!b) return null;
    stream.store.version();
    if (stream.store.attempt() < b.attempt) return b;
    const logged = new Set(
      stream.store
        .sections()
        .filter((section) => section.lines.length > 0)
        .map((section) => section.key),
    );
    if (logged.size === 0) return b;
    const stages = b.stages.map((stage) => ({
      ...stage,
      jobs: stage.jobs.map((job) =>
        job.status === 'QUEUED' && logged.has(job.id) ? { ...job, status: 'RUNNING' as const } : job,
      ),
    }));
    return { ...b, status: b.status === 'QUEUED' ? 'RUNNING' : b.status, stages };
  });
  const jobStatus = (jobId: string): JobStatus | undefined => {
    for (const s of shown()?.stages ?? []) for (const j of s.jobs) if (j.id === jobId) return j.status;
    return undefined;
  };

  const [kill, executeKill] = createMutation(KillBuild);
  const [killError, setKillError] = createSignal<string | null>(null);
  async function onKill() {
    const b = latest();
    // As revoking a token does: a kill cannot be undone.
    if (!b || !window.confirm(`Kill ${buildName(b)}? Its running job stops and the jobs after it never run.`))
      return;
    setKillError(null);
    const result = await executeKill({ input: { buildId: id() } });
    if (result.error) return setKillError(result.error.message);
    const r = result.data?.killBuild;
    switch (r?.__typename) {
      case 'KillBuildSuccess':
        accept(r.build);
        return;
      case 'NotFoundError':
        return setKillError(r.message);
    }
  }

  const [rerun, executeRerun] = createMutation(RerunBuild);
  const [rerunError, setRerunError] = createSignal<string | null>(null);
  async function onRerun() {
    const b = latest();
    const manifest = query.data?.build?.manifest;
    if (!b || manifest === undefined) return;
    setRerunError(null);
    // Into the same namespace, whether the manifest or the submission named it.
    const namespace = b.namespace ? buildScope(b) : null;
    const result = await executeRerun({ input: { manifest, comment: b.comment, tags: b.tags, namespace } });
    if (result.error) return setRerunError(result.error.message);
    const r = result.data?.submitBuild;
    switch (r?.__typename) {
      case 'SubmitBuildSuccess':
        navigate(`/builds/${r.build.id}`);
        return;
      case 'ManifestError':
        return setRerunError(`the manifest is no longer valid: ${r.message}`);
    }
  }

  const [viewer] = createQuery({ query: BuildViewer, pause: () => !signedIn() });
  /** The API lets the namespace's writers (or, outside namespaces, the submitter) pin; admins always. */
  const mayWrite = () => {
    const full = query.data?.build;
    const me = viewer.data?.viewer;
    if (!full || !me) return false;
    if (me.isAdmin) return true;
    return full.namespace ? full.namespace.canWrite : full.owner.username === me.username;
  };
  const [pinned, setPinned] = createSignal<boolean | null>(null);
  createEffect(() => {
    const p = query.data?.build?.pinned;
    if (p !== undefined) setPinned(p);
  });
  const [pinning, setPinning] = createSignal(false);
  const [pinError, setPinError] = createSignal<string | null>(null);
  const [, executePin] = createMutation(PinBuild);
  const [, executeUnpin] = createMutation(UnpinBuild);
  async function onPin() {
    setPinError(null);
    setPinning(true);
    try {
      const input = { input: { buildId: id() } };
      if (pinned()) {
        const result = await executeUnpin(input);
        if (result.error) return setPinError(result.error.message);
        const r = result.data?.unpinBuild;
        switch (r?.__typename) {
          case 'UnpinBuildSuccess':
            return setPinned(r.build.pinned);
          case 'NotFoundError':
            return setPinError(r.message);
        }
      } else {
        const result = await executePin(input);
        if (result.error) return setPinError(result.error.message);
        const r = result.data?.pinBuild;
        switch (r?.__typename) {
          case 'PinBuildSuccess':
            return setPinned(r.build.pinned);
          case 'NotFoundError':
            return setPinError(r.message);
        }
      }
    } finally {
      setPinning(false);
    }
  }

  const duration = () => {
    const b = latest();
    return b ? elapsed(b.startedAt, b.finishedAt, now()) : null;
  };

  return (
    <section class="page build-page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <A href="/builds">Builds</A> <span aria-hidden="true">/</span>{' '}
        <span aria-current="page">{latest() ? buildName(latest()!) : '…'}</span>
      </nav>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the build" retry={() => refetch()} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the build…" />
      </Show>
      <Show when={query.data && !query.data.build}>
        <EmptyState title="No such build">
          <Show
            when={signedIn()}
            fallback={
              <p>
                It does not exist, or it is not public.{' '}
                <A href={`/sign-in?next=${encodeURIComponent(location.pathname)}`}>Sign in</A> to see it.
              </p>
            }
          >
            <p>
              It does not exist, or you may not see it. <A href="/builds">See all builds</A>.
            </p>
          </Show>
        </EmptyState>
      </Show>
      <Show when={shown()}>
        {(b) => (
          <>
            <div class="page-head">
              <h1>
                <span data-testid="build-name">{buildName(b())}</span> <StatusBadge status={b().status} />
              </h1>
              <div class="actions">
                <Show when={pinned() !== null && !mayWrite() && pinned()}>
                  <span class="badge pinned-badge" data-testid="pinned" title="Its artifacts are kept">
                    Pinned
                  </span>
                </Show>
                <Show when={signedIn() && mayWrite()}>
                  <button
                    type="button"
                    aria-pressed={pinned() ?? false}
                    class="toggle"
                    data-testid="pin"
                    disabled={pinning() || pinned() === null}
                    title={
                      pinned()
                        ? 'Pinned: its artifacts are kept. Unpin to let the curator delete them again.'
                        : 'Pin to keep its artifacts: the curator never deletes a pinned build’s.'
                    }
                    onClick={onPin}
                  >
                    {pinned() ? 'Unpin' : 'Pin'}
                  </button>
                </Show>
                <Show when={signedIn() && !isFinal(b().status)}>
                  <button type="button" class="danger" disabled={kill.fetching} onClick={onKill}>
                    {kill.fetching ? 'Killing…' : 'Kill'}
                  </button>
                </Show>
                <Show when={signedIn()}>
                  <button type="button" disabled={rerun.fetching || !query.data?.build} onClick={onRerun}>
                    {rerun.fetching ? 'Starting…' : 'Rerun'}
                  </button>
                </Show>
              </div>
            </div>
            <Show when={query.data?.build}>{(full) => <BuildCauseLine build={full()} />}</Show>
            <Show when={killError()}>
              {(e) => <ErrorNotice error={e()} title="Could not kill the build" />}
            </Show>
            <Show when={pinError()}>
              {(e) => <ErrorNotice error={e()} title={pinned() ? 'Could not unpin' : 'Could not pin'} />}
            </Show>
            <Show when={rerunError()}>
              {(e) => <ErrorNotice error={e()} title="Could not rerun the build" />}
            </Show>
            <dl class="facts">
              <div>
                <dt>Trigger</dt>
                <dd>{b().trigger.toLowerCase()}</dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>
                  <time datetime={b().createdAt} title={formatDate(b().createdAt)}>
                    {formatAgo(b().createdAt, now())}
                  </time>
                </dd>
              </div>
              <div>
                <dt>Started</dt>
                <dd>
                  <Show when={b().startedAt} fallback={<span class="muted">not yet</span>}>
                    {(t) => (
                      <time datetime={t()} title={formatDate(t())} data-testid="started-at">
                        {formatAgo(t(), now())}
                      </time>
                    )}
                  </Show>
                </dd>
              </div>
              <div>
                <dt>Finished</dt>
                <dd>
                  <Show
                    when={b().finishedAt}
                    fallback={<span class="muted">{b().startedAt ? 'running' : 'not yet'}</span>}
                  >
                    {(t) => (
                      <time datetime={t()} title={formatDate(t())} data-testid="finished-at">
                        {formatAgo(t(), now())}
                      </time>
                    )}
                  </Show>
                </dd>
              </div>
              <div>
                <dt>Duration</dt>
                <dd data-testid="duration">
                  {duration() === null
                    ? `queued for ${formatDuration(Math.max(0, now() - Date.parse(b().createdAt)))}`
                    : formatDuration(duration()!)}
                </dd>
              </div>
              <div>
                <dt>Queue</dt>
                <dd>{b().queue}</dd>
              </div>
              <Show when={b().attempt > 1}>
                <div>
                  <dt>Attempt</dt>
                  <dd>{b().attempt}</dd>
                </div>
              </Show>
              <div>
                <dt>Tags</dt>
                <dd>
                  <Show when={b().tags.length > 0} fallback={<span class="muted">none</span>}>
                    <For each={b().tags}>
                      {(tag) => (
                        <A class="tag" href={`/builds?tag=${encodeURIComponent(tag)}`}>
                          {tag}
                        </A>
                      )}
                    </For>
                  </Show>
                </dd>
              </div>
              <div class="fact-wide">
                <dt>Comment</dt>
                <dd>{b().comment || <span class="muted">none</span>}</dd>
              </div>
              <Show when={b().reason}>
                <div class="fact-wide">
                  <dt>Reason</dt>
                  <dd>{b().reason}</dd>
                </div>
              </Show>
            </dl>

            <h2 class="visually-hidden">Stages</h2>
            <ol class="stages">
              <For each={b().stages}>
                {(stage) => (
                  <li class="stage">
                    <div class="stage-name">
                      {stage.name}
                      <Show when={stage.canFail}>
                        <span class="muted"> (may fail)</span>
                      </Show>
                    </div>
                    <ul class="jobs">
                      <For each={stage.jobs}>
                        {(job) => {
                          const d = () => elapsed(job.startedAt, job.finishedAt, now());
                          return (
                            <li class="job" data-job={job.name}>
                              <a
                                href={`#${job.name}-L1`}
                                onClick={(e) => {
                                  e.preventDefault();
                                  navigate(`${location.pathname}${location.search}#${job.name}-L1`, {
                                    scroll: false,
                                  });
                                }}
                              >
                                {job.name}
                              </a>
                              <StatusBadge status={job.status} small />
                              <span class="muted job-times">
                                <Show when={job.startedAt}>
                                  {(t) => (
                                    <time
                                      datetime={t()}
                                      title={`Started ${formatDate(t())}`}
                                      data-testid="job-started-at"
                                    >
                                      {formatAgo(t(), now())}
                                    </time>
                                  )}
                                </Show>
                                <Show when={d() !== null}>
                                  {' · '}
                                  <time
                                    datetime={job.finishedAt ?? undefined}
                                    title={
                                      job.finishedAt ? `Finished ${formatDate(job.finishedAt)}` : 'Running'
                                    }
                                    data-testid="job-finished-at"
                                  >
                                    {formatDuration(d()!)}
                                  </time>
                                </Show>
                                {job.exitCode !== null && job.exitCode !== 0 ? ` · exit ${job.exitCode}` : ''}
                              </span>
                            </li>
                          );
                        }}
                      </For>
                    </ul>
                  </li>
                )}
              </For>
            </ol>

            <Show when={stream.error()}>
              {(e) => <ErrorNotice error={e()} title="The log stream stopped" retry={stream.retry} />}
            </Show>
            <LogViewer
              store={stream.store}
              hash={() => location.hash}
              setHash={(anchor) =>
                navigate(`${location.pathname}${location.search}#${anchor}`, { replace: true, scroll: false })
              }
              streamState={stream.state}
              jobStatus={jobStatus}
              rawUrl={`/builds/${encodeURIComponent(buildId)}/raw`}
              onRawClick={(e) => openRawWithToken(e, session.token())}
              downloadName={`${buildName(b()).replace(/[^A-Za-z0-9.-]+/g, '-')}.log`}
              emptyText={isFinal(b().status) ? 'This build printed nothing.' : 'Waiting for output…'}
            />

            <section aria-labelledby="artifacts-heading">
              <h2 id="artifacts-heading">Artifacts</h2>
              <Artifacts items={query.data?.build?.artifacts ?? []} finished={isFinal(b().status)} />
            </section>
            <details class="manifest">
              <summary>Manifest</summary>
              <pre>{query.data?.build?.manifest}</pre>
            </details>
          </>
        )}
      </Show>
    </section>
  );
}

/**
 * The raw log is the server's: a plain link works with the session cookie (a password sign-in) and
 * for public builds. A console signed in with a pasted API token has no cookie, so it fetches the
 * log with the token and opens it in the tab the link would have opened.
 */
function openRawWithToken(e: MouseEvent, token: string | null) {
  if (!token || /(?:^|;\s*)kiln_csrf=/.test(document.cookie)) return;
  e.preventDefault();
  const href = (e.currentTarget as HTMLAnchorElement).href;
  const tab = window.open('', '_blank');
  fetch(href, { headers: { authorization: `Bearer ${token}` } })
    .then(async (res) => {
      const text = await res.text();
      const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
      if (tab) tab.location.href = url;
      else window.location.href = url;
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    })
    .catch(() => {
      if (tab) tab.location.href = href;
    });
}

type ArtifactItem = { id: string; name: string; size: number; sha256: string; downloadUrl: string };

/** Downloads need the bearer token, which a plain link cannot send: fetch, then save the blob. */
function Artifacts(props: { items: ArtifactItem[]; finished: boolean }) {
  const { session } = useKiln();
  const [busy, setBusy] = createSignal<string | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  async function download(e: MouseEvent, a: ArtifactItem) {
    e.preventDefault();
    setError(null);
    setBusy(a.id);
    try {
      const token = session.token();
      const res = await fetch(a.downloadUrl, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        credentials: 'same-origin',
      });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = a.name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(`${a.name}: ${(err as Error).message}`);
    } finally {
      setBusy(null);
    }
  }
  return (
    <>
      <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not download" />}</Show>
      <Show
        when={props.items.length > 0}
        fallback={
          <p class="muted">{props.finished ? 'This build collected no artifacts.' : 'None collected yet.'}</p>
        }
      >
        <ul class="item-list" aria-label="Artifacts">
          <For each={props.items}>
            {(a) => (
              <li class="item">
                <a class="item-name" href={a.downloadUrl} download={a.name} onClick={(e) => download(e, a)}>
                  {busy() === a.id ? `${a.name} (downloading…)` : a.name}
                </a>
                <span class="muted">{formatBytes(a.size)}</span>
                <code class="muted item-value" title="SHA-256">
                  {a.sha256.slice(0, 12)}
                </code>
              </li>
            )}
          </For>
        </ul>
      </Show>
    </>
  );
}

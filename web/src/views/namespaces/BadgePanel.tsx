import { A } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createEffect, createSignal, on, Show } from 'solid-js';
import { CopyField } from '../../components/CopyField.tsx';
import { ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';

/** The token a README's badge of a namespace that is not PUBLIC carries (owners and collaborators). */
const NamespaceBadgeToken = graphql(`
  query NamespaceBadgeToken($path: String!) {
    namespace(path: $path) {
      id
      badgeToken
    }
  }
`);

const RegenerateBadgeToken = graphql(`
  mutation RegenerateBadgeToken($namespace: String!) {
    regenerateBadgeToken(namespace: $namespace) {
      __typename
      ... on RegenerateBadgeTokenSuccess {
        badgeToken
      }
      ... on NotFoundError {
        message
      }
    }
  }
`);

/**
 * The namespace's status badge (`/badges/<owner>/<path>.svg`, drawn by the API from its latest
 * finished build) as it renders, the Markdown and HTML to paste into a README, and the CCTray feed
 * for build monitors. A namespace that is not PUBLIC needs its badge token in the URL: those who may
 * write it read it here and regenerate it (which breaks the badges that carry the old one).
 */
export function BadgePanel(props: { owner: string; path: string; visibility: string; canWrite: boolean }) {
  const ref = () => `${props.owner}@${props.path}`;
  const isPublic = () => props.visibility === 'PUBLIC';
  const [query, refetch] = createQuery({
    query: NamespaceBadgeToken,
    variables: () => ({ path: ref() }),
    pause: () => !props.canWrite || isPublic(),
    requestPolicy: 'cache-and-network',
  });
  // The token comes and goes with the visibility (a PUBLIC namespace's badge needs none).
  createEffect(
    on(
      () => props.visibility,
      () => {
        if (props.canWrite && !isPublic()) refetch({ requestPolicy: 'network-only' });
      },
      { defer: true },
    ),
  );
  const token = () => (isPublic() ? null : (query.data?.namespace?.badgeToken ?? null));
  const [branch, setBranch] = createSignal('');
  const [manifest, setManifest] = createSignal('');
  const [regenerating, regenerate] = createMutation(RegenerateBadgeToken);
  const [error, setError] = createSignal<string | null>(null);
  const [regenerated, setRegenerated] = createSignal(false);

  const origin = () => window.location.origin;
  const badgeUrl = () => {
    const segments = props.path.split('/').map(encodeURIComponent).join('/');
    const search = new URLSearchParams();
    if (branch().trim()) search.set('branch', branch().trim());
    if (manifest().trim()) search.set('manifest', manifest().trim());
    const t = token();
    if (t) search.set('token', t);
    const q = search.toString();
    return `${origin()}/badges/${encodeURIComponent(props.owner)}/${segments}.svg${q ? `?${q}` : ''}`;
  };
  /** Nothing to show when the badge needs a token this viewer may not read. */
  const shown = () => isPublic() || token() !== null;

  async function onRegenerate() {
    const ok = window.confirm(
      `Make a new badge token for ${ref()}? Badges that carry the old one (in READMEs, dashboards) stop showing until they are given the new URL.`,
    );
    if (!ok) return;
    setError(null);
    setRegenerated(false);
    const result = await regenerate({ namespace: ref() });
    const r = result.data?.regenerateBadgeToken;
    if (result.error) return setError(result.error.message);
    if (r?.__typename === 'NotFoundError') return setError(r.message);
    setRegenerated(true);
    refetch({ requestPolicy: 'network-only' });
  }

  return (
    <section aria-labelledby="badge-heading" id="badge">
      <h2 id="badge-heading">Status badge</h2>
      <div class="card badge-panel">
        <Show when={!isPublic() && props.canWrite && !query.data && query.fetching}>
          <Loading label="Loading the badge token…" />
        </Show>
        <Show when={query.error}>
          {(e) => <ErrorNotice error={e()} title="Could not load the badge token" retry={() => refetch()} />}
        </Show>
        <Show
          when={shown()}
          fallback={
            <Show when={!props.canWrite}>
              <p class="muted" data-testid="badge-no-token">
                This namespace is not public: its badge needs a token that those who may write it see here.
              </p>
            </Show>
          }
        >
          <div class="badge-preview">
            <img src={badgeUrl()} alt={`Build status of ${ref()}`} data-testid="badge-image" />
            <span class="muted">
              The status of the latest finished build
              {branch().trim() || manifest().trim() ? ' of that branch and manifest' : ''}.
            </span>
          </div>
          <div class="form-row">
            <label>
              Branch (optional)
              <input
                name="badge-branch"
                autocomplete="off"
                spellcheck={false}
                value={branch()}
                placeholder="any"
                onInput={(e) => setBranch(e.currentTarget.value)}
              />
            </label>
            <label>
              Manifest (optional)
              <input
                name="badge-manifest"
                autocomplete="off"
                spellcheck={false}
                value={manifest()}
                placeholder=".kiln.yml"
                onInput={(e) => setManifest(e.currentTarget.value)}
              />
            </label>
          </div>
          <CopyField label="Markdown" value={`![build](${badgeUrl()})`} testId="badge-markdown" />
          <CopyField
            label="HTML"
            value={`<img src="${badgeUrl()}" alt="build status">`}
            testId="badge-html"
          />
          <Show when={token()}>
            <p class="muted">
              The URL carries this namespace's badge token: it shows the badge and nothing else. Whoever sees
              your README can read it.
            </p>
          </Show>
        </Show>
        <Show when={props.canWrite && !isPublic()}>
          <div class="actions">
            <button type="button" class="danger" disabled={regenerating.fetching} onClick={onRegenerate}>
              {regenerating.fetching ? 'Regenerating…' : 'Regenerate token'}
            </button>
          </div>
          <Show when={regenerated()}>
            <p class="notice notice-ok" role="status" data-testid="badge-regenerated">
              New token made: badges with the old one no longer show. Paste the snippet above again.
            </p>
          </Show>
          <Show when={error()}>
            {(m) => <ErrorNotice error={m()} title="Could not regenerate the token" />}
          </Show>
        </Show>
      </div>
      <div class="card cctray">
        <CopyField label="CCTray feed" value={`${origin()}/cctray.xml`} testId="cctray-url" />
        <p class="muted">
          Build monitors (CCMenu, Nevergreen, build lights) read the latest build of every namespace you may
          see from it; this one is the project <code>{`${props.owner}/${props.path}`}</code>. Monitors speak
          Basic auth: any username, and as the password an <A href="/tokens">API token</A> (the feed only
          reads: give it as few scopes as you can).
        </p>
      </div>
    </section>
  );
}

import { createMutation, createQuery } from '@urql/solid';
import { createMemo, createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { formatDate } from '../../lib/format.ts';
import { CreateToken, failureMessage, isMissingOperation } from '../session/accounts-documents.ts';

const TokensQuery = graphql(`
  query Tokens {
    scopes {
      name
      resource
      permission
      description
    }
    viewer {
      id
      tokens {
        id
        name
        scopes
        lastUsedAt
        createdAt
        expiresAt
      }
      sessions {
        id
        name
        lastUsedAt
        createdAt
        expiresAt
      }
    }
  }
`);

const RevokeToken = graphql(`
  mutation RevokeToken($input: RevokeTokenInput!) {
    revokeToken(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

type Scope = ResultOf<typeof TokensQuery>['scopes'][number];

/** The scopes as the server lists them, one row a resource and one column a permission. */
function scopeGrid(scopes: readonly Scope[]) {
  return {
    resources: [...new Set(scopes.map((s) => s.resource))],
    permissions: [...new Set(scopes.map((s) => s.permission))],
    at: (resource: string, permission: string) =>
      scopes.find((s) => s.resource === resource && s.permission === permission),
  };
}

type Listed = { id: string; name: string; lastUsedAt: string | null; createdAt: string; scopes?: string[] };

function TokenList(props: {
  label: string;
  items: Listed[];
  empty: string;
  revoking: boolean;
  onRevoke: (t: Listed) => void;
}) {
  return (
    <Show when={props.items.length > 0} fallback={<EmptyState title={props.empty} />}>
      <ul class="item-list" aria-label={props.label}>
        <For each={props.items}>
          {(t) => (
            <li class="item" data-token={t.name}>
              <span class="item-name">{t.name}</span>
              <Show when={t.scopes}>
                {(scopes) => <span class="item-value muted">{scopes().join(', ') || 'no scopes'}</span>}
              </Show>
              <span class="muted">
                {t.lastUsedAt ? `last used ${formatDate(t.lastUsedAt)}` : 'never used'}
              </span>
              <button
                type="button"
                class="link-button"
                aria-label={`Revoke ${t.name}`}
                disabled={props.revoking}
                onClick={() => props.onRevoke(t)}
              >
                Revoke
              </button>
            </li>
          )}
        </For>
      </ul>
    </Show>
  );
}

export default function TokensPage() {
  const [name, setName] = createSignal('');
  const [scopes, setScopes] = createSignal<ReadonlySet<string>>(new Set(['build:read']));
  /** The new token's secret, shown once, and which token it is (revoking that one hides it). */
  const [secret, setSecret] = createSignal<{ id: string; token: string } | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  const [copied, setCopied] = createSignal(false);
  const [creation, create] = createMutation(CreateToken);
  const [list, refetch] = createQuery({ query: TokensQuery, requestPolicy: 'cache-and-network' });
  const reload = () => refetch({ requestPolicy: 'network-only' });
  const [revocation, revoke] = createMutation(RevokeToken);
  const [revokeError, setRevokeError] = createSignal<string | null>(null);

  async function onRevoke(t: Listed) {
    if (!window.confirm(`Revoke ${t.name}? Anything using it is refused from now on.`)) return;
    setRevokeError(null);
    const result = await revoke({ input: { id: t.id } });
    const r = result.data?.revokeToken;
    if (result.error) setRevokeError(result.error.message);
    else if (r?.__typename === 'NotFoundError') setRevokeError(r.message);
    // A revoked secret is worth nothing: do not leave it on screen to be copied.
    else if (secret()?.id === t.id) setSecret(null);
    reload();
  }

  function toggle(scope: string, on: boolean) {
    const next = new Set(scopes());
    if (on) next.add(scope);
    else next.delete(scope);
    setScopes(next);
  }

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setError(null);
    setSecret(null);
    setCopied(false);
    const result = await create({ input: { name: name().trim(), scopes: [...scopes()] } });
    if (result.error) {
      const m = result.error.message;
      return setError(isMissingOperation(m) ? 'this server does not have personal access tokens yet' : m);
    }
    const r = result.data?.createToken;
    switch (r?.__typename) {
      case 'CreateTokenSuccess':
        setSecret({ id: r.accessToken.id, token: r.token });
        setName('');
        reload();
        return;
      default:
        return setError(failureMessage(r));
    }
  }

  return (
    <section class="page">
      <h1>Personal access tokens</h1>
      <p class="muted">A token acts as you, limited to the scopes you give it. Its secret is shown once.</p>
      <Show when={secret()}>
        {(s) => (
          <div class="notice notice-ok" role="status">
            <p>
              <strong>Copy your new token now:</strong> it will not be shown again.
            </p>
            <div class="secret">
              <code data-testid="new-token">{s().token}</code>
              <button
                type="button"
                onClick={async () => {
                  await navigator.clipboard.writeText(s().token);
                  setCopied(true);
                }}
              >
                {copied() ? 'Copied' : 'Copy'}
              </button>
            </div>
          </div>
        )}
      </Show>
      <form class="card" onSubmit={onSubmit}>
        <label>
          Name
          <input
            required
            value={name()}
            placeholder="e.g. deploy bot"
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <fieldset class="scopes">
          <legend>Scopes</legend>
          <Show when={list.data?.scopes} fallback={<Loading label="Loading scopes…" />}>
            {(all) => {
              const grid = createMemo(() => scopeGrid(all()));
              return (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Resource</th>
                      <For each={grid().permissions}>{(p) => <th scope="col">{p}</th>}</For>
                    </tr>
                  </thead>
                  <tbody>
                    <For each={grid().resources}>
                      {(resource) => (
                        <tr>
                          <th scope="row">{resource}</th>
                          <For each={grid().permissions}>
                            {(permission) => (
                              <td>
                                <Show when={grid().at(resource, permission)}>
                                  {(scope) => (
                                    <input
                                      type="checkbox"
                                      aria-label={scope().name}
                                      title={scope().description}
                                      checked={scopes().has(scope().name)}
                                      onChange={(e) => toggle(scope().name, e.currentTarget.checked)}
                                    />
                                  )}
                                </Show>
                              </td>
                            )}
                          </For>
                        </tr>
                      )}
                    </For>
                  </tbody>
                </table>
              );
            }}
          </Show>
        </fieldset>
        <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not create the token" />}</Show>
        <button type="submit" class="primary" disabled={creation.fetching || scopes().size === 0}>
          {creation.fetching ? 'Creating…' : 'Create token'}
        </button>
      </form>
      <Show when={revokeError()}>{(m) => <ErrorNotice error={m()} title="Could not revoke" />}</Show>
      <Show when={list.error && !list.data}>
        <ErrorNotice error={list.error!} title="Could not load your tokens" retry={reload} />
      </Show>
      <Show when={!list.data && list.fetching}>
        <Loading label="Loading tokens…" />
      </Show>
      <Show when={list.data?.viewer}>
        {(v) => (
          <>
            <section aria-labelledby="tokens-heading">
              <h2 id="tokens-heading">Your tokens</h2>
              <TokenList
                label="Tokens"
                items={v().tokens}
                empty="No personal access tokens"
                revoking={revocation.fetching}
                onRevoke={onRevoke}
              />
            </section>
            <section aria-labelledby="sessions-heading">
              <h2 id="sessions-heading">Signed-in sessions</h2>
              <TokenList
                label="Sessions"
                items={v().sessions}
                empty="No sessions: you signed in with a token"
                revoking={revocation.fetching}
                onRevoke={onRevoke}
              />
            </section>
          </>
        )}
      </Show>
    </section>
  );
}

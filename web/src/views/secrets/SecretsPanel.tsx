import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { formatDate } from '../../lib/format.ts';

const VariableFields = graphql(`
  fragment VariableFields on Variable @_unmask {
    id
    key
    value
    masked
    createdAt
  }
`);
const KeyFields = graphql(`
  fragment KeyFields on SshKey @_unmask {
    id
    name
    config
    createdAt
  }
`);

const NamespaceSecrets = graphql(
  `
  query NamespaceSecrets($path: String!) {
    namespace(path: $path) {
      id
      variables {
        ...VariableFields
      }
      sshKeys {
        ...KeyFields
      }
    }
  }
`,
  [VariableFields, KeyFields],
);

const ViewerSecrets = graphql(
  `
  query ViewerSecrets {
    viewer {
      id
      variables {
        ...VariableFields
      }
      sshKeys {
        ...KeyFields
      }
    }
  }
`,
  [VariableFields, KeyFields],
);

const CreateVariable = graphql(`
  mutation CreateVariable($input: CreateVariableInput!) {
    createVariable(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);
const DeleteVariable = graphql(`
  mutation DeleteVariable($input: DeleteVariableInput!) {
    deleteVariable(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);
const CreateKey = graphql(`
  mutation CreateKey($input: CreateKeyInput!) {
    createKey(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);
const DeleteKey = graphql(`
  mutation DeleteKey($input: DeleteKeyInput!) {
    deleteKey(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

type Outcome = { error?: { message: string }; data?: Record<string, { __typename: string } | undefined> };

/** The failure of a mutation (transport error or an Error member of its result), or null. */
function failure(result: Outcome, field: string): string | null {
  if (result.error) return result.error.message;
  const r = result.data?.[field] as { __typename: string; message?: string } | undefined;
  if (!r) return 'no answer from the server';
  return r.__typename.endsWith('Success') ? null : (r.message ?? r.__typename);
}

/**
 * The variables and SSH keys of a namespace (`namespace` is `owner@path`) or, without one, the
 * viewer's own. Masked values and private keys are never returned by the API, so never shown.
 */
export function SecretsPanel(props: { namespace?: string }) {
  const id = props.namespace ? 'ns' : 'own';
  const [nsQuery, refetchNs] = createQuery({
    query: NamespaceSecrets,
    variables: () => ({ path: props.namespace ?? '' }),
    pause: () => !props.namespace,
  });
  const [ownQuery, refetchOwn] = createQuery({ query: ViewerSecrets, pause: () => Boolean(props.namespace) });
  const data = () => (props.namespace ? nsQuery.data?.namespace : ownQuery.data?.viewer);
  const query = () => (props.namespace ? nsQuery : ownQuery);
  const refetch = () =>
    props.namespace
      ? refetchNs({ requestPolicy: 'network-only' })
      : refetchOwn({ requestPolicy: 'network-only' });

  const [key, setKey] = createSignal('');
  const [value, setValue] = createSignal('');
  const [masked, setMasked] = createSignal(true);
  const [varError, setVarError] = createSignal<string | null>(null);
  const [keyName, setKeyName] = createSignal('');
  const [privateKey, setPrivateKey] = createSignal('');
  const [keyConfig, setKeyConfig] = createSignal('');
  const [keyError, setKeyError] = createSignal<string | null>(null);
  const [listError, setListError] = createSignal<string | null>(null);
  const [createVar, createVariable] = createMutation(CreateVariable);
  const [, deleteVariable] = createMutation(DeleteVariable);
  const [createK, createKey] = createMutation(CreateKey);
  const [, deleteKey] = createMutation(DeleteKey);

  async function addVariable(e: SubmitEvent) {
    e.preventDefault();
    setVarError(null);
    const result = await createVariable({
      input: { namespace: props.namespace ?? null, key: key().trim(), value: value(), masked: masked() },
    });
    const problem = failure(result as Outcome, 'createVariable');
    if (problem) return setVarError(problem);
    setKey('');
    setValue('');
    refetch();
  }

  async function addKey(e: SubmitEvent) {
    e.preventDefault();
    setKeyError(null);
    const result = await createKey({
      input: {
        namespace: props.namespace ?? null,
        name: keyName().trim(),
        privateKey: privateKey(),
        config: keyConfig() || null,
      },
    });
    const problem = failure(result as Outcome, 'createKey');
    if (problem) return setKeyError(problem);
    setKeyName('');
    setPrivateKey('');
    setKeyConfig('');
    refetch();
  }

  async function remove(kind: 'variable' | 'key', itemId: string, label: string) {
    if (!window.confirm(`Delete ${label}? Builds already submitted keep their copy.`)) return;
    setListError(null);
    const result =
      kind === 'variable'
        ? await deleteVariable({ input: { id: itemId } })
        : await deleteKey({ input: { id: itemId } });
    const problem = failure(result as Outcome, kind === 'variable' ? 'deleteVariable' : 'deleteKey');
    if (problem) setListError(problem);
    refetch();
  }

  return (
    <div class="secrets">
      <Show when={query().error && !data()}>
        <ErrorNotice error={query().error!} title="Could not load variables and keys" retry={refetch} />
      </Show>
      <Show when={!data() && query().fetching}>
        <Loading label="Loading variables and keys…" />
      </Show>
      <Show when={listError()}>{(m) => <ErrorNotice error={m()} title="Could not delete" />}</Show>
      <Show when={data()}>
        {(d) => (
          <>
            <section aria-labelledby={`${id}-variables`}>
              <h2 id={`${id}-variables`}>Variables</h2>
              <Show
                when={d().variables.length > 0}
                fallback={
                  <EmptyState title="No variables yet">Builds get them as environment variables.</EmptyState>
                }
              >
                <ul class="item-list" aria-label="Variables">
                  <For each={d().variables}>
                    {(v) => (
                      <li class="item" data-variable={v.key}>
                        <code class="item-name">{v.key}</code>
                        <span class="item-value">
                          {v.masked ? (
                            <span class="badge badge-idle" title="Stored encrypted; never shown again">
                              masked
                            </span>
                          ) : (
                            <code>{v.value}</code>
                          )}
                        </span>
                        <time class="muted" datetime={v.createdAt}>
                          {formatDate(v.createdAt)}
                        </time>
                        <button
                          type="button"
                          class="link-button"
                          aria-label={`Delete variable ${v.key}`}
                          onClick={() => remove('variable', v.id, `variable ${v.key}`)}
                        >
                          Delete
                        </button>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
              <form class="card" aria-label="New variable" onSubmit={addVariable}>
                <div class="form-row">
                  <label>
                    Key
                    <input
                      required
                      name="key"
                      autocomplete="off"
                      value={key()}
                      placeholder="e.g. DEPLOY_ENV"
                      onInput={(e) => setKey(e.currentTarget.value)}
                    />
                  </label>
                  <label>
                    Value
                    <input
                      required
                      name="value"
                      autocomplete="off"
                      type={masked() ? 'password' : 'text'}
                      value={value()}
                      onInput={(e) => setValue(e.currentTarget.value)}
                    />
                  </label>
                </div>
                <label class="check">
                  <input
                    type="checkbox"
                    checked={masked()}
                    onChange={(e) => setMasked(e.currentTarget.checked)}
                  />
                  Masked (encrypted, never shown again, hidden in logs; at least 6 characters)
                </label>
                <Show when={varError()}>
                  {(m) => <ErrorNotice error={m()} title="Could not add the variable" />}
                </Show>
                <div class="actions">
                  <button type="submit" class="primary" disabled={createVar.fetching}>
                    {createVar.fetching ? 'Adding…' : 'Add variable'}
                  </button>
                </div>
              </form>
            </section>
            <section aria-labelledby={`${id}-keys`}>
              <h2 id={`${id}-keys`}>SSH keys</h2>
              <Show
                when={d().sshKeys.length > 0}
                fallback={<EmptyState title="No SSH keys yet">Builds get them in ~/.ssh.</EmptyState>}
              >
                <ul class="item-list" aria-label="SSH keys">
                  <For each={d().sshKeys}>
                    {(k) => (
                      <li class="item">
                        <code class="item-name">~/.ssh/{k.name}</code>
                        <span class="item-value muted">{k.config || 'no ssh_config lines'}</span>
                        <time class="muted" datetime={k.createdAt}>
                          {formatDate(k.createdAt)}
                        </time>
                        <button
                          type="button"
                          class="link-button"
                          aria-label={`Delete key ${k.name}`}
                          onClick={() => remove('key', k.id, `key ${k.name}`)}
                        >
                          Delete
                        </button>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
              <form class="card" aria-label="New SSH key" onSubmit={addKey}>
                <label>
                  Key name
                  <input
                    required
                    value={keyName()}
                    placeholder="e.g. id_deploy"
                    onInput={(e) => setKeyName(e.currentTarget.value)}
                  />
                </label>
                <label>
                  Private key
                  <textarea
                    required
                    rows={4}
                    spellcheck={false}
                    value={privateKey()}
                    placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
                    onInput={(e) => setPrivateKey(e.currentTarget.value)}
                  />
                </label>
                <label>
                  ssh_config lines (optional)
                  <textarea
                    rows={2}
                    spellcheck={false}
                    value={keyConfig()}
                    placeholder="Host github.com"
                    onInput={(e) => setKeyConfig(e.currentTarget.value)}
                  />
                </label>
                <Show when={keyError()}>
                  {(m) => <ErrorNotice error={m()} title="Could not add the key" />}
                </Show>
                <div class="actions">
                  <button type="submit" class="primary" disabled={createK.fetching}>
                    {createK.fetching ? 'Adding…' : 'Add key'}
                  </button>
                </div>
              </form>
            </section>
          </>
        )}
      </Show>
    </div>
  );
}

/** The viewer's own variables and keys: every build they submit gets them. */
export default function SecretsPage() {
  return (
    <section class="page">
      <h1>Your variables and keys</h1>
      <p class="muted">
        Every build you submit gets these; a namespace's own come after them (and win). Manage a namespace's
        on its page.
      </p>
      <SecretsPanel />
    </section>
  );
}

import { createMutation } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { CreateToken, failureMessage, isMissingOperation } from '../session/accounts-documents.ts';

const RESOURCES = [
  'build',
  'namespace',
  'variable',
  'key',
  'object',
  'artifact',
  'image',
  'cron',
  'repository',
  'webhook',
  'runner',
] as const;
const PERMISSIONS = ['read', 'write', 'delete'] as const;

export default function TokensPage() {
  const [name, setName] = createSignal('');
  const [scopes, setScopes] = createSignal<ReadonlySet<string>>(new Set(['build:read']));
  const [secret, setSecret] = createSignal<string | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  const [copied, setCopied] = createSignal(false);
  const [creation, create] = createMutation(CreateToken);

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
        setSecret(r.token);
        setName('');
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
              <code data-testid="new-token">{s()}</code>
              <button
                type="button"
                onClick={async () => {
                  await navigator.clipboard.writeText(s());
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
          <table>
            <thead>
              <tr>
                <th scope="col">Resource</th>
                <For each={PERMISSIONS}>{(p) => <th scope="col">{p}</th>}</For>
              </tr>
            </thead>
            <tbody>
              <For each={RESOURCES}>
                {(resource) => (
                  <tr>
                    <th scope="row">{resource}</th>
                    <For each={PERMISSIONS}>
                      {(perm) => {
                        const scope = `${resource}:${perm}`;
                        return (
                          <td>
                            <input
                              type="checkbox"
                              aria-label={scope}
                              checked={scopes().has(scope)}
                              onChange={(e) => toggle(scope, e.currentTarget.checked)}
                            />
                          </td>
                        );
                      }}
                    </For>
                  </tr>
                )}
              </For>
            </tbody>
          </table>
        </fieldset>
        <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not create the token" />}</Show>
        <button type="submit" class="primary" disabled={creation.fetching || scopes().size === 0}>
          {creation.fetching ? 'Creating…' : 'Create token'}
        </button>
      </form>
    </section>
  );
}

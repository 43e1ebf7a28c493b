import { createMutation, createQuery } from '@urql/solid';
import { createEffect, createSignal, Show } from 'solid-js';
import { ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { MailSettings } from './MailSettings.tsx';

const AccountQuery = graphql(`
  query Account {
    viewer {
      id
      username
      artifactCleanupBytes
    }
  }
`);

const ChangePassword = graphql(`
  mutation ChangePassword($input: ChangePasswordInput!) {
    changePassword(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

const SetArtifactCleanup = graphql(`
  mutation SetArtifactCleanup($input: SetArtifactCleanupInput!) {
    setArtifactCleanup(input: $input) {
      __typename
      ... on SetArtifactCleanupSuccess {
        user {
          id
          artifactCleanupBytes
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const MIB = 1024 ** 2;

/** Your password, and how much of your artifacts the curator keeps. */
export default function AccountPage() {
  const [account, refetch] = createQuery({ query: AccountQuery, requestPolicy: 'cache-and-network' });

  const [current, setCurrent] = createSignal('');
  const [next, setNext] = createSignal('');
  const [passwordDone, setPasswordDone] = createSignal(false);
  const [passwordError, setPasswordError] = createSignal<string | null>(null);
  const [changing, change] = createMutation(ChangePassword);

  async function onPassword(e: SubmitEvent) {
    e.preventDefault();
    setPasswordDone(false);
    setPasswordError(null);
    const result = await change({ input: { currentPassword: current() || null, newPassword: next() } });
    if (result.error) return setPasswordError(result.error.message);
    const r = result.data?.changePassword;
    switch (r?.__typename) {
      case 'ChangePasswordSuccess':
        setCurrent('');
        setNext('');
        return setPasswordDone(true);
      case 'InputError':
        return setPasswordError(r.message);
    }
  }

  // The limit in MiB as typed; filled from the account once it loads.
  const [limit, setLimit] = createSignal('');
  createEffect(() => {
    const bytes = account.data?.viewer?.artifactCleanupBytes;
    if (bytes !== undefined && limit() === '') setLimit(String(bytes / MIB));
  });
  const [limitDone, setLimitDone] = createSignal(false);
  const [limitError, setLimitError] = createSignal<string | null>(null);
  const [setting, set] = createMutation(SetArtifactCleanup);

  async function onLimit(e: SubmitEvent) {
    e.preventDefault();
    setLimitDone(false);
    setLimitError(null);
    const mib = Number(limit());
    if (!Number.isFinite(mib) || mib < 0) return setLimitError('a number of MiB, 0 or more');
    const result = await set({ input: { bytes: Math.round(mib * MIB) } });
    if (result.error) return setLimitError(result.error.message);
    const r = result.data?.setArtifactCleanup;
    switch (r?.__typename) {
      case 'SetArtifactCleanupSuccess':
        setLimit(String(r.user.artifactCleanupBytes / MIB));
        refetch({ requestPolicy: 'network-only' });
        return setLimitDone(true);
      case 'InputError':
        return setLimitError(r.message);
    }
  }

  return (
    <section class="page">
      <h1>Account</h1>
      <Show when={account.error && !account.data}>
        <ErrorNotice error={account.error!} title="Could not load your account" retry={() => refetch()} />
      </Show>
      <Show when={!account.data && account.fetching}>
        <Loading label="Loading your account…" />
      </Show>
      <Show when={account.data?.viewer}>{(v) => <p class="muted">Signed in as {v().username}.</p>}</Show>

      <h2>Password</h2>
      <form class="card" onSubmit={onPassword}>
        <label>
          Current password
          <input
            type="password"
            autocomplete="current-password"
            value={current()}
            onInput={(e) => setCurrent(e.currentTarget.value)}
          />
        </label>
        <label>
          New password
          <input
            type="password"
            required
            autocomplete="new-password"
            value={next()}
            onInput={(e) => setNext(e.currentTarget.value)}
          />
        </label>
        <Show when={passwordError()}>
          {(m) => <ErrorNotice error={m()} title="Could not change the password" />}
        </Show>
        <Show when={passwordDone()}>
          <p class="notice notice-ok" role="status">
            Password changed.
          </p>
        </Show>
        <button type="submit" class="primary" disabled={changing.fetching}>
          {changing.fetching ? 'Changing…' : 'Change password'}
        </button>
      </form>

      <MailSettings />

      <h2>Artifact cleanup</h2>
      <form class="card" onSubmit={onLimit}>
        <p class="muted">
          The curator keeps your newest artifacts up to this size and deletes older ones; pinned builds keep
          theirs. 0 keeps everything.
        </p>
        <label>
          Keep (MiB)
          <input
            type="number"
            min="0"
            step="any"
            required
            value={limit()}
            onInput={(e) => setLimit(e.currentTarget.value)}
          />
        </label>
        <Show when={limitError()}>{(m) => <ErrorNotice error={m()} title="Could not set the limit" />}</Show>
        <Show when={limitDone()}>
          <p class="notice notice-ok" role="status">
            Limit saved.
          </p>
        </Show>
        <button type="submit" class="primary" disabled={setting.fetching}>
          {setting.fetching ? 'Saving…' : 'Save limit'}
        </button>
      </form>
    </section>
  );
}

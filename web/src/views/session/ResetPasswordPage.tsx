import { A, useNavigate, useSearchParams } from '@solidjs/router';
import { createMutation } from '@urql/solid';
import { createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';

const ResetPassword = graphql(`
  mutation ResetPassword($input: ResetPasswordInput!) {
    resetPassword(input: $input) {
      __typename
      ... on InputError {
        message
        path
      }
    }
  }
`);

/** The page a mailed reset link opens: a new password, set once with the link's token. */
export default function ResetPasswordPage() {
  const [params] = useSearchParams<{ token?: string }>();
  const navigate = useNavigate();
  const [password, setPassword] = createSignal('');
  const [error, setError] = createSignal<string | null>(null);
  const [resetting, reset] = createMutation(ResetPassword);

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setError(null);
    const result = await reset({ input: { token: params.token ?? '', password: password() } });
    if (result.error) return setError(result.error.message);
    const r = result.data?.resetPassword;
    if (r?.__typename === 'InputError') return setError(r.message);
    navigate('/sign-in?reset=done');
  }

  return (
    <section class="page narrow">
      <h1>Set a new password</h1>
      <Show
        when={params.token}
        fallback={
          <p class="muted">
            This page is opened from the link in a reset mail. <A href="/sign-in">Sign in</A> to ask for one.
          </p>
        }
      >
        <form class="card" onSubmit={onSubmit} aria-label="Set a new password">
          <label>
            New password
            <input
              type="password"
              name="password"
              autocomplete="new-password"
              required
              value={password()}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not set the password" />}</Show>
          <button type="submit" class="primary" disabled={resetting.fetching}>
            {resetting.fetching ? 'Saving…' : 'Set password'}
          </button>
        </form>
      </Show>
    </section>
  );
}

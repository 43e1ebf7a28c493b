import { A, useNavigate } from '@solidjs/router';
import { createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { useKiln } from '../../lib/kiln-context.ts';
import { failureMessage, isMissingOperation, LogIn, SignUp } from './accounts-documents.ts';

export default function SignUpPage() {
  const { session, client } = useKiln();
  const navigate = useNavigate();
  const [username, setUsername] = createSignal('');
  const [password, setPassword] = createSignal('');
  const [confirm, setConfirm] = createSignal('');
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);

  const explain = (message: string) =>
    isMissingOperation(message)
      ? 'this server does not have accounts yet: sign in with an API token'
      : message;

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    if (password() !== confirm()) return setError('the two passwords differ');
    setBusy(true);
    setError(null);
    const input = { username: username().trim(), password: password() };
    try {
      const signUp = await client.urql.mutation(SignUp, { input }).toPromise();
      if (signUp.error) return setError(explain(signUp.error.message));
      const r = signUp.data?.signUp;
      switch (r?.__typename) {
        case 'SignUpSuccess':
          break;
        default:
          return setError(failureMessage(r));
      }
      const logIn = await client.urql.mutation(LogIn, { input }).toPromise();
      const l = logIn.data?.logIn;
      switch (l?.__typename) {
        case 'LogInSuccess':
          session.signIn(l.token);
          navigate('/builds', { replace: true });
          return;
        default:
          return setError(
            logIn.error
              ? explain(logIn.error.message)
              : `signed up, but could not log in: ${failureMessage(l)}`,
          );
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="page narrow">
      <h1>Create a Kiln account</h1>
      <form class="card" onSubmit={onSubmit}>
        <label>
          Username
          <input
            name="username"
            autocomplete="username"
            required
            value={username()}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="new-password"
            required
            minLength={8}
            value={password()}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <label>
          Password again
          <input
            name="confirm"
            type="password"
            autocomplete="new-password"
            required
            value={confirm()}
            onInput={(e) => setConfirm(e.currentTarget.value)}
          />
        </label>
        <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not sign up" />}</Show>
        <button type="submit" class="primary" disabled={busy()}>
          {busy() ? 'Creating…' : 'Sign up'}
        </button>
        <p class="muted">
          Have an account? <A href="/sign-in">Sign in</A>
        </p>
      </form>
    </section>
  );
}

import { A, useNavigate, useSearchParams } from '@solidjs/router';
import { createQuery } from '@urql/solid';
import { createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { useKiln } from '../../lib/kiln-context.ts';
import { failureMessage, isMissingOperation, LogIn } from './accounts-documents.ts';

const CheckToken = graphql(`
  query CheckToken {
    viewer {
      id
      username
    }
  }
`);

/** Where this server saved the admin's token, for the hint (its KILN_DATA_DIR may be anywhere). */
const SignInHints = graphql(`
  query SignInHints {
    bootstrapTokenFile
    mailEnabled
  }
`);

const RequestPasswordReset = graphql(`
  mutation RequestPasswordReset($input: RequestPasswordResetInput!) {
    requestPasswordReset(input: $input)
  }
`);

/** Where to go after signing in: a path on this site, never another origin. */
export function nextPath(next: string | string[] | undefined): string {
  const n = Array.isArray(next) ? next[0] : next;
  return n?.startsWith('/') && !n.startsWith('//') ? n : '/builds';
}

export default function SignInPage() {
  const { session, client } = useKiln();
  const navigate = useNavigate();
  const [params] = useSearchParams<{ next?: string; reset?: string }>();
  const [forgotten, setForgotten] = createSignal('');
  const [forgotSent, setForgotSent] = createSignal(false);
  async function onForgot() {
    setForgotSent(false);
    const result = await client.urql
      .mutation(RequestPasswordReset, { input: { login: forgotten().trim() } })
      .toPromise();
    if (!result.error) setForgotSent(true);
  }
  const [token, setToken] = createSignal('');
  const [username, setUsername] = createSignal('');
  const [password, setPassword] = createSignal('');
  const [busy, setBusy] = createSignal<'token' | 'password' | null>(null);
  const [tokenError, setTokenError] = createSignal<string | null>(null);
  const [loginError, setLoginError] = createSignal<string | null>(null);
  const [hints] = createQuery({ query: SignInHints });

  function done(t: string) {
    session.signIn(t);
    navigate(nextPath(params.next), { replace: true });
  }

  async function withToken(e: SubmitEvent) {
    e.preventDefault();
    const t = token().trim();
    if (!t) {
      setLoginError(null);
      return setTokenError('paste a token first');
    }
    setBusy('token');
    // One form's error says nothing about the other's attempt.
    setTokenError(null);
    setLoginError(null);
    const result = await client.urql
      .query(
        CheckToken,
        {},
        { requestPolicy: 'network-only', fetchOptions: { headers: { authorization: `Bearer ${t}` } } },
      )
      .toPromise();
    setBusy(null);
    if (result.data?.viewer) return done(t);
    const unauthenticated =
      result.error?.response?.status === 401 ||
      result.error?.graphQLErrors.some((g) => g.extensions?.code === 'UNAUTHENTICATED');
    setTokenError(
      unauthenticated ? 'the server does not accept this token' : (result.error?.message ?? 'no user'),
    );
  }

  async function withPassword(e: SubmitEvent) {
    e.preventDefault();
    setBusy('password');
    setLoginError(null);
    setTokenError(null);
    const result = await client.urql
      .mutation(LogIn, { input: { username: username().trim(), password: password() } })
      .toPromise();
    setBusy(null);
    if (result.error) {
      const message = result.error.message;
      const noAccounts =
        isMissingOperation(message) ||
        result.error.graphQLErrors.some((g) => g.extensions?.code === 'UNAUTHENTICATED');
      return setLoginError(
        noAccounts ? 'this server does not have accounts yet: sign in with an API token' : message,
      );
    }
    const r = result.data?.logIn;
    switch (r?.__typename) {
      case 'LogInSuccess':
        return done(r.token);
      default:
        return setLoginError(failureMessage(r));
    }
  }

  return (
    <section class="page narrow">
      <h1>Sign in to Kiln</h1>
      <form class="card" onSubmit={withPassword} aria-labelledby="login-heading">
        <h2 id="login-heading">With your account</h2>
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
            autocomplete="current-password"
            required
            value={password()}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <Show when={loginError()}>{(m) => <ErrorNotice error={m()} title="Could not log in" />}</Show>
        <button type="submit" class="primary" disabled={busy() !== null}>
          {busy() === 'password' ? 'Logging in…' : 'Log in'}
        </button>
        <p class="muted">
          No account? <A href="/sign-up">Sign up</A>
        </p>
        <Show when={params.reset === 'done'}>
          <p class="notice notice-ok" role="status">
            Your new password is set: log in with it.
          </p>
        </Show>
        <Show when={hints.data?.mailEnabled}>
          <details class="forgot" data-testid="forgot-password">
            <summary>Forgot your password?</summary>
            <p class="muted">
              Give your username or your confirmed address: a link that sets a new password is mailed there.
            </p>
            <label>
              Username or email
              <input
                name="login"
                autocomplete="username"
                value={forgotten()}
                onInput={(e) => setForgotten(e.currentTarget.value)}
              />
            </label>
            <button type="button" disabled={forgotten().trim() === ''} onClick={() => void onForgot()}>
              Mail me a link
            </button>
            <Show when={forgotSent()}>
              <p class="notice notice-ok" role="status">
                If that account has a confirmed address, a link is on its way.
              </p>
            </Show>
          </details>
        </Show>
      </form>
      <form class="card" onSubmit={withToken} aria-labelledby="token-heading">
        <h2 id="token-heading">With an API token</h2>
        <p class="muted" data-testid="token-hint">
          For example the admin's token that <code>kiln start</code> printed
          <Show when={hints.data?.bootstrapTokenFile}>
            {(file) => (
              <>
                {' '}
                and saved in <code>{file()}</code>
              </>
            )}
          </Show>
          .
        </p>
        <label>
          API token
          <input
            name="token"
            type="password"
            autocomplete="off"
            spellcheck={false}
            value={token()}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        <Show when={tokenError()}>{(m) => <ErrorNotice error={m()} title="Could not sign in" />}</Show>
        <button type="submit" disabled={busy() !== null}>
          {busy() === 'token' ? 'Checking…' : 'Sign in with token'}
        </button>
      </form>
    </section>
  );
}

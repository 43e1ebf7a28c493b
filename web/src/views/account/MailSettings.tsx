import { useSearchParams } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createEffect, createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';

const MailQuery = graphql(`
  query MailSettings {
    mailEnabled
    viewer {
      id
      email
      emailVerified
      notify
    }
  }
`);

const SetEmail = graphql(`
  mutation SetEmail($input: SetEmailInput!) {
    setEmail(input: $input) {
      __typename
      ... on SetEmailSuccess {
        user {
          id
          email
          emailVerified
        }
      }
      ... on InputError {
        message
      }
    }
  }
`);

const SetNotify = graphql(`
  mutation SetNotify($input: SetNotifyInput!) {
    setNotify(input: $input) {
      __typename
      ... on SetNotifySuccess {
        user {
          id
          notify
        }
      }
    }
  }
`);

type Notify = 'NEVER' | 'FAILURES' | 'FAILURES_AND_FIXES';

const CHOICES: readonly { value: Notify; label: string }[] = [
  { value: 'FAILURES', label: 'Failed, killed and timed-out builds' },
  { value: 'FAILURES_AND_FIXES', label: 'Those, and a build that passes after a failure' },
  { value: 'NEVER', label: 'No build mail' },
];

/** Your address (confirmed through a mailed link) and which of your builds mail you. */
export function MailSettings() {
  const [query, refetch] = createQuery({ query: MailQuery, requestPolicy: 'cache-and-network' });
  const [params] = useSearchParams<{ email?: string }>();
  const [email, setEmail] = createSignal('');
  createEffect(() => {
    const stored = query.data?.viewer?.email;
    if (stored && email() === '') setEmail(stored);
  });
  const [sent, setSent] = createSignal(false);
  const [emailError, setEmailError] = createSignal<string | null>(null);
  const [saving, save] = createMutation(SetEmail);
  const [notifySaved, setNotifySaved] = createSignal(false);
  const [, notify] = createMutation(SetNotify);

  async function onEmail(e: SubmitEvent) {
    e.preventDefault();
    setSent(false);
    setEmailError(null);
    const result = await save({ input: { email: email().trim() } });
    if (result.error) return setEmailError(result.error.message);
    const r = result.data?.setEmail;
    if (r?.__typename === 'InputError') return setEmailError(r.message);
    setSent(true);
    refetch({ requestPolicy: 'network-only' });
  }

  async function onNotify(value: Notify) {
    setNotifySaved(false);
    const result = await notify({ input: { notify: value } });
    if (!result.error) setNotifySaved(true);
    refetch({ requestPolicy: 'network-only' });
  }

  return (
    <>
      <h2>Mail</h2>
      <Show when={query.data}>
        {(data) => (
          <div class="card" data-testid="mail-settings">
            <Show when={params.email === 'verified'}>
              <p class="notice notice-ok" role="status">
                Your address is confirmed.
              </p>
            </Show>
            <Show when={params.email === 'link-expired'}>
              <p class="notice notice-error" role="alert">
                That confirmation link is unknown, used or expired: save your address again for a new one.
              </p>
            </Show>
            <Show
              when={data().mailEnabled}
              fallback={
                <p class="muted" data-testid="mail-disabled">
                  This Kiln sends no mail: its administrator has not set KILN_SMTP_URL.
                </p>
              }
            >
              <form onSubmit={onEmail}>
                <label>
                  Email address
                  <input
                    type="email"
                    name="email"
                    autocomplete="email"
                    required
                    value={email()}
                    onInput={(e) => setEmail(e.currentTarget.value)}
                  />
                </label>
                <p class="muted" data-testid="email-state">
                  {data().viewer?.email
                    ? data().viewer?.emailVerified
                      ? `${data().viewer?.email} is confirmed.`
                      : `${data().viewer?.email} is not confirmed yet: follow the link mailed to it.`
                    : 'No address yet: build mail and password resets need one.'}
                </p>
                <Show when={emailError()}>
                  {(m) => <ErrorNotice error={m()} title="Could not save the address" />}
                </Show>
                <Show when={sent()}>
                  <p class="notice notice-ok" role="status">
                    A confirmation link is on its way to {email()}.
                  </p>
                </Show>
                <button type="submit" class="primary" disabled={saving.fetching}>
                  {saving.fetching ? 'Saving…' : 'Save and confirm'}
                </button>
              </form>
            </Show>
            <fieldset class="notify-choices">
              <legend>Mail me about my builds</legend>
              {CHOICES.map((c) => (
                <label class="check">
                  <input
                    type="radio"
                    name="notify"
                    value={c.value}
                    checked={data().viewer?.notify === c.value}
                    onChange={() => void onNotify(c.value)}
                  />
                  {c.label}
                </label>
              ))}
              <Show when={notifySaved()}>
                <p class="notice notice-ok" role="status">
                  Saved.
                </p>
              </Show>
            </fieldset>
          </div>
        )}
      </Show>
    </>
  );
}

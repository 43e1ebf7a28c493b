import { createSignal, For, Match, Show, Switch } from 'solid-js';
import { createFields, fieldOfPath, type Refusal } from '../../components/form-fields.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import { createSubscriptionCheck } from './create-subscription-check.ts';
import { EXAMPLES } from './webhook-words.ts';

/** The settings the form edits, as createWebhook and updateWebhook take them. */
export interface WebhookSettings {
  url: string;
  subscription: string;
}

const FIELDS = ['url', 'subscription'] as const;
type FieldName = (typeof FIELDS)[number];

const fieldOf = (path: string | null | undefined) => fieldOfPath(path, FIELDS);

/**
 * A webhook's URL and subscription document, to create one (`initial` absent) or change one. The
 * document is checked by the API as it is typed (the check createWebhook makes): its problem shows
 * under the editor and the submit button waits until there is none. `submit` calls the mutation and
 * answers null, or the refusal: shown next to the field its path names, else above the buttons.
 */
export type { Refusal };

export function WebhookForm(props: {
  id: string;
  label: string;
  initial?: WebhookSettings;
  submitLabel: string;
  busyLabel: string;
  submit: (settings: WebhookSettings) => Promise<Refusal | null>;
  onCancel?: () => void;
}) {
  const [url, setUrl] = createSignal(props.initial?.url ?? '');
  const [subscription, setSubscription] = createSignal(props.initial?.subscription ?? '');
  const [refusal, setRefusal] = createSignal<Refusal | null>(null);
  const [busy, setBusy] = createSignal(false);
  const check = createSubscriptionCheck(subscription);

  /** The mutation's refusal of a field, else (for the document) the live check's. */
  const errorOf = (field: FieldName) => {
    const r = refusal();
    if (r && fieldOf(r.path) === field) return r.message;
    const c = check();
    return field === 'subscription' && c.state === 'refused' ? c.message : null;
  };
  const formError = () => {
    const r = refusal();
    return r && fieldOf(r.path) === null ? r.message : null;
  };
  const edited = (field: FieldName) => {
    if (fieldOf(refusal()?.path) === field) setRefusal(null);
  };
  const { fieldId, described, Field } = createFields<FieldName>(props.id, errorOf);

  const checkFailure = () => {
    const c = check();
    return c.state === 'failed' ? c.message : null;
  };
  /** Nothing to submit while the document is blank, being checked, or refused. */
  const blocked = () => busy() || ['empty', 'checking', 'refused'].includes(check().state);

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    if (blocked()) return;
    setRefusal(null);
    setBusy(true);
    try {
      const refused = await props.submit({ url: url().trim(), subscription: subscription() });
      setRefusal(refused);
      const field = fieldOf(refused?.path);
      if (field) document.getElementById(fieldId(field))?.focus();
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card webhook-form" aria-label={props.label} onSubmit={onSubmit} novalidate>
      <Field
        field="url"
        label="Payload URL"
        hint="Each result of the subscription is POSTed here as JSON, signed (Standard Webhooks)."
      >
        <input
          {...described('url', true)}
          type="url"
          required
          autocomplete="off"
          spellcheck={false}
          value={url()}
          placeholder="https://example.com/kiln-hook"
          onInput={(e) => {
            setUrl(e.currentTarget.value);
            edited('url');
          }}
        />
      </Field>
      <Field
        field="subscription"
        label="Subscription"
        hint={
          <>
            One GraphQL <code>subscription</code> without variables; each result is sent as{' '}
            <code>{'{"data": …}'}</code>, with your rights
            {props.initial ? '' : ' (those of whoever creates it)'}.
          </>
        }
      >
        <div class="examples">
          <span class="muted">Start from:</span>
          <For each={EXAMPLES}>
            {(x) => (
              <button
                type="button"
                class="link-button"
                onClick={() => {
                  setSubscription(x.document);
                  edited('subscription');
                }}
              >
                {x.label}
              </button>
            )}
          </For>
        </div>
        <textarea
          {...described('subscription', true)}
          class="mono"
          rows={8}
          spellcheck={false}
          autocapitalize="off"
          autocomplete="off"
          value={subscription()}
          placeholder="subscription { buildsUpdated { number status } }"
          onInput={(e) => {
            setSubscription(e.currentTarget.value);
            edited('subscription');
          }}
        />
        <span class="subscription-check muted" data-testid="subscription-check" aria-live="polite">
          <Switch>
            <Match when={check().state === 'empty'}>Write a subscription, or start from an example.</Match>
            <Match when={check().state === 'checking'}>Checking the document…</Match>
            <Match when={check().state === 'ok'}>✓ The API takes this document.</Match>
            <Match when={checkFailure()}>
              {(m) => <>Could not check the document ({m()}); the server checks it again on saving.</>}
            </Match>
          </Switch>
        </span>
      </Field>
      <Show when={formError()}>{(m) => <ErrorNotice error={m()} title="Not saved" />}</Show>
      <div class="actions">
        <button type="submit" class="primary" disabled={blocked()}>
          {busy() ? props.busyLabel : props.submitLabel}
        </button>
        <Show when={props.onCancel}>
          <button type="button" onClick={() => props.onCancel?.()}>
            Cancel
          </button>
        </Show>
      </div>
    </form>
  );
}

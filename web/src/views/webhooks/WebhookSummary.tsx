import { A } from '@solidjs/router';
import { Show } from 'solid-js';
import type { ResultOf } from '../../graphql.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';
import type { WebhookFieldsFragment } from './webhook-documents.ts';
import { DELIVERY_TONES, deliveryWord, STATE_TONES, webhookHref, webhookState } from './webhook-words.ts';

export type WebhookFields = ResultOf<typeof WebhookFieldsFragment>;

/** A webhook's state as a badge: active, paused, or stopped (by Kiln; see its problem). */
export function WebhookStateBadge(props: { webhook: Pick<WebhookFields, 'active' | 'problem'> }) {
  const state = () => webhookState(props.webhook);
  return (
    <span class={`badge badge-${STATE_TONES[state()]}`} data-testid="webhook-state" data-state={state()}>
      {state()}
    </span>
  );
}

/** A delivery's state as a small badge, with the receiver's HTTP status when it answered. */
export function DeliveryBadge(props: {
  delivery: { state: string; attempts: number; responseStatus: number | null };
}) {
  const word = () => deliveryWord(props.delivery);
  return (
    <span class="delivery-state">
      <span
        class={`badge badge-small badge-${DELIVERY_TONES[word()] ?? 'idle'}`}
        data-testid="delivery-state"
        data-state={props.delivery.state}
      >
        {word()}
      </span>
      <Show when={props.delivery.responseStatus}>
        {(status) => (
          <span class="http-status" data-testid="delivery-status">
            HTTP {status()}
          </span>
        )}
      </Show>
    </span>
  );
}

/** The state of a problem a webhook has, shown prominently wherever the webhook is. */
export function WebhookProblem(props: { problem: string | null }) {
  return (
    <Show when={props.problem}>
      {(p) => (
        <p class="notice notice-error problem" role="alert" data-testid="webhook-problem">
          <strong>Problem:</strong> {p()}
        </p>
      )}
    </Show>
  );
}

/** One webhook in a list: its URL (a link to its page), state, last delivery, and problem. */
export function WebhookSummary(props: { webhook: WebhookFields; now: number }) {
  const w = () => props.webhook;
  const last = () => w().latest.edges[0]?.node;
  return (
    <div class="webhook-summary">
      <div class="webhook-line">
        <A class="item-name webhook-url" href={webhookHref(w().id)} title="Its deliveries and settings">
          {w().url}
        </A>
        <WebhookStateBadge webhook={w()} />
      </div>
      <div class="webhook-meta muted">
        <Show when={last()} fallback={<span data-testid="no-deliveries">nothing sent yet</span>}>
          {(d) => (
            <span data-testid="last-delivery">
              last delivery <DeliveryBadge delivery={d()} />{' '}
              <time datetime={d().createdAt} title={formatDate(d().createdAt)}>
                {formatAgo(d().createdAt, props.now)}
              </time>
            </span>
          )}
        </Show>
        <span>
          created{' '}
          <time datetime={w().createdAt} title={formatDate(w().createdAt)}>
            {formatAgo(w().createdAt, props.now)}
          </time>
        </span>
      </div>
      <WebhookProblem problem={w().problem} />
    </div>
  );
}

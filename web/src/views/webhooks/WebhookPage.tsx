import { A, useNavigate, useParams } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createMemo, createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { createEvery } from '../../lib/create-every.ts';
import { createNow } from '../../lib/create-now.ts';
import { formatAgo, formatDate } from '../../lib/format.ts';
import { namespaceHref } from '../namespaces/NamespacesPage.tsx';
import { WebhookActions } from './WebhookActions.tsx';
import { type Refusal, WebhookForm, type WebhookSettings } from './WebhookForm.tsx';
import { DeliveryBadge, WebhookProblem, WebhookStateBadge } from './WebhookSummary.tsx';
import {
  RedeliverWebhookDelivery,
  UpdateWebhook,
  WebhookDeliveryFieldsFragment,
  WebhookFieldsFragment,
} from './webhook-documents.ts';

const WebhookQuery = graphql(
  `
  query Webhook($id: ID!, $first: Int!) {
    node(id: $id) {
      __typename
      ... on Webhook {
        ...WebhookFields
        owner {
          username
        }
        namespace {
          id
          path
          owner {
            username
          }
        }
        deliveries(first: $first) {
          edges {
            node {
              ...WebhookDeliveryFields
            }
          }
          pageInfo {
            hasNextPage
          }
        }
      }
    }
  }
`,
  [WebhookFieldsFragment, WebhookDeliveryFieldsFragment],
);

type Delivery = ResultOf<typeof WebhookDeliveryFieldsFragment>;

const PAGE = 20;
/** The API gives at most this many deliveries at once. */
const MOST = 100;

/** The payload as sent, indented when it is JSON (it always is; a broken one is shown as it came). */
function pretty(payload: string): string {
  try {
    return JSON.stringify(JSON.parse(payload), null, 2);
  } catch {
    return payload;
  }
}

/**
 * A webhook: its URL, subscription and state, Edit, Pause/Resume and Delete, and its recent
 * deliveries (newest first) with their payloads and a Redeliver button each. Deliveries have no
 * subscription: the page looks again every two seconds while one is pending, else every six.
 */
export default function WebhookPage() {
  const params = useParams<{ id: string }>();
  const navigate = useNavigate();
  // A webhook's global id may end in `=`, which its address carries escaped.
  const id = () => decodeURIComponent(params.id);
  const now = createNow(1000);
  const [first, setFirst] = createSignal(PAGE);
  const [query, refetch] = createQuery({
    query: WebhookQuery,
    variables: () => ({ id: id(), first: first() }),
    requestPolicy: 'cache-and-network',
  });
  const webhook = () => {
    const node = query.data?.node;
    return node?.__typename === 'Webhook' ? node : null;
  };
  const deliveries = createMemo(() => webhook()?.deliveries.edges.map((e) => e.node) ?? []);
  const backHref = () => {
    const ns = webhook()?.namespace;
    return ns ? `${namespaceHref(ns.owner.username, ns.path)}#webhooks` : '/webhooks';
  };
  const reload = () => refetch({ requestPolicy: 'network-only' });
  let tick = 0;
  createEvery(2_000, () => {
    tick++;
    if (deliveries().some((d) => d.state === 'pending') || tick % 3 === 0) reload();
  });

  const [editing, setEditing] = createSignal(false);
  const [saved, setSaved] = createSignal(false);
  const [, update] = createMutation(UpdateWebhook);

  async function save(settings: WebhookSettings): Promise<Refusal | null> {
    const result = await update({ input: { id: id(), ...settings } });
    if (result.error) return { message: result.error.message };
    const r = result.data?.updateWebhook;
    switch (r?.__typename) {
      case 'UpdateWebhookSuccess':
        setEditing(false);
        setSaved(true);
        reload();
        return null;
      case 'InputError':
        return { message: r.message, path: r.path };
      case 'NotFoundError':
        return { message: r.message };
      default:
        return { message: 'no answer from the server' };
    }
  }

  return (
    <section class="page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <Show when={webhook()?.namespace} fallback={<A href="/webhooks">Your webhooks</A>}>
          {(ns) => (
            <>
              <A href="/namespaces">Namespaces</A>
              {' / '}
              <A href={backHref()}>
                {ns().owner.username}@{ns().path}
              </A>
            </>
          )}
        </Show>
      </nav>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the webhook" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the webhook…" />
      </Show>
      <Show when={query.data && !webhook()}>
        <h1>Not found</h1>
        <EmptyState title="No such webhook">
          <p>It does not exist, it was deleted, or you may not manage it.</p>
        </EmptyState>
      </Show>
      <Show when={webhook()}>
        {(w) => (
          <>
            <div class="page-head">
              <h1>
                <span class="webhook-url">{w().url}</span> <WebhookStateBadge webhook={w()} />
              </h1>
              <div class="actions">
                <button
                  type="button"
                  aria-expanded={editing()}
                  onClick={() => {
                    setSaved(false);
                    setEditing(!editing());
                  }}
                >
                  Edit
                </button>
                <WebhookActions webhook={w()} onChanged={reload} onDeleted={() => navigate(backHref())} />
              </div>
            </div>
            <WebhookProblem problem={w().problem} />
            <Show when={saved()}>
              <p class="notice notice-ok" role="status">
                Saved.
              </p>
            </Show>
            <Show when={editing()}>
              <WebhookForm
                id="edit-webhook"
                label="Settings of the webhook"
                initial={{ url: w().url, subscription: w().subscription }}
                submitLabel="Save"
                busyLabel="Saving…"
                submit={save}
                onCancel={() => setEditing(false)}
              />
            </Show>
            <dl class="facts">
              <div class="fact-wide">
                <dt>Posts to</dt>
                <dd>
                  <code>{w().url}</code>
                </dd>
              </div>
              <div>
                <dt>Runs as</dt>
                <dd>{w().owner.username}</dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>
                  <time datetime={w().createdAt} title={formatDate(w().createdAt)}>
                    {formatAgo(w().createdAt, now())}
                  </time>
                </dd>
              </div>
            </dl>
            <details class="manifest" open>
              <summary>Subscription</summary>
              <pre data-testid="webhook-subscription">{w().subscription}</pre>
            </details>
            <section aria-labelledby="deliveries-heading" id="deliveries">
              <h2 id="deliveries-heading">Recent deliveries</h2>
              <Show
                when={deliveries().length > 0}
                fallback={
                  <p class="muted">
                    Nothing sent yet: each result of the subscription shows here once it is stored.
                  </p>
                }
              >
                <ul class="item-list" aria-label="Deliveries">
                  <For each={deliveries()}>
                    {(d) => <DeliveryRow delivery={d} now={now()} onRedelivered={reload} />}
                  </For>
                </ul>
                <Show when={w().deliveries.pageInfo.hasNextPage && first() < MOST}>
                  <button type="button" onClick={() => setFirst(Math.min(MOST, first() + PAGE))}>
                    Show older deliveries
                  </button>
                </Show>
              </Show>
            </section>
          </>
        )}
      </Show>
    </section>
  );
}

/** One delivery: when, its state and the receiver's status, attempts, why it failed, its payload. */
function DeliveryRow(props: { delivery: Delivery; now: number; onRedelivered: () => void }) {
  const d = () => props.delivery;
  const [redelivering, redeliver] = createMutation(RedeliverWebhookDelivery);
  const [error, setError] = createSignal<string | null>(null);

  async function onRedeliver() {
    setError(null);
    const result = await redeliver({ input: { id: d().id } });
    const r = result.data?.redeliverWebhookDelivery;
    if (result.error) setError(result.error.message);
    else if (r?.__typename === 'NotFoundError') setError(r.message);
    props.onRedelivered();
  }

  return (
    <li class="item delivery" data-delivery={d().id} data-state={d().state}>
      <div class="delivery-summary">
        <div class="delivery-line">
          <time class="item-name" datetime={d().createdAt} title={formatDate(d().createdAt)}>
            {formatDate(d().createdAt)}
          </time>
          <DeliveryBadge delivery={d()} />
          <span class="muted" data-testid="delivery-attempts">
            {d().attempts === 1 ? '1 attempt' : `${d().attempts} attempts`}
          </span>
          <Show when={d().deliveredAt}>
            {(at) => (
              <span class="muted">
                delivered{' '}
                <time datetime={at()} title={formatDate(at())}>
                  {formatAgo(at(), props.now)}
                </time>
              </span>
            )}
          </Show>
          <Show when={d().state === 'pending' && d().nextAttemptAt}>
            {(at) => (
              <span class="muted" data-testid="next-attempt">
                next attempt{' '}
                <time datetime={at()} title={formatDate(at())}>
                  {formatAgo(at(), props.now)}
                </time>
              </span>
            )}
          </Show>
        </div>
        <Show when={d().lastError}>
          {(e) => (
            <p class="delivery-error" data-testid="delivery-error">
              <strong>Last error:</strong> {e()}
            </p>
          )}
        </Show>
        <details class="delivery-payload">
          <summary>Payload</summary>
          <pre data-testid="delivery-payload">{pretty(d().payload)}</pre>
        </details>
      </div>
      <div class="actions">
        <button
          type="button"
          aria-label={`Redeliver the delivery of ${formatDate(d().createdAt)}`}
          title="Send it again now, with the same webhook-id"
          disabled={redelivering.fetching}
          onClick={onRedeliver}
        >
          {redelivering.fetching ? 'Sending…' : 'Redeliver'}
        </button>
      </div>
      <Show when={error()}>{(m) => <ErrorNotice error={m()} title="Could not redeliver" />}</Show>
    </li>
  );
}

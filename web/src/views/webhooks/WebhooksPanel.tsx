import { A } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { Dynamic } from 'solid-js/web';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { createEvery } from '../../lib/create-every.ts';
import { createNow } from '../../lib/create-now.ts';
import { WebhookActions } from './WebhookActions.tsx';
import { type Refusal, WebhookForm, type WebhookSettings } from './WebhookForm.tsx';
import { WebhookSecret } from './WebhookSecret.tsx';
import { type WebhookFields, WebhookSummary } from './WebhookSummary.tsx';
import { CreateWebhook, WebhookFieldsFragment } from './webhook-documents.ts';
import { webhookHref } from './webhook-words.ts';

const NamespaceWebhooks = graphql(
  `
  query NamespaceWebhooks($path: String!) {
    namespace(path: $path) {
      id
      webhooks {
        ...WebhookFields
      }
    }
  }
`,
  [WebhookFieldsFragment],
);

const ViewerWebhooks = graphql(
  `
  query ViewerWebhooks {
    viewer {
      id
      webhooks {
        ...WebhookFields
      }
    }
  }
`,
  [WebhookFieldsFragment],
);

type Created = { webhook: WebhookFields; secret: string };

/**
 * The outgoing webhooks of a namespace (`namespace` is `owner@path`; those who may write it see and
 * manage them) or, without one, the viewer's own, with the form that creates one. The secret
 * createWebhook answers with is kept in this panel's state only: it is gone once the page is left,
 * as the API never returns it again. The API has no subscription for deliveries: the list looks
 * again every five seconds while it is open.
 */
export function WebhooksPanel(props: { namespace?: string }) {
  const now = createNow(1000);
  const [nsQuery, refetchNs] = createQuery({
    query: NamespaceWebhooks,
    variables: () => ({ path: props.namespace ?? '' }),
    pause: () => !props.namespace,
    requestPolicy: 'cache-and-network',
  });
  const [ownQuery, refetchOwn] = createQuery({
    query: ViewerWebhooks,
    pause: () => Boolean(props.namespace),
    requestPolicy: 'cache-and-network',
  });
  const query = () => (props.namespace ? nsQuery : ownQuery);
  const webhooks = (): WebhookFields[] =>
    (props.namespace ? nsQuery.data?.namespace?.webhooks : ownQuery.data?.viewer?.webhooks) ?? [];
  const reload = () =>
    props.namespace
      ? refetchNs({ requestPolicy: 'network-only' })
      : refetchOwn({ requestPolicy: 'network-only' });
  createEvery(5_000, reload);

  const [creating, setCreating] = createSignal(false);
  const [created, setCreated] = createSignal<Created | null>(null);
  const [, create] = createMutation(CreateWebhook);

  async function submit(settings: WebhookSettings): Promise<Refusal | null> {
    const result = await create({ input: { namespace: props.namespace ?? null, ...settings } });
    if (result.error) return { message: result.error.message };
    const r = result.data?.createWebhook;
    switch (r?.__typename) {
      case 'CreateWebhookSuccess':
        setCreated({ webhook: r.webhook, secret: r.secret });
        setCreating(false);
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
    <section aria-labelledby="webhooks-heading" id="webhooks">
      <div class="page-head">
        <Dynamic component={props.namespace ? 'h2' : 'h1'} id="webhooks-heading">
          {props.namespace ? 'Webhooks' : 'Your webhooks'}
        </Dynamic>
        <Show when={!creating()}>
          <button
            type="button"
            onClick={() => {
              setCreated(null);
              setCreating(true);
            }}
          >
            New webhook
          </button>
        </Show>
      </div>
      <p class="muted">
        {props.namespace
          ? "A webhook runs a GraphQL subscription over the namespace's tree with its creator's rights and POSTs each result, signed, to a URL."
          : 'A webhook of your own runs a GraphQL subscription with your rights, over everything you may read, and POSTs each result, signed, to a URL. A namespace’s webhooks are on its page.'}
      </p>
      <Show when={created()}>
        {(c) => (
          <div class="notice notice-ok created-webhook" role="status" data-testid="created-webhook">
            <p>
              <strong>Created the webhook to {c().webhook.url}.</strong>
            </p>
            <WebhookSecret secret={c().secret} />
            <div class="actions">
              <A class="button" href={webhookHref(c().webhook.id)}>
                Its deliveries
              </A>
              <button type="button" class="link-button" onClick={() => setCreated(null)}>
                Done, hide the secret
              </button>
            </div>
          </div>
        )}
      </Show>
      <Show when={creating()}>
        <WebhookForm
          id="new-webhook"
          label="New webhook"
          submitLabel="Create"
          busyLabel="Creating…"
          submit={submit}
          onCancel={() => setCreating(false)}
        />
      </Show>
      <Show when={query().error && !query().data}>
        <ErrorNotice error={query().error!} title="Could not load the webhooks" retry={reload} />
      </Show>
      <Show when={!query().data && query().fetching}>
        <Loading label="Loading webhooks…" />
      </Show>
      <Show when={query().data}>
        <Show
          when={webhooks().length > 0}
          fallback={
            <EmptyState title="No webhooks yet">
              <p class="muted">
                Create one: builds' changes, or whatever else a subscription selects, are posted to it.
              </p>
            </EmptyState>
          }
        >
          <ul class="item-list" aria-label="Webhooks">
            <For each={webhooks()}>
              {(w) => (
                <li class="item webhook-item" data-webhook={w.url}>
                  <WebhookSummary webhook={w} now={now()} />
                  <WebhookActions webhook={w} onChanged={reload} onDeleted={reload} />
                </li>
              )}
            </For>
          </ul>
        </Show>
      </Show>
    </section>
  );
}

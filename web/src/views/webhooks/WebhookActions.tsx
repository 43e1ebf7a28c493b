import { createMutation } from '@urql/solid';
import { createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { DeleteWebhook, UpdateWebhook } from './webhook-documents.ts';

/**
 * Pause or Resume (updateWebhook's `active`; nothing is stored while paused, and resuming a webhook
 * Kiln stopped clears its problem) and Delete, after a confirmation.
 */
export function WebhookActions(props: {
  webhook: { id: string; url: string; active: boolean; problem: string | null };
  onChanged: () => void;
  onDeleted: () => void;
}) {
  const [updating, update] = createMutation(UpdateWebhook);
  const [deleting, remove] = createMutation(DeleteWebhook);
  const [error, setError] = createSignal<{ title: string; message: string } | null>(null);

  async function setActive(active: boolean) {
    setError(null);
    const title = active ? 'Could not resume' : 'Could not pause';
    const result = await update({ input: { id: props.webhook.id, active } });
    const r = result.data?.updateWebhook;
    if (result.error) setError({ title, message: result.error.message });
    else if (r && r.__typename !== 'UpdateWebhookSuccess') setError({ title, message: r.message });
    props.onChanged();
  }

  async function onDelete() {
    const ok = window.confirm(
      `Delete the webhook to ${props.webhook.url}? Nothing more is sent, and its deliveries are deleted with it.`,
    );
    if (!ok) return;
    setError(null);
    const result = await remove({ input: { id: props.webhook.id } });
    const r = result.data?.deleteWebhook;
    if (result.error) return setError({ title: 'Could not delete', message: result.error.message });
    if (r?.__typename === 'NotFoundError') return setError({ title: 'Could not delete', message: r.message });
    props.onDeleted();
  }

  return (
    <>
      <div class="actions">
        <Show
          when={props.webhook.active}
          fallback={
            <button
              type="button"
              aria-label={`Resume the webhook to ${props.webhook.url}`}
              disabled={updating.fetching}
              onClick={() => setActive(true)}
            >
              Resume
            </button>
          }
        >
          <button
            type="button"
            aria-label={`Pause the webhook to ${props.webhook.url}`}
            disabled={updating.fetching}
            onClick={() => setActive(false)}
          >
            Pause
          </button>
        </Show>
        <button
          type="button"
          class="danger"
          aria-label={`Delete the webhook to ${props.webhook.url}`}
          disabled={deleting.fetching}
          onClick={onDelete}
        >
          {deleting.fetching ? 'Deleting…' : 'Delete'}
        </button>
      </div>
      <Show when={error()}>{(e) => <ErrorNotice error={e().message} title={e().title} />}</Show>
    </>
  );
}

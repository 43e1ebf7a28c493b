import { CopyField } from '../../components/CopyField.tsx';

/**
 * The signing secret createWebhook answers with, shown this once (the API never returns it again),
 * and how a receiver checks what Kiln signs with it.
 */
export function WebhookSecret(props: { secret: string }) {
  return (
    <div class="webhook-secret">
      <CopyField label="Signing secret" value={props.secret} testId="webhook-secret" />
      <p>
        <strong>Copy the secret now: it will not be shown again.</strong> Kiln keeps it only encrypted, to
        sign each delivery.
      </p>
      <p>
        Each POST carries the <a href="https://www.standardwebhooks.com/">Standard Webhooks</a> headers{' '}
        <code>webhook-id</code>, <code>webhook-timestamp</code> and <code>webhook-signature</code>. Check them
        with a Standard Webhooks library before trusting the body, on the raw body as received, e.g. in
        JavaScript:
      </p>
      <pre class="snippet">
        <code>{`import { Webhook } from 'standardwebhooks';
const payload = new Webhook(secret).verify(rawBody, request.headers); // throws when forged or stale`}</code>
      </pre>
      <p class="muted">
        A retried delivery keeps its <code>webhook-id</code>: use it to drop duplicates.
      </p>
    </div>
  );
}

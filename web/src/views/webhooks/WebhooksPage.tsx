import { WebhooksPanel } from './WebhooksPanel.tsx';

/** The viewer's own webhooks (those of no namespace): only they see and change them. */
export default function WebhooksPage() {
  return (
    <section class="page">
      <WebhooksPanel />
    </section>
  );
}

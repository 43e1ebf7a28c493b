import { type Accessor, createEffect, createSignal, on, onCleanup } from 'solid-js';
import { useKiln } from '../../lib/kiln-context.ts';
import { WebhookSubscriptionProblem } from './webhook-documents.ts';

/** What the API made of a subscription document so far. */
export type SubscriptionCheck =
  | { state: 'empty' }
  | { state: 'checking' }
  | { state: 'ok' }
  | { state: 'refused'; message: string }
  | { state: 'failed'; message: string };

/**
 * Asks the API (`webhookSubscriptionProblem`, the very check createWebhook makes) what it thinks of
 * `document`, `delayMs` after the last keystroke. An answer to older text than the newest is
 * dropped; until the newest is answered the state is `checking`. Blank text is `empty`, not asked:
 * nothing typed yet is no mistake to point at.
 */
export function createSubscriptionCheck(
  document: Accessor<string>,
  opts: { delayMs?: number } = {},
): Accessor<SubscriptionCheck> {
  const { client } = useKiln();
  const [check, setCheck] = createSignal<SubscriptionCheck>({ state: 'checking' });
  let asked = 0;

  createEffect(
    on(document, (text) => {
      const seq = ++asked;
      if (text.trim() === '') {
        setCheck({ state: 'empty' });
        return;
      }
      setCheck({ state: 'checking' });
      const timer = setTimeout(async () => {
        const result = await client.urql
          .query(WebhookSubscriptionProblem, { subscription: text }, { requestPolicy: 'network-only' })
          .toPromise();
        if (seq !== asked) return;
        if (result.error) return setCheck({ state: 'failed', message: result.error.message });
        const problem = result.data?.webhookSubscriptionProblem;
        setCheck(problem ? { state: 'refused', message: problem } : { state: 'ok' });
      }, opts.delayMs ?? 300);
      onCleanup(() => clearTimeout(timer));
    }),
  );
  return check;
}

/** How a webhook and its deliveries read to a person: states, tones, its address, example documents. */

/** A webhook's address in the console (its global id may end in `=`). */
export const webhookHref = (id: string) => `/webhooks/${encodeURIComponent(id)}`;

/**
 * What a webhook is doing: posting each result, paused by someone (`active` false, no problem), or
 * stopped by Kiln (`active` false with a problem: its creator lost access, its subscription failed).
 */
export type WebhookState = 'active' | 'paused' | 'stopped';

export function webhookState(w: { active: boolean; problem: string | null }): WebhookState {
  if (w.active) return 'active';
  return w.problem ? 'stopped' : 'paused';
}

/** The badge tone of each state (styles.css's badge-*). */
export const STATE_TONES: { readonly [S in WebhookState]: 'ok' | 'idle' | 'bad' } = {
  active: 'ok',
  paused: 'idle',
  stopped: 'bad',
};

/**
 * A delivery as a word: delivered; failed (Kiln gave up); retrying (pending after a failed attempt);
 * pending (not sent yet).
 */
export function deliveryWord(d: { state: string; attempts: number }): string {
  if (d.state === 'pending') return d.attempts > 0 ? 'retrying' : 'pending';
  return d.state;
}

export const DELIVERY_TONES: Record<string, 'ok' | 'warn' | 'bad' | 'live' | 'idle'> = {
  delivered: 'ok',
  failed: 'bad',
  retrying: 'warn',
  pending: 'live',
};

/** Documents to start from, in the editor's list of examples. */
export const EXAMPLES: readonly { label: string; document: string }[] = [
  {
    label: "Every build's status",
    document: `subscription {
  buildsUpdated {
    number
    status
    namespace { path }
  }
}
`,
  },
  {
    label: 'Failed builds',
    document: `subscription {
  buildsUpdated(status: FAILED) {
    number
    status
    namespace { path }
    createdAt
  }
}
`,
  },
  {
    label: 'Passed builds',
    document: `subscription {
  buildsUpdated(status: PASSED) {
    number
    status
    namespace { path }
  }
}
`,
  },
];

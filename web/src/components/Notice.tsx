import type { CombinedError } from '@urql/core';
import { type JSX, Show } from 'solid-js';

/** Why something failed, with a way to try again. */
export function ErrorNotice(props: {
  error: CombinedError | Error | string;
  retry?: () => void;
  title?: string;
}) {
  const message = () => {
    const e = props.error;
    if (typeof e === 'string') return e;
    if ('graphQLErrors' in e && e.graphQLErrors.length > 0)
      return e.graphQLErrors.map((g) => g.message).join('; ');
    if ('networkError' in e && e.networkError) return `cannot reach the server (${e.networkError.message})`;
    return e.message;
  };
  return (
    <div class="notice notice-error" role="alert">
      <strong>{props.title ?? 'Something went wrong'}:</strong> {message()}
      <Show when={props.retry}>
        {' '}
        <button type="button" class="link-button" onClick={() => props.retry?.()}>
          Try again
        </button>
      </Show>
    </div>
  );
}

/** What an empty list means and what to do about it. */
export function EmptyState(props: { title: string; children?: JSX.Element }) {
  return (
    <div class="empty">
      <p class="empty-title">{props.title}</p>
      {props.children}
    </div>
  );
}

export function Loading(props: { label?: string }) {
  return (
    <p class="loading" role="status">
      {props.label ?? 'Loading…'}
    </p>
  );
}

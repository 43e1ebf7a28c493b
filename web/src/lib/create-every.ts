import { onCleanup } from 'solid-js';

/**
 * Calls `fn` every `ms` while the owner lives and the tab is visible, and once at once when the tab
 * comes back: for lists the API has no subscription for.
 */
export function createEvery(ms: number, fn: () => void): void {
  const timer = setInterval(() => {
    if (!document.hidden) fn();
  }, ms);
  const onVisible = () => {
    if (!document.hidden) fn();
  };
  document.addEventListener('visibilitychange', onVisible);
  onCleanup(() => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisible);
  });
}

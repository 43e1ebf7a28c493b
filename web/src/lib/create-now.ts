import { type Accessor, createSignal, onCleanup } from 'solid-js';

/** The current time, ticking every `ms` while the owner lives: for live durations and "ago" labels. */
export function createNow(ms = 1000): Accessor<number> {
  const [now, setNow] = createSignal(Date.now());
  const timer = setInterval(() => setNow(Date.now()), ms);
  onCleanup(() => clearInterval(timer));
  return now;
}

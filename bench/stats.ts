/**
 * Small numeric helpers for the benchmark: percentiles, wall-clock time on the same clock as
 * `date +%s%N`, and formatting.
 */

/** Nearest-rank percentile (p in 0..1) of `samples`; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1]!;
}

/**
 * Milliseconds since the epoch with sub-millisecond resolution. Log-latency figures compare it with
 * timestamps that jobs print (CLOCK_REALTIME), so it must be wall-clock time, not just monotonic.
 */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `1732212345123456789` (ns, as `date +%s%N` prints it) → ms since the epoch, keeping the fraction. */
export function nsTextToMs(text: string): number {
  return Number(text.slice(0, -6)) + Number(text.slice(-6)) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with a message naming `what` when `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A number for a table cell: 3 significant digits, thousands grouped. */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

export function ratio(figure: number, baseline: number): string {
  if (!Number.isFinite(figure) || !Number.isFinite(baseline) || baseline === 0) return 'n/a';
  return `${(figure / baseline).toFixed(2)}×`;
}

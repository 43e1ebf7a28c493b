/**
 * A token bucket per token (per client address when anonymous), in this process: a client that
 * sends more than `perMinute` requests waits for the bucket to refill. Each replica counts its own.
 */
import { createGraphQLError } from 'graphql-yoga';

export function createRateLimiter(perMinute: number, now: () => number = Date.now) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refillPerMs = perMinute / 60_000;
  return {
    /** Throws RATE_LIMITED when `key` has no request left. */
    take(key: string): void {
      if (perMinute <= 0) return;
      const t = now();
      const bucket = buckets.get(key) ?? { tokens: perMinute, at: t };
      bucket.tokens = Math.min(perMinute, bucket.tokens + (t - bucket.at) * refillPerMs);
      bucket.at = t;
      if (bucket.tokens < 1) {
        buckets.set(key, bucket);
        const retry = Math.ceil((1 - bucket.tokens) / refillPerMs / 1000);
        throw createGraphQLError(`too many requests: try again in ${retry} s`, {
          extensions: {
            code: 'RATE_LIMITED',
            http: { status: 429, headers: { 'retry-after': String(retry) } },
          },
        });
      }
      bucket.tokens -= 1;
      buckets.set(key, bucket);
      // Forget full buckets now and then so memory stays bounded by the active clients.
      if (buckets.size > 10_000) {
        for (const [k, b] of buckets) if (b.tokens + (t - b.at) * refillPerMs >= perMinute) buckets.delete(k);
      }
    },
  };
}

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createIdleCollector } from './idle-collector.ts';

const MiB = 1024 * 1024;

/** About `mib` MiB of small objects on the JS heap (strings and arrays, not off-heap buffers). */
function allocate(mib: number): unknown[][] {
  const chunks: unknown[][] = [];
  for (let i = 0; i < mib * 16; i++) {
    chunks.push(Array.from({ length: 1024 }, (_, j) => ({ i, j })));
  }
  return chunks;
}

describe('the idle collector', () => {
  it('collects what a burst left behind once idle, and only then', () => {
    const collector = createIdleCollector({ logger: pino({ level: 'silent' }), minGrowthBytes: 32 * MiB });
    // What the worker holds now is the starting point.
    collector.check({ idle: true });
    let burst: unknown[][] | null = allocate(96);
    // Grown, but the process is busy: nothing is collected.
    expect(collector.check({ idle: false })).toEqual({ collected: false, reason: 'busy' });
    expect(burst.length).toBeGreaterThan(0);
    // The burst is over: its objects are garbage, and nothing allocates before the check, so no
    // collection of V8's own can have taken them yet.
    burst = null;
    const outcome = collector.check({ idle: true });
    expect(outcome.collected).toBe(true);
    if (!outcome.collected) return;
    expect(outcome.heapBefore - outcome.heapAfter).toBeGreaterThan(64 * MiB);
    // Right after a collection the heap has not grown: the next idle check leaves it alone.
    expect(collector.check({ idle: true })).toEqual({ collected: false, reason: 'not grown' });
  });
});

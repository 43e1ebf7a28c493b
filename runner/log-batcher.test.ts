import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogBatcher, type LogBatch, type LogBatcher, type LogBatcherOptions } from './log-batcher.ts';

function collect(opts: Partial<LogBatcherOptions> = {}) {
  const batches: LogBatch[] = [];
  const batcher = createLogBatcher({ sink: async (b) => void batches.push(b), ...opts });
  const lines = () => batches.flatMap((b) => b.lines);
  return { batcher, batches, lines };
}

// The batcher's clock is faked (its timers, its immediates and performance.now): time passes only
// when a test moves it, so what a test sees does not depend on how busy the machine is.
const FAKED = ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'] as const;
/** A sink call that takes `n` ms of the fake clock, like a publish waiting for its confirm. */
const takes = (n: number) => new Promise<void>((resolve) => setTimeout(resolve, n));
/** Lets `n` ms pass on the fake clock, running what falls due and the promises it settles. */
const pass = (n: number) => vi.advanceTimersByTimeAsync(n);
/** end(), with the fake clock run until the batcher has nothing left to do. */
async function end(batcher: LogBatcher): Promise<void> {
  const ended = batcher.end();
  ended.catch(() => {});
  await vi.runAllTimersAsync();
  return ended;
}

describe('createLogBatcher', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: [...FAKED] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('joins a line split across writes and keeps the partial last line until the end', async () => {
    const { batcher, lines } = collect();
    batcher.write(Buffer.from('hel'));
    batcher.write(Buffer.from('lo\nwor'));
    batcher.write(Buffer.from('ld\nno newline at the end'));
    await end(batcher);
    expect(lines()).toEqual(['hello', 'world', 'no newline at the end']);
  });

  it('decodes a UTF-8 character split across writes', async () => {
    const { batcher, lines } = collect();
    const bytes = Buffer.from('café ☕ 🚀\n');
    for (const byte of bytes) batcher.write(Buffer.from([byte]));
    await end(batcher);
    expect(lines()).toEqual(['café ☕ 🚀']);
  });

  it('drops the carriage return of CRLF line ends and replaces NUL bytes', async () => {
    const { batcher, lines } = collect();
    batcher.write(Buffer.from('one\r\ntwo\r'));
    batcher.write(Buffer.from('\na\0b\n\n'));
    await end(batcher);
    expect(lines()).toEqual(['one', 'two', 'aNULb', '']);
  });

  it('cuts lines longer than the limit without breaking characters', async () => {
    const { batcher, lines } = collect({ maxLineBytes: 10 });
    batcher.write(Buffer.from(`${'a'.repeat(25)}\n`));
    batcher.write(Buffer.from('ééééééé'));
    batcher.write(Buffer.from('é\n'));
    await end(batcher);
    expect(lines()).toEqual(['aaaaaaaaaa', 'aaaaaaaaaa', 'aaaaa', 'ééééé', 'ééé']);
  });

  it('numbers lines from 1 across batches', async () => {
    const { batcher, batches } = collect();
    batcher.write(Buffer.from('1\n2\n'));
    await pass(80);
    batcher.write(Buffer.from('3\n'));
    await end(batcher);
    expect(batches.map((b) => b.lines)).toEqual([['1', '2'], ['3']]);
    let expected = 1;
    for (const batch of batches) {
      expect(batch.firstLine).toBe(expected);
      expected += batch.lines.length;
    }
    expect(expected).toBe(4);
  });

  it('batches quick writes into far fewer chunks, each line once and in order', async () => {
    let inFlight = 0;
    let overlapped = false;
    const batches: LogBatch[] = [];
    const batcher = createLogBatcher({
      sink: async (b) => {
        inFlight++;
        if (inFlight > 1) overlapped = true;
        await takes(5);
        batches.push(b);
        inFlight--;
      },
    });
    for (let i = 1; i <= 1000; i++) {
      batcher.write(Buffer.from(`line ${i}\n`));
      if (i % 50 === 0) await pass(1);
    }
    await end(batcher);
    const lines = batches.flatMap((b) => b.lines);
    expect(lines).toEqual(Array.from({ length: 1000 }, (_, i) => `line ${i + 1}`));
    expect(batches.length).toBeLessThan(100);
    expect(overlapped).toBe(false);
  });

  it('sends a batch as soon as the queued lines reach the size limit', async () => {
    const { batcher, batches } = collect({ maxBatchBytes: 1000, intervalMs: 60_000 });
    batcher.write(Buffer.from('first\n'));
    await pass(0);
    expect(batches).toHaveLength(1);
    // The interval now holds the next batch back for a minute, unless it is full: a full one goes
    // without the clock moving, and the two lines left over wait.
    batcher.write(Buffer.from(`${'x'.repeat(99)}\n`.repeat(12)));
    await pass(0);
    expect(batches.map((b) => b.lines.length)).toEqual([1, 10]);
    for (const batch of batches) {
      expect(batch.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)).toBeLessThanOrEqual(1000);
    }
    await end(batcher);
    expect(batches.flatMap((b) => b.lines)).toHaveLength(13);
  });

  it('rejects end() with the sink error and stops sending', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const batcher = createLogBatcher({
      sink: async () => {
        calls++;
        throw new Error('broker gone');
      },
      onError: (error) => errors.push(error),
    });
    batcher.write(Buffer.from('a\n'));
    await pass(0);
    expect(errors).toHaveLength(1);
    batcher.write(Buffer.from('b\n'));
    await expect(end(batcher)).rejects.toThrow('broker gone');
    expect(calls).toBe(1);
    expect(errors).toHaveLength(1);
  });
});

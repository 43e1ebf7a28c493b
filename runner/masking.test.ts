import { describe, expect, it } from 'vitest';
import { createLogBatcher, type LogBatch } from './log-batcher.ts';
import { createMasker } from './masking.ts';

async function maskedLines(secrets: string[], writes: string[]): Promise<string[]> {
  const batches: LogBatch[] = [];
  const batcher = createLogBatcher({
    masker: createMasker(secrets),
    sink: async (b) => void batches.push(b),
  });
  for (const write of writes) batcher.write(Buffer.from(write));
  await batcher.end();
  return batches.flatMap((b) => b.lines);
}

describe('createMasker', () => {
  it('replaces every occurrence of every secret with xxxxxx', () => {
    const masker = createMasker(['hunter2', 'k3y']);
    expect(masker.mask('pw=hunter2 key=k3y again hunter2')).toBe('pw=xxxxxx key=xxxxxx again xxxxxx');
  });

  it('masks the longest secret first so no part of it stays visible', () => {
    expect(createMasker(['abc', 'abcdef']).mask('x abcdef y')).toBe('x xxxxxx y');
  });

  it('treats regular expression characters in secrets literally', () => {
    expect(createMasker(['a.b*c']).mask('a.b*c axbbc')).toBe('xxxxxx axbbc');
  });

  it('leaves lines alone when there are no secrets', () => {
    expect(createMasker(['']).mask('nothing to hide')).toBe('nothing to hide');
  });

  it('masks a secret split across two writes of the job', async () => {
    expect(await maskedLines(['s3cr3t-value'], ['echo s3cr', '3t-value done\n'])).toEqual([
      'echo xxxxxx done',
    ]);
  });

  it('masks each line of a secret that contains a newline', async () => {
    expect(await maskedLines(['first-line\nsecond-line'], ['a first-line\n', 'second-line b\n'])).toEqual([
      'a xxxxxx',
      'xxxxxx b',
    ]);
  });

  it('masks a secret that straddles the cut of a line longer than the limit', async () => {
    const secret = 'TOPSECRET';
    const batches: LogBatch[] = [];
    const batcher = createLogBatcher({
      masker: createMasker([secret]),
      maxLineBytes: 100,
      sink: async (b) => void batches.push(b),
    });
    // The secret starts 4 bytes before the 100-byte cut and arrives in two writes.
    batcher.write(Buffer.from(`${'a'.repeat(96)}TOPS`));
    batcher.write(Buffer.from(`ECRET${'b'.repeat(20)}\n`));
    await batcher.end();
    const lines = batches.flatMap((b) => b.lines);
    expect(lines.join('')).not.toContain('TOPS');
    expect(lines.join('')).toBe(`${'a'.repeat(96)}xxxxxx${'b'.repeat(20)}`);
    expect(lines.length).toBeGreaterThan(1);
  });
});

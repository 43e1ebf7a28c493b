import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarOneFile } from './tar.ts';
import { readTar } from './untar.ts';

/** `data` in chunks of `size` bytes, as a slow stream would deliver it. */
async function* chunked(data: Buffer, size: number) {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function entries(source: AsyncIterable<Buffer>, read = true) {
  const out: { name: string; type: string; size: number; content: string }[] = [];
  for await (const entry of readTar(source)) {
    let content = '';
    if (read) for await (const chunk of entry.content) content += chunk.toString();
    out.push({ name: entry.name, type: entry.type, size: entry.size, content });
  }
  return out;
}

describe('the tar reader', () => {
  let dir: string;
  const longName = `${'d'.repeat(60)}/${'f'.repeat(70)}.txt`;
  const big = Buffer.alloc(1500, 'x');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-untar-'));
    await mkdir(join(dir, 'ws', 'd'.repeat(60)), { recursive: true });
    await writeFile(join(dir, 'ws', 'small.txt'), 'hello\n');
    await writeFile(join(dir, 'ws', 'big.bin'), big);
    await writeFile(join(dir, 'ws', longName), 'long\n');
    await symlink('/etc/passwd', join(dir, 'ws', 'link'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const format of ['pax', 'gnu']) {
    it(`reads files, directories and links of a ${format} archive delivered in small chunks`, async () => {
      const archive = join(dir, `ws-${format}.tar`);
      await promisify(execFile)('tar', [`--format=${format}`, '-C', dir, '-cf', archive, 'ws']);
      const data = await readFile(archive);
      const found = await entries(chunked(data, 7));
      const byName = new Map(found.map((e) => [e.name, e]));
      expect(byName.get('ws')?.type).toBe('directory');
      expect(byName.get('ws/small.txt')).toEqual({
        name: 'ws/small.txt',
        type: 'file',
        size: 6,
        content: 'hello\n',
      });
      expect(byName.get('ws/big.bin')?.content).toBe(big.toString());
      expect(byName.get(`ws/${longName}`)?.content).toBe('long\n');
      expect(byName.get('ws/link')).toMatchObject({ type: 'symlink', content: '' });
    });
  }

  it('skips what a reader leaves unread and reads back what tarOneFile writes', async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of tarOneFile('some/dir/file.txt', Buffer.from('abc'), 3, 0o600))
      chunks.push(chunk);
    const data = Buffer.concat([chunks[0]!, Buffer.from('abc'), Buffer.alloc(509 + 1024)]);
    expect(await entries(chunked(data, 100), false)).toEqual([
      { name: 'some/dir/file.txt', type: 'file', size: 3, content: '' },
    ]);
    expect(await entries(chunked(data, 3))).toEqual([
      { name: 'some/dir/file.txt', type: 'file', size: 3, content: 'abc' },
    ]);
  });

  it('refuses what is not a tar archive', async () => {
    await expect(entries(chunked(Buffer.alloc(1024, 'n'), 512))).rejects.toThrow('not a tar archive');
  });
});

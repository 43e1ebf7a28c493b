import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarOneFile } from './tar.ts';
import { readTar } from './untar.ts';

/** `data` in chunks of `size` bytes, as a slow stream would deliver it. */
async function* chunked(data: Buffer, size: number) {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function* bytes(text: string) {
  yield Buffer.from(text);
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
    const data = Buffer.concat(chunks);
    expect(await entries(chunked(data, 100), false)).toEqual([
      { name: 'some/dir/file.txt', type: 'file', size: 3, content: '' },
    ]);
    expect(await entries(chunked(data, 3))).toEqual([
      { name: 'some/dir/file.txt', type: 'file', size: 3, content: 'abc' },
    ]);
    // What GNU tar makes of it: the same file, mode included.
    await writeFile(join(dir, 'one.tar'), data);
    const { stdout } = await promisify(execFile)('tar', ['-tvf', join(dir, 'one.tar')]);
    expect(stdout).toMatch(/^-rw------- .* 3 .* some\/dir\/file\.txt\n$/);
  });

  it('writes a long name whole and refuses content of another size than announced', async () => {
    const name = `${'d'.repeat(120)}/${'e'.repeat(120)}/${'f'.repeat(90)}.txt`;
    const chunks: Buffer[] = [];
    for await (const chunk of tarOneFile(name, bytes('long'), 4)) chunks.push(chunk);
    expect(await entries(chunked(Buffer.concat(chunks), 512))).toEqual([
      { name, type: 'file', size: 4, content: 'long' },
    ]);
    const drain = async (stream: AsyncIterable<unknown>) => {
      for await (const _ of stream);
    };
    await expect(drain(tarOneFile('a.txt', bytes('abc'), 4))).rejects.toThrow(
      'a.txt: 3 bytes instead of the announced 4',
    );
    await expect(drain(tarOneFile('a.txt', bytes('abcde'), 4))).rejects.toThrow(
      'a.txt: more than the announced 4 bytes',
    );
    // The engine's client starts reading a moment after it is handed the archive: a failure
    // before then must wait for it, not go off with no one listening.
    const failing = tarOneFile('a.txt', bytes(''), 4);
    await delay(20);
    await expect(drain(failing)).rejects.toThrow('a.txt: 0 bytes instead of the announced 4');
  });

  it('goes on to the next entry after a reader stops partway through a file', async () => {
    const archive = join(dir, 'two.tar');
    await promisify(execFile)('tar', ['-C', join(dir, 'ws'), '-cf', archive, 'big.bin', 'small.txt']);
    const seen: string[] = [];
    for await (const entry of readTar(chunked(await readFile(archive), 100))) {
      for await (const chunk of entry.content) {
        seen.push(`${entry.name}: ${chunk.toString().slice(0, 3)}`);
        break;
      }
    }
    expect(seen).toEqual(['big.bin: xxx', 'small.txt: hel']);
  });

  it('refuses what is not a tar archive', async () => {
    await expect(entries(chunked(Buffer.alloc(1024, 'n'), 512))).rejects.toThrow('Invalid tar header');
  });

  it('fails a file that the archive cuts short instead of passing it off as whole', async () => {
    const archive = join(dir, 'cut.tar');
    await promisify(execFile)('tar', ['-C', join(dir, 'ws'), '-cf', archive, 'big.bin']);
    const data = (await readFile(archive)).subarray(0, 512 + 1000);
    await expect(entries(chunked(data, 100))).rejects.toThrow('the tar archive ends inside a file');
  });
});

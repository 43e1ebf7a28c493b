/**
 * The smallest tar reader the docker driver needs: the archives Docker's archive API (getArchive)
 * streams, read entry by entry without buffering a file. Understands ustar (with its name prefix),
 * PAX extended headers (`path`, `size`; Go's archive/tar writes them for long or non-ASCII names) and
 * GNU long names (`L`). Each entry's `content` must be read (or left) before asking for the next
 * entry: what was not read is skipped then.
 */

const BLOCK = 512;

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface TarEntry {
  /** As archived, without a trailing `/` (Docker names entries from the base name of the path). */
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  /** The entry's bytes, streamed from the archive; empty for anything but a file. */
  content: AsyncIterable<Buffer>;
}

/** Reads exact byte counts from a stream of chunks. */
class Reader {
  private buffered: Buffer[] = [];
  private length = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
    this.buffered.push(chunk);
    this.length += chunk.length;
    return true;
  }

  /** Up to `max` bytes (at least 1 unless the stream ended), without waiting for more than one chunk. */
  async some(max: number): Promise<Buffer | null> {
    if (this.length === 0 && !(await this.fill())) return null;
    const first = this.buffered[0]!;
    if (first.length <= max) {
      this.buffered.shift();
      this.length -= first.length;
      return first;
    }
    this.buffered[0] = first.subarray(max);
    this.length -= max;
    return first.subarray(0, max);
  }

  /** Exactly `n` bytes, or null when the stream ends first. */
  async exactly(n: number): Promise<Buffer | null> {
    while (this.length < n) if (!(await this.fill())) return null;
    const all = Buffer.concat(this.buffered);
    this.buffered = all.length > n ? [all.subarray(n)] : [];
    this.length = all.length - n;
    return all.subarray(0, n);
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const chunk = await this.some(left);
      if (!chunk) throw new Error('the tar archive ends inside an entry');
      left -= chunk.length;
    }
  }
}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

function number(block: Buffer, start: number, length: number): number {
  const field = block.subarray(start, start + length);
  // Base-256 (GNU) for values too large for octal: the high bit of the first byte is set.
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const digits = text(block, start, length).trim();
  return digits === '' ? 0 : Number.parseInt(digits, 8);
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === number(block, 148, 8);
}

/** `<length> <key>=<value>\n` records. */
function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number.parseInt(data.subarray(at, space).toString('ascii'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array | string>,
): AsyncGenerator<TarEntry> {
  const reader = new Reader(source[Symbol.asyncIterator]());
  let longName: string | null = null;
  let pax = new Map<string, string>();
  for (;;) {
    const header = await reader.exactly(BLOCK);
    if (!header) return;
    if (header.every((byte) => byte === 0)) return;
    if (!checksumOk(header)) throw new Error('not a tar archive (bad header checksum)');
    const flag = String.fromCharCode(header[156]!);
    let size = number(header, 124, 12);
    if (flag === 'x' || flag === 'g' || flag === 'L') {
      const data = await reader.exactly(size + padding(size));
      if (!data) throw new Error('the tar archive ends inside a header');
      if (flag === 'x') pax = parsePax(data.subarray(0, size));
      if (flag === 'L') longName = text(data, 0, size);
      continue;
    }
    const prefix = text(header, 345, 155);
    let name =
      longName ?? pax.get('path') ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    const paxSize = pax.get('size');
    if (paxSize !== undefined) size = Number(paxSize);
    longName = null;
    pax = new Map();
    name = name.replace(/\/+$/, '');
    const type: TarEntryType =
      flag === '0' || flag === '\0' || flag === '7'
        ? 'file'
        : flag === '5'
          ? 'directory'
          : flag === '2'
            ? 'symlink'
            : 'other';
    // Only files carry content (a hard link `1` has size 0); anything else is skipped whole.
    const contentSize = type === 'file' || type === 'other' ? size : 0;
    let left = contentSize;
    const content = (async function* () {
      while (left > 0) {
        const chunk = await reader.some(left);
        if (!chunk) throw new Error('the tar archive ends inside a file');
        left -= chunk.length;
        yield chunk;
      }
    })();
    yield {
      name,
      type,
      size: type === 'file' ? size : 0,
      mode: number(header, 100, 8),
      content: type === 'file' ? content : (async function* () {})(),
    };
    await reader.skip(left);
    await reader.skip(padding(contentSize));
  }
}

/**
 * The archives Docker's archive API (getArchive) streams, read entry by entry with tar-stream and
 * without buffering a file. Each entry's `content` must be read (or left) before asking for the
 * next entry: what was not read is skipped then.
 */
import { on } from 'node:events';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

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

const TYPES: Record<string, TarEntryType> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
};

/**
 * An entry's bytes, with backpressure. Not the stream's own iterator: leaving that early destroys
 * the stream, and tar-stream then destroys the whole archive. An archive cut short closes the
 * stream without ending it, which must not pass for the end of the file.
 */
async function* bytesOf(stream: Readable): AsyncGenerator<Buffer> {
  let ended = false;
  stream.once('end', () => {
    ended = true;
  });
  for await (const [chunk] of on(stream, 'data', { close: ['end', 'close'], highWaterMark: 16 })) {
    yield chunk;
  }
  if (!ended) throw new Error('the tar archive ends inside a file');
}

export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array | string>,
): AsyncGenerator<TarEntry> {
  const extract = tar.extract();
  const input = Readable.from(source);
  input.once('error', (error) => extract.destroy(error));
  input.pipe(extract);
  try {
    for await (const [header, stream, next] of on(extract, 'entry', { close: ['finish'] })) {
      const type = TYPES[header.type ?? ''] ?? 'other';
      yield {
        name: header.name.replace(/\/+$/, ''),
        type,
        size: type === 'file' ? (header.size ?? 0) : 0,
        mode: header.mode ?? 0,
        content: type === 'file' ? bytesOf(stream) : (async function* () {})(),
      };
      stream.resume();
      next();
    }
  } finally {
    input.destroy();
  }
}

/**
 * The smallest tar writer the docker driver needs: one regular file per archive, as Docker's
 * archive API (putArchive) takes it. Parent directories are not written: Docker creates them.
 */
import { Readable } from 'node:stream';

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** The ustar header of a regular file; names longer than 100 bytes use the 155-byte prefix field. */
export function tarHeader(name: string, size: number, mode = 0o644): Buffer {
  const header = Buffer.alloc(BLOCK);
  let path = Buffer.from(name);
  let prefix = Buffer.alloc(0);
  if (path.length > 100) {
    const cut = name.lastIndexOf('/', name.length - 1);
    const head = Buffer.from(name.slice(0, cut));
    const tail = Buffer.from(name.slice(cut + 1));
    if (cut <= 0 || head.length > 155 || tail.length > 100) throw new Error(`path too long for tar: ${name}`);
    prefix = head;
    path = tail;
  }
  path.copy(header, 0);
  header.write(octal(mode, 8), 100, 'ascii');
  header.write(octal(0, 8), 108, 'ascii'); // uid
  header.write(octal(0, 8), 116, 'ascii'); // gid
  header.write(octal(size, 12), 124, 'ascii');
  header.write(octal(0, 12), 136, 'ascii'); // mtime: reproducible
  header.fill(' ', 148, 156); // checksum field counts as spaces while summing
  header.write('0', 156, 'ascii'); // regular file
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  prefix.copy(header, 345);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return header;
}

/** A tar archive holding one file, streamed: `size` must be the exact length of `content`. */
export function tarOneFile(
  name: string,
  content: Buffer | AsyncIterable<Buffer | Uint8Array | string>,
  size: number,
  mode = 0o644,
): Readable {
  return Readable.from(
    (async function* () {
      yield tarHeader(name, size, mode);
      let written = 0;
      if (Buffer.isBuffer(content)) {
        written = content.length;
        yield content;
      } else {
        for await (const chunk of content) {
          const data = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
          written += data.length;
          if (written > size) throw new Error(`${name}: more than the announced ${size} bytes`);
          yield data;
        }
      }
      if (written !== size) throw new Error(`${name}: ${written} bytes instead of the announced ${size}`);
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      // The content's padding, then two empty blocks that end the archive.
      yield Buffer.alloc(padding + 2 * BLOCK);
    })(),
    { objectMode: false },
  );
}

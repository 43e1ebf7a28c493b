/**
 * One regular file as a tar archive, as Docker's archive API (putArchive) takes it, written by
 * tar-stream. Parent directories are not written: Docker creates them.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

/** A tar archive holding one file, streamed: `size` must be the exact length of `content`. */
export function tarOneFile(
  name: string,
  content: Buffer | AsyncIterable<Buffer | Uint8Array | string>,
  size: number,
  mode = 0o644,
): Readable {
  // Made when first read: the engine's client starts reading a moment after it gets the archive,
  // and an error (of `content`, or of its size) must not go off before anyone listens.
  return Readable.from(
    (async function* () {
      const pack = tar.pack();
      // mtime 0: the same file gives the same archive.
      const entry = pack.entry({ name, size, mode, mtime: new Date(0) }, (error) => {
        if (!error) pack.finalize();
      });
      // tar-stream ends an archive whose entry falls short or fails quietly, truncated: it must
      // fail with the reason instead, before pipeline's clean-up closes it without one.
      const counted = async function* () {
        try {
          let written = 0;
          for await (const chunk of Buffer.isBuffer(content) ? [content] : content) {
            const data = Buffer.from(chunk);
            written += data.length;
            if (written > size) throw new Error(`${name}: more than the announced ${size} bytes`);
            yield data;
          }
          if (written !== size) throw new Error(`${name}: ${written} bytes instead of the announced ${size}`);
        } catch (error) {
          pack.destroy(error as Error);
          throw error;
        }
      };
      pipeline(Readable.from(counted()), entry).catch(() => undefined);
      yield* pack;
    })(),
  );
}

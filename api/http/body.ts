/**
 * A request body read whole into memory, but never past a limit: reading stops at the chunk that
 * passes it, so a client cannot make the server hold more than `limit` bytes of it (plus one chunk),
 * whatever Content-Length says or however long a chunked body goes on. The rest stays unread; the
 * caller answers and closes the connection.
 */
import type { IncomingMessage } from 'node:http';

export type BodyRead =
  | { ok: true; chunks: Buffer[] }
  /** `too large`: past the limit. `aborted`: the client went away before the end. */
  | { ok: false; reason: 'too large' | 'aborted' };

export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (result: BodyRead) => {
      req.off('data', onData).off('end', onEnd).off('error', onAborted).off('close', onAborted);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        settle({ ok: false, reason: 'too large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle({ ok: true, chunks });
    const onAborted = () => settle({ ok: false, reason: 'aborted' });
    req.on('data', onData).on('end', onEnd).on('error', onAborted).on('close', onAborted);
  });
}

import { once } from 'node:events';
import { request } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestApp, type TestApp } from '../test/testkit/app.ts';
import { available } from '../test/testkit/services.ts';
import { DEFAULT_MAX_BODY_BYTES, WS_MAX_PAYLOAD_BYTES } from './server.ts';

const MANIFEST = 'driver: {type: os}\\nstages: [s]\\njobs: [{stage: s, commands: [echo]}]';

async function submit(t: TestApp): Promise<string> {
  const submitted = await t.gql<{ submitBuild: { build: { id: string } } }>(
    `mutation { submitBuild(input: { manifest: "${MANIFEST}" }) { ... on SubmitBuildSuccess { build { id } } } }`,
  );
  return submitted.data!.submitBuild.build.id;
}

/**
 * Resolves once a `buildsUpdated` subscription delivers, which tells that the server has it open:
 * builds are submitted, each announced to every open subscription, until one arrives.
 */
async function untilLive(updates: AsyncIterator<unknown>, t: TestApp): Promise<void> {
  const first = updates.next();
  let arrived = false;
  void first.then(() => {
    arrived = true;
  });
  while (!arrived) {
    await submit(t);
    await Promise.race([first, delay(50)]);
  }
}

/**
 * POSTs to /graphql over a socket of its own: `send` writes what it likes of the body and never ends
 * it, so the answer can only come from what the server has read so far.
 */
function postUnfinished(
  url: string,
  headers: Record<string, string>,
  send: (write: (chunk: Buffer) => void) => void,
): Promise<{ status: number; connection: string | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        resolve({ status: res.statusCode!, connection: res.headers.connection, body: JSON.parse(text) });
        req.destroy();
      });
    });
    // The server closing while this side still writes is expected once it has answered.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.flushHeaders();
    send((chunk) => req.write(chunk));
  });
}

const tooLarge = {
  errors: [
    {
      message: `a request body is at most ${DEFAULT_MAX_BODY_BYTES} bytes`,
      extensions: { code: 'TOO_LARGE' },
    },
  ],
};

describe.runIf(available('postgres'))('the serve process', () => {
  it('answers /healthz while up and /readyz only while database and broker are reachable', async () => {
    const t = await startTestApp();
    try {
      const url = await t.listen();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ database: true, broker: true });
      await t.broker.close();
      const notReady = await fetch(`${url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual({ database: true, broker: false });
    } finally {
      await t.stop();
    }
  });

  it('on stop closes open subscriptions and stops accepting connections', async () => {
    const t = await startTestApp();
    const url = await t.listen();
    const client = t.ws();
    const closed = new Promise<number>((resolve) =>
      client.on('closed', (event) => resolve((event as { code: number }).code)),
    );
    const updates = client.iterate({ query: 'subscription { buildsUpdated { id } }' });
    try {
      await untilLive(updates, t);
      const pending = updates.next().catch(() => null);
      await t.app.stop();
      expect(await closed).toBe(1001);
      await pending;
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      await t.stop();
    }
  });

  it('refuses a GraphQL body over the limit by its Content-Length before reading it, and keeps serving', async () => {
    const t = await startTestApp();
    try {
      const url = await t.listen();
      const refused = await postUnfinished(url, { 'content-length': String(20 * 1024 * 1024) }, (write) =>
        write(Buffer.from('{"query":"')),
      );
      expect(refused).toEqual({ status: 413, connection: 'close', body: tooLarge });
      const answered = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
        body: JSON.stringify({ query: '{ viewer { username } }' }),
      });
      expect(await answered.json()).toEqual({ data: { viewer: { username: 'admin' } } });
    } finally {
      await t.stop();
    }
  });

  it('refuses a chunked GraphQL body as soon as it passes the limit, and keeps serving', async () => {
    const t = await startTestApp();
    try {
      const url = await t.listen();
      const refused = await postUnfinished(url, {}, (write) => {
        write(Buffer.from('{"query":"{ viewer { username } }", "pad": "'));
        for (let sent = 0; sent <= DEFAULT_MAX_BODY_BYTES; sent += 64 * 1024)
          write(Buffer.alloc(64 * 1024, 'x'));
      });
      expect(refused).toEqual({ status: 413, connection: 'close', body: tooLarge });
      // Just under the limit, the same body is read and executed.
      const padding = 'x'.repeat(DEFAULT_MAX_BODY_BYTES - 200);
      const answered = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
        body: JSON.stringify({ query: '{ viewer { username } }', extensions: { padding } }),
      });
      expect(await answered.json()).toEqual({ data: { viewer: { username: 'admin' } } });
    } finally {
      await t.stop();
    }
  });

  it('closes a WebSocket whose frame passes 1 MiB, and only that one', async () => {
    const t = await startTestApp();
    try {
      const url = await t.listen();
      const client = t.ws();
      const updates = client.iterate<{ buildsUpdated: { id: string } }>({
        query: 'subscription { buildsUpdated { id } }',
      });
      await untilLive(updates, t);
      const big = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      await once(big, 'open');
      const closed = once(big, 'close');
      big.send('x'.repeat(WS_MAX_PAYLOAD_BYTES + 1));
      const [code] = (await closed) as [number];
      expect(code).toBe(1009);
      const id = await submit(t);
      for (;;) {
        const next = await updates.next();
        expect(next.done).toBe(false);
        if (next.value?.data?.buildsUpdated.id === id) break;
      }
    } finally {
      await t.stop();
    }
  });
});

/**
 * A subscriber that stops reading must not make serve hold what it has not read: a real `kiln serve`
 * (PostgreSQL, RabbitMQ) streams 200,000 lines of a build to a graphql-ws client whose socket is
 * paused, while the test publishes them as a runner would (about 200 MB at 20 MB/s). Serve's RSS
 * must stay within RSS_BOUND_BYTES of what it was before: measured here about +25 MiB alone and up to
 * +88 MiB while CI's other worker drove Chromium beside it (garbage collected later on a starved
 * machine), where buffering the lines for the subscriber took +260 MiB. Once the client reads again
 * it gets every line once, in order, from the store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AmqpBroker } from '../runner/broker/amqp/amqp-broker.ts';
import { deleteTopology } from '../runner/broker/amqp/topology.ts';
import type { RunnerEvent } from '../runner/contract/messages.ts';
import { createTestDatabase, type TestDatabase } from './testkit/db.ts';
import { type KilnProcess, startServe } from './testkit/processes.ts';
import { AMQP_URL, available } from './testkit/services.ts';
import { waitFor } from './testkit/wait.ts';

const LINES = 200_000;
/** A runner sends at most 64 KiB a chunk. */
const LINES_PER_CHUNK = 60;
/** Each line is this long: 200,000 of them are about 200 MB of text. */
const LINE_LENGTH = 1_000;
/** Serve's RSS may grow this much while the subscriber does not read: half of what buffering took. */
const RSS_BOUND_BYTES = 128 * 1024 * 1024;

const line = (n: number) => `L${n} `.padEnd(LINE_LENGTH, 'x');

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb) * 1024;
}

describe.runIf(available('postgres') && available('rabbitmq'))('a subscriber that stops reading', () => {
  const token = `kiln_${randomBytes(16).toString('hex')}`;
  const prefix = `test-${randomBytes(4).toString('hex')}`;
  let db: TestDatabase;
  let work: string;
  let serve: KilnProcess & { url: string };
  let runner: AmqpBroker;

  beforeAll(async () => {
    db = await createTestDatabase();
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-slow-'));
    serve = await startServe('serve', {
      KILN_DATABASE_URL: db.url,
      KILN_AMQP_URL: AMQP_URL,
      KILN_BROKER_PREFIX: prefix,
      KILN_BOOTSTRAP_TOKEN: token,
      KILN_DATA_DIR: path.join(work, 'data'),
      KILN_RATE_LIMIT: '0',
    });
    runner = new AmqpBroker({ url: AMQP_URL, prefix });
    await runner.start();
  }, 120_000);

  afterAll(async () => {
    await runner?.close();
    await serve?.stop(5_000);
    await deleteTopology(AMQP_URL, prefix, ['default']).catch(() => {});
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keeps serve within its bound while it does not read, then gets all 200,000 lines once', async () => {
    const submitted = await fetch(`${serve.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: `mutation ($m: String!) { submitBuild(input: { manifest: $m }) {
          ... on SubmitBuildSuccess { build { id stages { jobs { id } } } } } }`,
        variables: { m: 'driver: {type: os}\nstages: [one]\njobs:\n  - {stage: one, commands: [yes]}\n' },
      }),
    });
    const { data } = (await submitted.json()) as {
      data: { submitBuild: { build: { id: string; stages: { jobs: { id: string }[] }[] } } };
    };
    const build = data.submitBuild.build;
    const buildId = decodeGlobalID(build.id).id;
    const jobId = decodeGlobalID(build.stages[0]!.jobs[0]!.id).id;
    const base = { buildId, attempt: 1, lease: randomUUID() };
    const at = () => new Date().toISOString();
    await runner.publish('event', [
      { type: 'build.started', runner: 'test', waiting: false, ...base, at: at() },
      { type: 'job.started', jobId, ...base, at: at() },
    ]);

    // graphql-ws by hand, so the test can stop reading the socket.
    const socket = new WebSocket(`${serve.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    const received: string[] = [];
    let completed = false;
    let acked = false;
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as {
        type: string;
        payload?: { data?: { buildLog: { lines: string[] } } };
      };
      if (message.type === 'next') received.push(...(message.payload?.data?.buildLog.lines ?? []));
      if (message.type === 'complete') completed = true;
      if (message.type === 'connection_ack') acked = true;
    });
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await waitFor('the connection to be acknowledged', () => acked);
    socket.send(
      JSON.stringify({
        type: 'subscribe',
        id: '1',
        payload: {
          query: 'subscription ($id: ID!) { buildLog(buildId: $id) { lines } }',
          variables: { id: build.id },
        },
      }),
    );

    let seq = 0;
    const chunk = (from: number, count: number): RunnerEvent => ({
      type: 'log.chunk',
      jobId,
      seq: ++seq,
      firstLine: from,
      lines: Array.from({ length: count }, (_, i) => line(from + i)),
      ...base,
      at: at(),
    });
    await runner.publish('event', [chunk(1, 1)]);
    await waitFor('the first line to arrive', () => received.length === 1);

    // The client stops reading: what serve sends piles up in the socket buffers, then in serve.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const before = rssOf(serve.child.pid!);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(serve.child.pid!));
    }, 50);
    try {
      for (let first = 2; first <= LINES; first += LINES_PER_CHUNK * 10) {
        const batch: RunnerEvent[] = [];
        for (let f = first; f < first + LINES_PER_CHUNK * 10 && f <= LINES; f += LINES_PER_CHUNK) {
          batch.push(chunk(f, Math.min(LINES_PER_CHUNK, LINES + 1 - f)));
        }
        await runner.publish('event', batch);
        // At about the pace a busy runner prints (20 MB/s), not a single burst: what serve holds is
        // then what it keeps, not garbage it has not collected yet.
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      // Every chunk stored: the subscriber will read them from there.
      const stored = async () => {
        const res = await fetch(`${serve.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({
            query:
              'query ($id: ID!, $after: String) { build(id: $id) { log(first: 1, after: $after) { edges { cursor } } } }',
            variables: { id: build.id, after: Buffer.from(`log:1:${seq - 1}`).toString('base64url') },
          }),
        });
        const body = (await res.json()) as { data?: { build: { log: { edges: unknown[] } } } };
        return body.data?.build.log.edges.length === 1;
      };
      await waitFor('every chunk to be stored', stored, { timeoutMs: 120_000, intervalMs: 200 });
      peak = Math.max(peak, rssOf(serve.child.pid!));
    } finally {
      clearInterval(sampler);
    }
    console.log(
      `serve RSS while the subscriber did not read: ${Math.round(before / 2 ** 20)} MiB before, ` +
        `peak ${Math.round(peak / 2 ** 20)} MiB (bound: +${RSS_BOUND_BYTES / 2 ** 20} MiB)`,
    );
    expect(peak - before).toBeLessThan(RSS_BOUND_BYTES);

    await runner.publish('event', [
      { type: 'job.finished', jobId, status: 'PASSED', exitCode: 0, ...base, at: at() },
      { type: 'build.finished', status: 'PASSED', lastSeq: seq, reason: null, ...base, at: at() },
    ]);
    (socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await waitFor(
      () => `all lines (${received.length} so far)`,
      () => completed,
      {
        timeoutMs: 120_000,
        intervalMs: 100,
      },
    );
    socket.close();
    expect(received.length).toBe(LINES);
    for (let n = 1; n <= LINES; n++) {
      if (received[n - 1] !== line(n)) throw new Error(`line ${n} is ${received[n - 1]?.slice(0, 20)}`);
    }
  }, 300_000);
});

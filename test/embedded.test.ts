/**
 * `kiln start` on the embedded defaults (what `npm start` runs): PGlite in the data dir, the
 * in-process broker and runner, nothing else installed. A build runs end to end, the admin token is
 * printed once, and everything survives a restart.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type KilnProcess, spawnKiln } from './testkit/processes.ts';

describe('kiln start on embedded defaults', () => {
  let dataDir: string;
  let proc: KilnProcess | null = null;

  async function start(): Promise<{ proc: KilnProcess; url: string }> {
    proc = spawnKiln('start', ['start'], {
      KILN_DATA_DIR: dataDir,
      KILN_PORT: '0',
      KILN_RUNNER_CONCURRENCY: '1',
    });
    const up = await proc.waitFor((l) => l.msg === 'kiln serve is up', 120_000);
    await proc.waitFor((l) => l.msg === 'in-process runner started');
    return { proc, url: String(up.url) };
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-embedded-'));
  });
  afterAll(async () => {
    await proc?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function gql<T>(url: string, token: string, query: string, variables = {}): Promise<T> {
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data: T; errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  }

  it('runs a build, streams its log, and keeps everything across a restart', async () => {
    const first = await start();
    const tokenFile = path.join(dataDir, 'bootstrap-token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(first.proc.lines.filter((l) => typeof l === 'string' && l.includes(token))).toHaveLength(1);

    const { submitBuild } = await gql<{ submitBuild: { build: { id: string; number: number } } }>(
      first.url,
      token,
      `mutation ($m: String!) { submitBuild(input: { manifest: $m }) { ... on SubmitBuildSuccess { build { id number } } } }`,
      {
        m: 'driver: {type: os}\nstages: [s]\njobs:\n  - {stage: s, name: hello, commands: ["echo hello from kiln", "echo build $KILN_BUILD_NUMBER"]}\n',
      },
    );
    const client = createClient({
      url: `${first.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
    });
    const lines: string[] = [];
    await new Promise<void>((resolve, reject) => {
      client.subscribe<{ buildLog: { lines: string[] } }>(
        {
          query: 'subscription ($id: ID!) { buildLog(buildId: $id) { lines } }',
          variables: { id: submitBuild.build.id },
        },
        { next: (v) => lines.push(...(v.data?.buildLog.lines ?? [])), error: reject, complete: resolve },
      );
    });
    await client.dispose();
    expect(lines).toContain('hello from kiln');
    // The job message carries the number the build was given when it was written.
    expect(lines).toContain(`build ${submitBuild.build.number}`);
    const query = 'query ($id: ID!) { build(id: $id) { number status stages { jobs { status } } } }';
    const before = await gql<{ build: { status: string } }>(first.url, token, query, {
      id: submitBuild.build.id,
    });
    expect(before.build.status).toBe('PASSED');

    expect(await first.proc.stop()).toBe(0);
    const second = await start();
    // The admin exists: no new token is made or printed.
    expect(second.proc.lines.some((l) => typeof l === 'string' && l.includes('Admin token'))).toBe(false);
    const after = await gql<{ build: unknown }>(second.url, token, query, { id: submitBuild.build.id });
    expect(after.build).toEqual({
      number: submitBuild.build.number,
      status: 'PASSED',
      stages: [{ jobs: [{ status: 'PASSED' }] }],
    });
  }, 180_000);
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { isRunning, stopsRunning } from '../../test/testkit/pids.ts';
import { waitFor } from '../../test/testkit/wait.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-embedded-pg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function query(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('embedded postgres', () => {
  it('serves PGlite from a process of its own and keeps the data after stop', async () => {
    const db = await startEmbeddedPostgres(join(dir, 'kept'));
    expect(db.pid).not.toBe(process.pid);
    await query(db.url, "create table notes (text text); insert into notes values ('kept')");
    await db.stop();
    expect(isRunning(db.pid)).toBe(false);
    const again = await startEmbeddedPostgres(join(dir, 'kept'));
    expect(await query(again.url, 'select text from notes')).toEqual([{ text: 'kept' }]);
    await again.stop();
  });

  it('stops by itself when its parent is killed, leaving a usable data directory', async () => {
    const data = join(dir, 'orphaned');
    const code = `
      import { startEmbeddedPostgres } from ${JSON.stringify(new URL('./embedded-postgres.ts', import.meta.url).href)};
      const db = await startEmbeddedPostgres(${JSON.stringify(data)});
      console.log(JSON.stringify({ pid: db.pid, url: db.url }));
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', code],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(parent.stdout, 'data')) as [Buffer];
    const started = JSON.parse(String(line)) as { pid: number; url: string };
    await query(started.url, "create table notes (text text); insert into notes values ('before the kill')");
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    expect(await stopsRunning(started.pid, 10000)).toBe(true);
    const again = await startEmbeddedPostgres(data);
    expect(await query(again.url, 'select text from notes')).toEqual([{ text: 'before the kill' }]);
    await again.stop();
  });

  it('tells when its process ends without being stopped', async () => {
    let lost = '';
    const db = await startEmbeddedPostgres(join(dir, 'lost'), (reason) => {
      lost = reason;
    });
    process.kill(db.pid, 'SIGKILL');
    await waitFor('the loss to be reported', () => lost !== '');
    expect(lost).toBe('the embedded database process ended (SIGKILL)');
    await db.stop();
  });

  it('says which directory it could not start in', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    await expect(startEmbeddedPostgres(join(file, 'pgdata'))).rejects.toThrow(
      `cannot start the embedded database in ${join(file, 'pgdata')}`,
    );
  });

  it("keeps a connection's extended-protocol query whole while another connection sends a simple query", async () => {
    const db = await startEmbeddedPostgres(join(dir, 'interleaved'));
    const [host, port] = new URL(db.url).host.split(':');
    const a = await rawSession(host!, Number(port));
    const b = await rawSession(host!, Number(port));
    try {
      // A's Parse goes alone; B's simple query comes while A has not bound it yet. A simple query
      // drops the session's unnamed statement: run in between, A's Bind found none (26000).
      a.send(message('P', cstring(''), cstring('select $1::int + 1 as n'), int16(0)));
      await a.quiet();
      b.send(message('Q', cstring('select 1')));
      await b.quiet();
      a.send(
        message('B', cstring(''), cstring(''), int16(0), int16(1), int32(2), Buffer.from('41'), int16(0)),
        message('E', cstring(''), int32(0)),
        message('S'),
      );
      const fromA = await a.until('Z');
      const fromB = await b.until('Z');
      expect(errorsIn(fromA)).toEqual([]);
      expect(errorsIn(fromB)).toEqual([]);
      expect(dataRows(fromA)).toEqual(['42']);
      expect(dataRows(fromB)).toEqual(['1']);
    } finally {
      a.close();
      b.close();
      await db.stop();
    }
  });
});

const int16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstring = (s: string) => Buffer.from(`${s}\0`);
const message = (type: string, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
};

type Received = { type: string; body: Buffer }[];

/** A PostgreSQL wire-protocol session by hand, to send messages in the order a test needs. */
async function rawSession(host: string, port: number) {
  const socket = net.connect(port, host);
  await once(socket, 'connect');
  let buffer = Buffer.alloc(0);
  const received: Received = [];
  socket.on('data', (data) => {
    buffer = Buffer.concat([buffer, data]);
    while (buffer.length >= 5 && buffer.length >= 1 + buffer.readInt32BE(1)) {
      const length = buffer.readInt32BE(1);
      received.push({ type: String.fromCharCode(buffer[0]!), body: buffer.subarray(5, 1 + length) });
      buffer = buffer.subarray(1 + length);
    }
  });
  const params = ['user', 'postgres', 'database', 'postgres'].map(cstring);
  const startup = Buffer.concat([int32(196608), ...params, Buffer.from([0])]);
  socket.write(Buffer.concat([int32(startup.length + 4), startup]));
  const until = async (type: string): Promise<Received> => {
    await waitFor(`a ${type} message`, () => received.some((m) => m.type === type));
    const at = received.findIndex((m) => m.type === type);
    return received.splice(0, at + 1);
  };
  await until('Z');
  return {
    send: (...messages: Buffer[]) => socket.write(Buffer.concat(messages)),
    until,
    /** Gives the server time to take what was sent before the other connection speaks. */
    quiet: () => new Promise((resolve) => setTimeout(resolve, 50)),
    close: () => socket.destroy(),
  };
}

const errorsIn = (messages: Received) =>
  messages
    .filter((m) => m.type === 'E')
    .map((m) => m.body.toString('utf8').split('\0').filter(Boolean).join(' '));

const dataRows = (messages: Received) =>
  messages
    .filter((m) => m.type === 'D')
    .map((m) => m.body.subarray(6, 6 + m.body.readInt32BE(2)).toString('utf8'));

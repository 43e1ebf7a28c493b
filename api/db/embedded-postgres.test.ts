import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
});

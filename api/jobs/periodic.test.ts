import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { quietLogger, startTestApp } from '../../test/testkit/app.ts';
import { createTestDatabase } from '../../test/testkit/db.ts';
import { available } from '../../test/testkit/services.ts';
import { startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import { every } from './periodic.ts';

/** A pass that stays running until `release()`; `started` resolves when it begins. */
function gatedPass() {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started!: () => void;
  const begun = new Promise<void>((resolve) => {
    started = resolve;
  });
  const pass = {
    count: 0,
    run: async () => {
      pass.count++;
      started();
      await gate;
    },
    release: () => release(),
    started: begun,
  };
  return pass;
}

describe('a periodic job', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('never starts a pass while the previous one runs, and stop waits for the running one', async () => {
    const slow = gatedPass();
    const job = every({ name: 'slow', intervalMs: 60_000, run: slow.run, logger: quietLogger() });
    const first = job.tick();
    expect(await job.tick()).toBe('busy');
    expect(slow.count).toBe(1);
    let stopped = false;
    const stopping = job.stop().then(() => {
      stopped = true;
    });
    expect(await job.tick()).toBe('stopped');
    expect(stopped).toBe(false);
    slow.release();
    expect(await first).toBe('ran');
    await stopping;
    expect(slow.count).toBe(1);
  });

  it('skips the timer’s ticks while a pass runs and logs one line when it starts', async () => {
    vi.useFakeTimers();
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    );
    const slow = gatedPass();
    const job = every({ name: 'slow', intervalMs: 1_000, run: slow.run, logger });
    job.start();
    await vi.advanceTimersByTimeAsync(1_000);
    await slow.started;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(slow.count).toBe(1);
    slow.release();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(slow.count).toBe(2);
    await job.stop();
    expect(
      lines.map(({ job, intervalMs, leaderOnly, msg }) => ({ job, intervalMs, leaderOnly, msg })),
    ).toEqual([{ job: 'slow', intervalMs: 1_000, leaderOnly: false, msg: 'periodic job scheduled' }]);
  });

  it('logs a failed pass and runs the next one', async () => {
    let calls = 0;
    const job = every({
      name: 'flaky',
      intervalMs: 60_000,
      logger: quietLogger(),
      run: async () => {
        if (++calls === 1) throw new Error('the first pass fails');
      },
    });
    expect(await job.tick()).toBe('failed');
    expect(await job.tick()).toBe('ran');
    await job.stop();
  });

  it('leads on embedded PGlite, whose one session every connection shares, without blocking the others', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-periodic-'));
    const embedded = await startEmbeddedPostgres(join(dir, 'pgdata'));
    const other = new pg.Client({ connectionString: embedded.url });
    try {
      const passes = { count: 0 };
      const job = () =>
        every({
          name: 'embedded',
          intervalMs: 60_000,
          logger: quietLogger(),
          leaderOnly: { databaseUrl: embedded.url },
          run: async () => {
            passes.count++;
          },
        });
      const first = job();
      expect(await first.tick()).toBe('ran');
      await other.connect();
      expect((await other.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      expect(await first.tick()).toBe('ran');
      await first.stop();
      const second = job();
      expect(await second.tick()).toBe('ran');
      await second.stop();
      expect(passes.count).toBe(3);
    } finally {
      await other.end().catch(() => {});
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(available('postgres'))('a leader-only periodic job', () => {
  it('runs on exactly one of two apps sharing a database, and on the other once the leader stops', async () => {
    const db = await createTestDatabase();
    const apps = [await startTestApp({ db }), await startTestApp({ db })];
    try {
      expect(apps[0]!.app.jobs.curator.leaderOnly).toBe(true);
      const outcomes = await Promise.all(apps.map((t) => t.app.jobs.curator.tick()));
      expect([...outcomes].sort()).toEqual(['not leader', 'ran']);
      const [leader, follower] = outcomes[0] === 'ran' ? [apps[0]!, apps[1]!] : [apps[1]!, apps[0]!];
      expect(await leader.app.jobs.curator.tick()).toBe('ran');
      expect(await follower.app.jobs.curator.tick()).toBe('not leader');
      // Safe on every replica: these run on both.
      for (const t of apps) {
        expect(t.app.jobs.watchdog.leaderOnly).toBe(false);
        expect(await t.app.jobs.watchdog.tick()).toBe('ran');
        expect(await t.app.jobs.outboxSweeper.tick()).toBe('ran');
      }
      apps.splice(apps.indexOf(leader), 1);
      await leader.stop();
      expect(await follower.app.jobs.curator.tick()).toBe('ran');
    } finally {
      for (const t of apps) await t.stop();
      await db.drop();
    }
  });

  it('loses the leadership with its database connection, and another app takes it', async () => {
    const db = await createTestDatabase();
    const apps = [await startTestApp({ db }), await startTestApp({ db })];
    try {
      const outcomes = await Promise.all(apps.map((t) => t.app.jobs.curator.tick()));
      const [leader, follower] = outcomes[0] === 'ran' ? [apps[0]!, apps[1]!] : [apps[1]!, apps[0]!];
      const em = follower.orm.em.fork();
      const holders = await em.execute<{ pid: number }[]>(
        `select pid from pg_locks
         where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`,
      );
      expect(holders).toHaveLength(1);
      // With a timeout, it returns once the backend is gone, and its locks with it.
      await em.execute('select pg_terminate_backend(?, 30000)', [holders[0]!.pid]);
      expect(await follower.app.jobs.curator.tick()).toBe('ran');
      expect(await leader.app.jobs.curator.tick()).toBe('not leader');
    } finally {
      for (const t of apps) await t.stop();
      await db.drop();
    }
  });
});

/**
 * Periodic work of the serve process, through one helper: `every({ name, intervalMs, run })`.
 *
 * - Once started, every `intervalMs` a tick runs one pass of `run`. The overlap guard: a pass never
 *   starts while the previous one still runs; a tick that finds one running is skipped, not queued.
 *   A pass that throws is logged and the next tick runs as usual.
 * - `leaderOnly`: a pass runs only in the one process, of all those sharing the database, that holds
 *   the job's PostgreSQL advisory lock (`pg_try_advisory_lock` on a key derived from the job's name).
 *   The lock is taken on a connection of the job's own, held for as long as the lock is; a follower
 *   tries again at each tick. Losing that connection (database restart, network, a terminated
 *   backend) loses leadership; the connection is asked a query before every pass, so a process whose
 *   session is gone never runs a pass believing it still leads. A pass already running is not
 *   interrupted.
 * - Embedded PGlite serves every connection from one backend session, so the lock is always granted
 *   there (to its one process): the job simply runs.
 * - `stop()`: no pass starts any more; resolves once the running pass, if any, is over and the lock
 *   is released. `start()` logs one line: name, interval, leader-only.
 * - `tick()`: one tick now, as the timer does it, for tests and operators; says what happened.
 */
import pg from 'pg';
import type { Logger } from 'pino';

/** What a tick did: ran a pass (which succeeded or threw), or why it ran none. */
export type TickOutcome = 'ran' | 'failed' | 'busy' | 'not leader' | 'stopped';

export interface PeriodicJob {
  readonly name: string;
  readonly intervalMs: number;
  readonly leaderOnly: boolean;
  start(): void;
  tick(): Promise<TickOutcome>;
  stop(): Promise<void>;
}

export interface PeriodicOptions {
  name: string;
  intervalMs: number;
  run: () => Promise<unknown>;
  logger: Logger;
  /** Run on one process only: the one holding the job's lock in this database. */
  leaderOnly?: { databaseUrl: string };
}

interface Leadership {
  /** Whether this process leads now: keeps the lock it holds, or tries to take it. Never throws. */
  lead(): Promise<boolean>;
  release(): Promise<void>;
}

/** Locks are per database; the prefix keeps the jobs' keys apart from any other advisory lock user. */
const lockName = (job: string) => `kiln.periodic.${job}`;

function advisoryLeadership(job: string, databaseUrl: string, logger: Logger): Leadership {
  let held: pg.Client | null = null;

  function lose(client: pg.Client, err?: unknown) {
    if (held !== client) return;
    held = null;
    logger.warn({ err, job }, 'lost the leadership of a periodic job: its database connection ended');
    client.end().catch(() => {});
  }

  return {
    async lead() {
      if (held) {
        const client = held;
        try {
          await client.query('select 1');
          return true;
        } catch (err) {
          lose(client, err);
        }
      }
      const client = new pg.Client({
        connectionString: databaseUrl,
        application_name: `kiln ${job} leader`,
        keepAlive: true,
      });
      // An idle client reports a dropped connection as an 'error' event: unheard, it would end the process.
      client.on('error', (err) => lose(client, err));
      client.on('end', () => lose(client));
      try {
        await client.connect();
        const { rows } = await client.query<{ locked: boolean }>(
          'select pg_try_advisory_lock(hashtextextended($1, 0)) as locked',
          [lockName(job)],
        );
        if (rows[0]?.locked) {
          held = client;
          logger.info({ job }, 'leading a periodic job');
          return true;
        }
      } catch (err) {
        logger.warn({ err, job }, 'could not try for the leadership of a periodic job');
      }
      await client.end().catch(() => {});
      return false;
    },
    async release() {
      const client = held;
      held = null;
      if (!client) return;
      // Closing the connection would release it on PostgreSQL, but not on PGlite, whose one session
      // outlives its connections.
      await client
        .query('select pg_advisory_unlock(hashtextextended($1, 0))', [lockName(job)])
        .catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

export function every(opts: PeriodicOptions): PeriodicJob {
  const { name, intervalMs, logger } = opts;
  const leadership = opts.leaderOnly ? advisoryLeadership(name, opts.leaderOnly.databaseUrl, logger) : null;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<TickOutcome> | null = null;
  let stopped = false;

  async function pass(): Promise<TickOutcome> {
    if (leadership && !(await leadership.lead())) return 'not leader';
    try {
      await opts.run();
      return 'ran';
    } catch (err) {
      logger.error({ err, job: name }, 'a periodic job failed');
      return 'failed';
    }
  }

  function tick(): Promise<TickOutcome> {
    if (stopped) return Promise.resolve('stopped');
    if (running) return Promise.resolve('busy');
    const current = pass().finally(() => {
      running = null;
    });
    running = current;
    return current;
  }

  return {
    name,
    intervalMs,
    leaderOnly: leadership !== null,
    start() {
      stopped = false;
      if (timer) return;
      timer = setInterval(() => void tick(), intervalMs);
      timer.unref();
      logger.info({ job: name, intervalMs, leaderOnly: leadership !== null }, 'periodic job scheduled');
    },
    tick,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
      await leadership?.release();
    },
  };
}

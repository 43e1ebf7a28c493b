/**
 * Raw baselines, measured in the same run as the figures they are compared with: what the same work
 * costs without Kiln (amqplib, a child process, pg, a bare node process).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import amqp from 'amqplib';
import type pg from 'pg';
import { LOG_MAX_BATCH_BYTES } from '../runner/log-batcher.ts';
import { AMQP_URL } from '../test/testkit/services.ts';
import { rssMiB } from './deployments.ts';
import { nsTextToMs, sleep, wallMs, within } from './stats.ts';

/** Spawns `/bin/sh -c <script>` and resolves once its first line of output arrives. */
async function firstLineOf(script: string): Promise<void> {
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const closed = once(child, 'close');
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
  });
  await closed;
}

/**
 * Dispatch floor, per sample: one message published with confirms to a quorum queue (the kind Kiln's
 * build and store queues are) and consumed in this process, then `/bin/sh -c 'echo hi'` spawned and
 * its first line read. Milliseconds, after `warmup` unrecorded rounds.
 */
export async function dispatchBaseline(count: number, warmup = 5): Promise<number[]> {
  const conn = await amqp.connect(AMQP_URL, { noDelay: true });
  const queue = `bench-raw-${randomBytes(4).toString('hex')}`;
  try {
    const channel = await conn.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    let received: (() => void) | null = null;
    await channel.consume(queue, () => received?.(), { noAck: true });
    const samples: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const t0 = performance.now();
      const consumed = new Promise<void>((resolve) => {
        received = resolve;
      });
      const confirmed = new Promise<void>((resolve, reject) => {
        channel.publish('', queue, Buffer.from('{"kind":"build"}'), { persistent: true }, (err: unknown) =>
          err ? reject(err) : resolve(),
        );
      });
      await within(Promise.all([consumed, confirmed]), 10_000, 'raw amqp round trip');
      await firstLineOf('echo hi');
      if (i >= warmup) samples.push(performance.now() - t0);
    }
    await channel.deleteQueue(queue);
    return samples;
  } finally {
    await conn.close().catch(() => {});
  }
}

/** Receive time − print time (ms) of each timestamp line `script` prints, read through a pipe here. */
export async function logLatencyBaseline(script: string): Promise<number[]> {
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const samples: number[] = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const now = wallMs();
    if (/^\d{19}$/.test(line)) samples.push(now - nsTextToMs(line));
  });
  await within(once(child, 'close'), 60_000, 'log latency baseline');
  return samples;
}

/**
 * Rows as the log batcher cuts them: lines joined by `\n` up to LOG_MAX_BATCH_BYTES per row (each
 * line counting its newline), as `{ firstLine, lines }`.
 */
export function chunkLines(count: number): { firstLine: number; lines: string[] }[] {
  const rows: { firstLine: number; lines: string[] }[] = [];
  let current: string[] = [];
  let bytes = 0;
  let first = 1;
  for (let n = 1; n <= count; n++) {
    const line = String(n);
    const size = Buffer.byteLength(line) + 1;
    if (current.length > 0 && bytes + size > LOG_MAX_BATCH_BYTES) {
      rows.push({ firstLine: first, lines: current });
      first = n;
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) rows.push({ firstLine: first, lines: current });
  return rows;
}

/** Rows per INSERT statement in the raw storage baseline. */
const ROWS_PER_INSERT = 8;

/**
 * Storage floor: `count` lines (`1`…`count`) inserted through pg into a table shaped like
 * log_chunks (same columns and primary key, no foreign keys), chunked as the log batcher chunks
 * them, ROWS_PER_INSERT rows per statement, each statement its own transaction as the ingester's
 * batches are. Returns seconds.
 */
export async function rawInsertSeconds(client: pg.Client, count: number): Promise<number> {
  const table = `bench_raw_${randomBytes(4).toString('hex')}`;
  await client.query(`create table ${table} (build_id uuid not null, attempt int not null, seq int not null,
    job_id uuid not null, first_line int not null, line_count int not null, content text not null,
    created_at timestamptz not null, primary key (build_id, attempt, seq))`);
  try {
    const rows = chunkLines(count);
    const buildId = '00000000-0000-4000-8000-000000000001';
    const jobId = '00000000-0000-4000-8000-000000000002';
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
      const slice = rows.slice(i, i + ROWS_PER_INSERT);
      const params: unknown[] = [];
      const values = slice.map((row, j) => {
        params.push(buildId, 1, i + j + 1, jobId, row.firstLine, row.lines.length, row.lines.join('\n'));
        const b = params.length - 7;
        return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, now())`;
      });
      await client.query(
        `insert into ${table} (build_id, attempt, seq, job_id, first_line, line_count, content, created_at)
         values ${values.join(', ')} on conflict do nothing`,
        params,
      );
    }
    const seconds = (performance.now() - t0) / 1000;
    const { rows: check } = await client.query<{ lines: string }>(
      `select sum(line_count) as lines from ${table}`,
    );
    if (Number(check[0]?.lines) !== count) throw new Error(`raw insert stored ${check[0]?.lines} lines`);
    return seconds;
  } finally {
    await client.query(`drop table if exists ${table}`);
  }
}

/** RSS (MiB) of a bare `node -e "setInterval(()=>{},1000)"`, a second after it starts. */
export async function bareNodeRssMiB(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
  try {
    await sleep(1_000);
    return await rssMiB(child.pid!);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit').catch(() => {});
  }
}

/**
 * (f) `docker run --rm <image> echo hi` through the docker CLI, from spawn to its first line: what a
 * container per job costs before Kiln adds anything.
 */
export async function dockerRunBaseline(image: string, count: number, warmup = 2): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = performance.now();
    const child = spawn('docker', ['run', '--rm', image, 'echo', 'hi'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const firstAt = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', () => resolve(performance.now()));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`docker run exited ${code} without output`)));
    });
    await new Promise((resolve) => child.once('exit', resolve));
    if (i >= warmup) samples.push(firstAt - t0);
  }
  return samples;
}

/**
 * Raw baselines of the load measures (load.ts), measured in the same run: the same fan-out from a
 * trivial `ws` server (g), and the same queue drained by bare amqplib consumers (h). Also what (g)'s
 * two sides share: the numbered timestamp lines and how a subscriber counts them.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import amqp from 'amqplib';
import WebSocket from 'ws';
import { AMQP_URL } from '../test/testkit/services.ts';
import { rssMiB } from './deployments.ts';
import { nsTextToMs, sleep, wallMs, within } from './stats.ts';

/** Prints `<n> <CLOCK_REALTIME ns>` for n = 1…count, about 20 ms apart. */
export const numberedTicksScript = (count: number) =>
  `i=1; while [ $i -le ${count} ]; do echo "$i $(date +%s%N)"; sleep 0.02; i=$((i+1)); done`;

const NUMBERED = /^(\d+) (\d{19})$/;

/** What one subscriber received of the numbered lines 1…lines. */
export class Tally {
  readonly counts: Uint32Array;
  distinct = 0;
  /** Lines that were neither numbered nor a `$ command` line. */
  other = 0;
  /** wallMs() when the last missing line arrived (NaN until then). */
  completeAt = Number.NaN;
  /** Chunks received. */
  chunks = 0;

  constructor(readonly lines: number) {
    this.counts = new Uint32Array(lines + 1);
  }

  /** Counts `chunk`'s lines; each numbered line's latency (ms, receive − print) goes to `latencies`. */
  take(chunk: readonly string[], latencies: number[], printed: number[]): void {
    const now = wallMs();
    this.chunks++;
    for (const line of chunk) {
      if (line.startsWith('$ ')) continue;
      const m = NUMBERED.exec(line);
      const n = m ? Number(m[1]) : 0;
      if (!m || n < 1 || n > this.lines) {
        this.other++;
        continue;
      }
      const at = nsTextToMs(m[2]!);
      printed[n] = at;
      latencies.push(now - at);
      if (this.counts[n]!++ === 0 && ++this.distinct === this.lines) this.completeAt = now;
    }
  }

  missing(): number {
    return this.lines - this.distinct;
  }

  repeated(): number {
    let extra = 0;
    for (let n = 1; n <= this.lines; n++) extra += Math.max(0, this.counts[n]! - 1);
    return extra;
  }
}

export interface FanoutResult {
  /** Receive − print (ms), every numbered line of every subscriber. */
  latencies: number[];
  /** The last line's print → every subscriber has every line (ms); NaN when one never had them all. */
  lastLineToAllMs: number;
  /** Subscribers that lacked a line, and lines lacked and received twice or more, summed. */
  incomplete: number;
  missing: number;
  repeated: number;
  /** Subscriptions that ended with an error instead of completing. */
  errors: string[];
  /** RSS (MiB) of the server: before the subscribers came, the most while they were there, and after they left. */
  beforeRss: number;
  peakRss: number;
  afterRss: number;
}

/** Sums a finished set of tallies into a FanoutResult (less the RSS figures). */
export function sumTallies(
  tallies: Tally[],
  latencies: number[],
  printed: number[],
  errors: string[],
): Omit<FanoutResult, 'beforeRss' | 'peakRss' | 'afterRss'> {
  const lines = tallies[0]?.lines ?? 0;
  const incomplete = tallies.filter((t) => t.missing() > 0).length;
  const allAt = Math.max(...tallies.map((t) => t.completeAt));
  return {
    latencies,
    lastLineToAllMs: incomplete === 0 ? allAt - (printed[lines] ?? Number.NaN) : Number.NaN,
    incomplete,
    missing: tallies.reduce((sum, t) => sum + t.missing(), 0),
    repeated: tallies.reduce((sum, t) => sum + t.repeated(), 0),
    errors,
  };
}

/** Samples a process's RSS every `everyMs`; `stop()` gives the most seen and the last. */
export function watchRss(pid: number, everyMs = 200): { stop(): Promise<{ peak: number; last: number }> } {
  let peak = 0;
  let last = Number.NaN;
  const sample = async () => {
    try {
      last = await rssMiB(pid);
      peak = Math.max(peak, last);
    } catch {}
  };
  void sample();
  const timer = setInterval(() => void sample(), everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await sample();
      return { peak, last };
    },
  };
}

/** `count` connections opened by `open`, `batch` at a time (a server may refuse a stampede's stragglers). */
export async function openMany<T>(count: number, open: (i: number) => Promise<T>, batch = 50): Promise<T[]> {
  const opened: T[] = [];
  for (let i = 0; i < count; i += batch) {
    const size = Math.min(batch, count - i);
    opened.push(...(await Promise.all(Array.from({ length: size }, (_, j) => open(i + j)))));
  }
  return opened;
}

/**
 * (g) baseline: `subscribers` plain `ws` connections to bench/ws-fanout-server.mjs (bare node, a
 * process of its own), which runs the same numbered-ticks script and sends each chunk of its output
 * to every connection as a graphql-ws `next`. RSS after: `settleMs` after every connection closed.
 */
export async function fanoutBaseline(
  subscribers: number,
  lines: number,
  settleMs: number,
): Promise<FanoutResult> {
  const server = spawn(
    process.execPath,
    [path.join(import.meta.dirname, 'ws-fanout-server.mjs'), numberedTicksScript(lines)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const sockets: WebSocket[] = [];
  try {
    const [first] = (await within(
      once(createInterface({ input: server.stdout! }), 'line'),
      10_000,
      'the fan-out server to listen',
    )) as [string];
    const { port } = JSON.parse(first) as { port: number };
    const beforeRss = await rssMiB(server.pid!);
    const tallies = Array.from({ length: subscribers }, () => new Tally(lines));
    const latencies: number[] = [];
    const printed: number[] = [];
    const errors: string[] = [];
    const done: Promise<void>[] = [];
    sockets.push(
      ...(await openMany(subscribers, async (i) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}`);
        done.push(
          new Promise<void>((resolve) => {
            socket.on('message', (data) => {
              const message = JSON.parse(String(data)) as {
                type: string;
                payload?: { data: { buildLog: { lines: string[] } } };
              };
              if (message.type === 'next')
                tallies[i]!.take(message.payload!.data.buildLog.lines, latencies, printed);
              else if (message.type === 'complete') resolve();
            });
            socket.on('error', (error) => {
              errors.push(error.message);
              resolve();
            });
            socket.on('close', () => resolve());
          }),
        );
        await once(socket, 'open');
        return socket;
      })),
    );
    const rss = watchRss(server.pid!);
    server.stdin!.write('go\n');
    await within(Promise.all(done), 120_000 + lines * 100, 'every baseline subscriber to complete');
    for (const socket of sockets) socket.close();
    await Promise.all(sockets.map((s) => (s.readyState === WebSocket.CLOSED ? null : once(s, 'close'))));
    const { peak } = await rss.stop();
    await sleep(settleMs);
    return {
      ...sumTallies(tallies, latencies, printed, errors),
      beforeRss,
      peakRss: peak,
      afterRss: await rssMiB(server.pid!),
    };
  } finally {
    for (const socket of sockets) socket.terminate();
    server.kill('SIGKILL');
  }
}

export interface DrainResult {
  /** Enqueued → taken by a consumer (ms), per message. */
  queueToStart: number[];
  /** The first message taken → the last one's work finished (s). */
  drainSeconds: number;
  /** Enqueueing every message (s). */
  fillSeconds: number;
}

/**
 * (h) baseline: `count` messages published with confirms to a RabbitMQ quorum queue, then
 * `consumers` amqplib consumers (a connection each, prefetch `prefetch`, in this process) that each
 * spawn `/bin/sh -c 'echo hi'` per message, wait for it to exit and ack.
 */
export async function drainBaseline(
  count: number,
  consumers: number,
  prefetch: number,
): Promise<DrainResult> {
  const queue = `bench-raw-drain-${randomBytes(4).toString('hex')}`;
  const publisher = await amqp.connect(AMQP_URL);
  const connections: amqp.ChannelModel[] = [publisher];
  try {
    const channel = await publisher.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    const fillStart = performance.now();
    for (let i = 0; i < count; i++) {
      const body = Buffer.from(JSON.stringify({ kind: 'build', i, enqueuedAt: Date.now() }));
      if (!channel.publish('', queue, body, { persistent: true })) await once(channel, 'drain');
    }
    await channel.waitForConfirms();
    const fillSeconds = (performance.now() - fillStart) / 1000;
    const queueToStart: number[] = [];
    let firstAt = Number.NaN;
    let lastAt = 0;
    let done = 0;
    let finished!: () => void;
    const allDone = new Promise<void>((resolve) => {
      finished = resolve;
    });
    for (let c = 0; c < consumers; c++) {
      const conn = await amqp.connect(AMQP_URL);
      connections.push(conn);
      const ch = await conn.createChannel();
      await ch.prefetch(prefetch);
      await ch.consume(queue, (message) => {
        if (!message) return;
        const startedAt = Date.now();
        if (Number.isNaN(firstAt)) firstAt = performance.now();
        queueToStart.push(
          startedAt - (JSON.parse(String(message.content)) as { enqueuedAt: number }).enqueuedAt,
        );
        const child = spawn('/bin/sh', ['-c', 'echo hi'], { stdio: ['ignore', 'pipe', 'ignore'] });
        child.stdout.resume();
        child.once('close', () => {
          ch.ack(message);
          lastAt = performance.now();
          if (++done === count) finished();
        });
      });
    }
    await within(allDone, 60_000 + count * 100, 'the raw drain');
    await channel.deleteQueue(queue);
    return { queueToStart, drainSeconds: (lastAt - firstAt) / 1000, fillSeconds };
  } finally {
    for (const conn of connections.reverse()) await conn.close().catch(() => {});
  }
}

/**
 * (k) 1,000 schedules due in the same minute: each is created with an expression naming one minute
 * (`M H D Mo *`, so it fires once in the run), all the same minute, at least 20 s ahead; once the
 * slot has passed, each build's `createdAt` (written when it is queued) minus the slot is its
 * latency. The builds go to a queue no runner takes, so the figure is the scheduler's alone.
 *
 * Raw baseline: what a scheduler with nothing to guarantee does: node-schedule timers in one
 * process, one per schedule, for one slot a few seconds ahead, each inserting one row through pg
 * into a table of its own; slot to each row's `clock_timestamp()`.
 */
import { randomBytes } from 'node:crypto';
import schedule from 'node-schedule';
import type pg from 'pg';
import type { KilnClient } from './client.ts';
import { percentile, sleep, within } from './stats.ts';

export const SCHEDULES_NOTES = `(k) 1,000 schedules of one namespace, each with an expression naming the same minute (at least
20 s ahead), building a manifest on a queue no runner takes; latency is each build's \`createdAt\`
(queued) minus the slot. Raw baseline: 1,000 node-schedule timers in one process for one slot, each
inserting one row through pg; slot to the row's \`clock_timestamp()\`.`;

const MANIFEST = `driver: {type: os}
queue: bench-schedules
stages: [s]
jobs:
  - stage: s
    commands: ['echo scheduled']
`;

interface SchedulesContext {
  client: KilnClient;
  count: number;
  rawDatabase(): Promise<pg.Client>;
  add(row: { measure: string; figure: number; baseline: number; unit: string }): void;
  log(message: string): void;
}

export async function measureSchedules(ctx: SchedulesContext): Promise<void> {
  await ctx.client
    .gql('mutation { createNamespace(input: { path: "schedules" }) { __typename } }')
    .catch(() => undefined);
  // The first minute at least 20 s (plus a little per schedule) ahead.
  const lead = 20_000 + ctx.count * 15;
  const slot = new Date(Math.ceil((Date.now() + lead) / 60_000) * 60_000);
  const cron = `${slot.getUTCMinutes()} ${slot.getUTCHours()} ${slot.getUTCDate()} ${slot.getUTCMonth() + 1} *`;
  ctx.log(`(k) ${ctx.count} schedules "${cron}" (UTC), due at ${slot.toISOString()}`);
  const ids: string[] = [];
  const batch = 20;
  for (let i = 0; i < ctx.count; i += batch) {
    const created = await Promise.all(
      Array.from({ length: Math.min(batch, ctx.count - i) }, (_, j) =>
        ctx.client.gql<{ createSchedule: { schedule?: { id: string }; message?: string } }>(
          `mutation ($name: String!, $cron: String!, $m: String!) {
            createSchedule(input: { namespace: "schedules", name: $name, cron: $cron, manifest: $m }) {
              ... on CreateScheduleSuccess { schedule { id } } ... on Error { message } } }`,
          { name: `bench ${slot.toISOString()} ${i + j}`, cron, m: MANIFEST },
        ),
      ),
    );
    for (const c of created) {
      if (!c.createSchedule.schedule) throw new Error(`(k) createSchedule: ${c.createSchedule.message}`);
      ids.push(c.createSchedule.schedule.id);
    }
  }
  if (Date.now() > slot.getTime() - 2_000) throw new Error('(k) creating the schedules took past the slot');
  await sleep(slot.getTime() - Date.now());
  const latencies = await within(
    (async () => {
      for (;;) {
        const found: number[] = [];
        let after: string | null = null;
        for (;;) {
          const page: {
            builds: {
              edges: { node: { createdAt: string; cause: { scheduledFor: string | null } } }[];
              pageInfo: { hasNextPage: boolean; endCursor: string | null };
            };
          } = await ctx.client.gql(
            `query ($after: String) { builds(namespace: "schedules", first: 100, after: $after) {
              edges { node { createdAt cause { scheduledFor } } } pageInfo { hasNextPage endCursor } } }`,
            { after },
          );
          for (const { node } of page.builds.edges) {
            if (node.cause.scheduledFor && Date.parse(node.cause.scheduledFor) === slot.getTime()) {
              found.push(Date.parse(node.createdAt) - slot.getTime());
            }
          }
          if (!page.builds.pageInfo.hasNextPage) break;
          after = page.builds.pageInfo.endCursor;
        }
        if (found.length > ctx.count) throw new Error(`(k) ${found.length} builds for ${ctx.count} slots`);
        if (found.length === ctx.count) return found;
        await sleep(500);
      }
    })(),
    120_000,
    `(k) the ${ctx.count} builds of the slot`,
  );
  const raw = await rawScheduleBaseline(await ctx.rawDatabase(), ctx.count);
  ctx.add({
    measure: '(k) schedule slot → build queued p50',
    figure: percentile(latencies, 0.5),
    baseline: percentile(raw, 0.5),
    unit: 'ms',
  });
  ctx.add({
    measure: '(k) schedule slot → build queued p99',
    figure: percentile(latencies, 0.99),
    baseline: percentile(raw, 0.99),
    unit: 'ms',
  });
}

/** node-schedule timers for one slot 3 s ahead, each inserting a row; slot to each row's time. */
async function rawScheduleBaseline(client: pg.Client, count: number): Promise<number[]> {
  const table = `bench_raw_schedule_${randomBytes(4).toString('hex')}`;
  await client.query(`create table ${table} (n int primary key, at timestamptz not null)`);
  try {
    const slot = new Date(Math.ceil((Date.now() + 3_000) / 1000) * 1000);
    const done: Promise<void>[] = [];
    for (let n = 0; n < count; n++) {
      done.push(
        new Promise((resolve, reject) => {
          schedule.scheduleJob(slot, () => {
            client
              .query(`insert into ${table} (n, at) values ($1, clock_timestamp())`, [n])
              .then(() => resolve(), reject);
          });
        }),
      );
    }
    await Promise.all(done);
    const { rows } = await client.query<{ at: Date }>(`select at from ${table}`);
    return rows.map((r) => new Date(r.at).getTime() - slot.getTime());
  } finally {
    await client.query(`drop table if exists ${table}`);
  }
}

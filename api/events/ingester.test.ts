/**
 * Ingest and subscriptions with events published through the broker exactly as a runner publishes
 * them (the runner itself is exercised in test/*.test.ts): idempotent storage, status rules,
 * replay-then-live log delivery, cursors, and completion.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogChunkEvent, RunnerEvent } from '../../runner/contract/messages.ts';
import { collect, startTestApp, type TestApp } from '../../test/testkit/app.ts';
import { available } from '../../test/testkit/services.ts';
import { waitFor } from '../../test/testkit/wait.ts';
import type { StoredChunk } from '../modules/builds/build-log.ts';
import { streamLog } from '../modules/builds/log-stream.ts';

const MANIFEST = `driver: {type: os}
stages: [one, two]
jobs:
  - {stage: one, name: a, commands: [echo a]}
  - {stage: two, name: b, commands: [echo b]}
`;

type Ids = { globalId: string; buildId: string; jobs: string[] };

const LOG = `subscription ($id: ID!, $after: String) {
  buildLog(buildId: $id, after: $after) { cursor attempt firstLine lines job { name } }
}`;
type LogItem = {
  buildLog: { cursor: string; attempt: number; firstLine: number; lines: string[]; job: { name: string } };
};

const BUILD = `query ($id: ID!) { build(id: $id) {
  status attempt tags reason stages { jobs { name status exitCode } } log(first: 1000) { edges { node { lines } } } } }`;
type BuildData = {
  build: {
    status: string;
    attempt: number;
    tags: string[];
    reason: string | null;
    stages: { jobs: { name: string; status: string; exitCode: number | null }[] }[];
    log: { edges: { node: { lines: string[] } }[] };
  };
};

describe.runIf(available('postgres'))('ingest and subscriptions', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
    await t.listen();
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function submit(): Promise<Ids> {
    const res = await t.gql<{ submitBuild: { build: { id: string; stages: { jobs: { id: string }[] }[] } } }>(
      `mutation ($m: String!) { submitBuild(input: { manifest: $m }) {
        ... on SubmitBuildSuccess { build { id stages { jobs { id } } } } } }`,
      { m: MANIFEST },
    );
    const build = res.data!.submitBuild.build;
    const { decodeGlobalID } = await import('@pothos/plugin-relay');
    return {
      globalId: build.id,
      buildId: decodeGlobalID(build.id).id,
      jobs: build.stages.flatMap((s) => s.jobs.map((j) => decodeGlobalID(j.id).id)),
    };
  }

  const at = () => new Date().toISOString();
  function chunk(
    ids: Ids,
    attempt: number,
    seq: number,
    job: number,
    firstLine: number,
    lines: string[],
    lease = `lease-${attempt}`,
  ): RunnerEvent {
    return {
      type: 'log.chunk',
      buildId: ids.buildId,
      attempt,
      lease,
      seq,
      jobId: ids.jobs[job]!,
      firstLine,
      lines,
      at: at(),
    };
  }
  function passingRun(ids: Ids, attempt = 1, lease = `lease-${attempt}`): RunnerEvent[] {
    const base = { buildId: ids.buildId, attempt, lease, at: at() };
    return [
      { type: 'build.started', runner: 'r1', waiting: false, ...base },
      { type: 'job.started', jobId: ids.jobs[0]!, ...base },
      chunk(ids, attempt, 1, 0, 1, ['a1', 'a2'], lease),
      chunk(ids, attempt, 2, 0, 3, ['a3'], lease),
      { type: 'job.finished', jobId: ids.jobs[0]!, status: 'PASSED', exitCode: 0, ...base },
      { type: 'job.started', jobId: ids.jobs[1]!, ...base },
      chunk(ids, attempt, 3, 1, 1, ['b1'], lease),
      { type: 'job.finished', jobId: ids.jobs[1]!, status: 'PASSED', exitCode: 0, ...base },
      { type: 'build.finished', status: 'PASSED', lastSeq: 3, reason: null, ...base },
    ];
  }

  /** As if the runner holding the build had not been heard of for longer than a lease lasts. */
  async function lapse(ids: Ids): Promise<void> {
    await t.orm.em
      .fork()
      .execute(`update builds set lease_seen_at = now() - interval '1 hour' where id = ?`, [ids.buildId]);
  }

  async function read(ids: Ids): Promise<BuildData['build']> {
    return (await t.gql<BuildData>(BUILD, { id: ids.globalId })).data!.build;
  }

  function waitForStatus(ids: Ids, status: string): Promise<BuildData['build']> {
    return waitFor(`build ${ids.buildId} to be ${status}`, async () => {
      const build = await read(ids);
      return build.status === status && build;
    });
  }

  it('stores a run, and an event delivered twice is stored once', async () => {
    const ids = await submit();
    const events = passingRun(ids);
    await t.broker.publish('event', events);
    await t.broker.publish('event', events);
    const build = await waitForStatus(ids, 'PASSED');
    expect(build.stages.flatMap((s) => s.jobs.map((j) => [j.name, j.status, j.exitCode]))).toEqual([
      ['a', 'PASSED', 0],
      ['b', 'PASSED', 0],
    ]);
    expect(build.log.edges.flatMap((e) => e.node.lines)).toEqual(['a1', 'a2', 'a3', 'b1']);
    const rows = await t.orm.em
      .fork()
      .execute<{ count: string }[]>('select count(*) from log_chunks where build_id = ?', [ids.buildId]);
    expect(Number(rows[0]?.count)).toBe(3);
  });

  it('stores text that looks like SQL or placeholders as it is', async () => {
    const ids = await submit();
    const reason = "it's done? really?? :name $1 \\ ?; drop table builds; --";
    const line = "echo 'it''s' ? ?? $1 \\n -- ; select 1;";
    const events = passingRun(ids).map((e) => {
      if (e.type === 'build.finished') return { ...e, status: 'FAILED' as const, reason };
      if (e.type === 'log.chunk' && e.seq === 1) return { ...e, lines: [line, e.lines[1]!] };
      return e;
    });
    // One batch: its small chunks travel in the same message as the status changes.
    await t.broker.publish('event', events);
    const build = await waitForStatus(ids, 'FAILED');
    expect(build.reason).toBe(reason);
    expect(build.log.edges.flatMap((e) => e.node.lines)).toEqual([line, 'a2', 'a3', 'b1']);
  });

  it('never moves a finished job back, whatever order the events of a run arrive in after its start', async () => {
    const ids = await submit();
    const run = passingRun(ids);
    // job.finished for job a before its job.started, and its chunks the other way round.
    const [started, jobStarted, c1, c2, jobFinished, ...rest] = run;
    await t.broker.publish('event', [started!, jobFinished!, c2!, jobStarted!, c1!, ...rest]);
    const build = await waitForStatus(ids, 'PASSED');
    expect(build.stages.flatMap((s) => s.jobs.map((j) => j.status))).toEqual(['PASSED', 'PASSED']);
  });

  it('runs a later attempt from scratch and tags the build orphaned', async () => {
    const ids = await submit();
    const first = passingRun(ids, 1).slice(0, 5); // the runner died after job a
    await t.broker.publish('event', first);
    await waitForStatus(ids, 'RUNNING');
    await lapse(ids);
    await t.broker.publish('event', passingRun(ids, 2));
    const build = await waitForStatus(ids, 'PASSED');
    expect(build.attempt).toBe(2);
    expect(build.tags).toContain('orphaned');
    // A late event of attempt 1 changes nothing. Storage takes events one batch at a time, in the
    // order they were published: once another build's start, published after it, is stored, the
    // late event has been dealt with.
    const later = await submit();
    await t.broker.publish('event', [
      {
        type: 'job.finished',
        jobId: ids.jobs[1]!,
        status: 'FAILED',
        exitCode: 1,
        buildId: ids.buildId,
        attempt: 1,
        lease: 'lease-1',
        at: at(),
      },
    ]);
    await t.broker.publish('event', passingRun(later).slice(0, 1));
    await waitForStatus(later, 'RUNNING');
    const again = await read(ids);
    expect(again.status).toBe('PASSED');
    expect(again.stages.flatMap((s) => s.jobs.map((j) => j.status))).toEqual(['PASSED', 'PASSED']);
  });

  it('gives a subscriber that connects after the build ended the whole log, then completes', async () => {
    const ids = await submit();
    await t.broker.publish('event', passingRun(ids));
    await waitForStatus(ids, 'PASSED');
    const sub = collect<LogItem>(t.ws(), LOG, { id: ids.globalId });
    await sub.done;
    expect(sub.errors).toEqual([]);
    // Each line once, in order, numbered within its job (chunks of one job may come joined).
    const numbered = sub.items.flatMap((i) =>
      i.buildLog.lines.map((line, n) => `${i.buildLog.job.name}${i.buildLog.firstLine + n}:${line}`),
    );
    expect(numbered).toEqual(['a1:a1', 'a2:a2', 'a3:a3', 'b1:b1']);
  });

  it('streams live chunks to a subscriber, and resumes from a cursor without a gap or a repeat', async () => {
    const ids = await submit();
    const run = passingRun(ids);
    // Until the three lines are in: chunks that reach a subscriber together may come as one.
    const first = collect<LogItem>(
      t.ws(),
      LOG,
      { id: ids.globalId },
      (items) => items.flatMap((i) => i.buildLog.lines).length >= 3,
    );
    await t.broker.publish('event', run.slice(0, 4)); // started, job started, chunks 1 and 2
    await first.done;
    expect(first.items.flatMap((i) => i.buildLog.lines)).toEqual(['a1', 'a2', 'a3']);
    // The client drops; the run goes on; it reconnects with its last cursor.
    await t.broker.publish('event', run.slice(4, 7)); // chunk 3 published while nobody listens
    const cursor = first.items.at(-1)!.buildLog.cursor;
    const second = collect<LogItem>(t.ws(), LOG, { id: ids.globalId, after: cursor });
    await t.broker.publish('event', run.slice(7));
    await second.done;
    expect(second.errors).toEqual([]);
    expect(second.items.map((i) => i.buildLog.lines)).toEqual([['b1']]);
  });

  it('joins the chunks waiting for a subscriber that fell behind into one message, every line once', async () => {
    const ids = await submit();
    const run = passingRun(ids);
    await t.broker.publish('event', run.slice(0, 2)); // started, job started
    await waitForStatus(ids, 'RUNNING');
    const listening = t.app.pubsub.listenerCount();
    const stream = streamLog({ orm: t.orm, pubsub: t.app.pubsub, buildId: ids.buildId, after: null });
    // The stream subscribes and waits; 200 one-line chunks arrive before it runs again.
    const first = stream.next();
    await waitFor('the stream to subscribe', () => t.app.pubsub.listenerCount() > listening);
    for (let seq = 1; seq <= 200; seq++) {
      t.app.pubsub.publishLog(chunk(ids, 1, seq, 0, seq, [`line ${seq}`]) as LogChunkEvent);
    }
    const joined = (await first).value as StoredChunk;
    expect(joined).toMatchObject({ seq: 200, firstLine: 1 });
    expect(joined.lines).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i + 1}`));
    await stream.return(undefined);
    // Its cursor is the last chunk's: a client resuming from it misses nothing and repeats nothing.
    const resumed = streamLog({
      orm: t.orm,
      pubsub: t.app.pubsub,
      buildId: ids.buildId,
      after: { attempt: 1, seq: 200 },
    });
    const next = resumed.next();
    await waitFor('the resumed stream to subscribe', () => t.app.pubsub.listenerCount() > listening);
    t.app.pubsub.publishLog(chunk(ids, 1, 201, 0, 201, ['line 201']) as LogChunkEvent);
    expect(((await next).value as StoredChunk).lines).toEqual(['line 201']);
    await resumed.return(undefined);
  });

  it('sends buildUpdated on every change of the build or its jobs', async () => {
    const ids = await submit();
    const sub = collect<{ buildUpdated: { status: string; stages: { jobs: { status: string }[] }[] } }>(
      t.ws(),
      'subscription ($id: ID!) { buildUpdated(buildId: $id) { status stages { jobs { status } } } }',
      { id: ids.globalId },
      (items) => items.some((i) => i.buildUpdated.status === 'PASSED'),
    );
    // Nothing says when the server starts listening: until the subscriber hears one, announce the
    // build as submitBuild did (queued, which no runner event leaves it), then run it.
    const queued: RunnerEvent = {
      type: 'build.updated',
      buildId: ids.buildId,
      status: 'QUEUED',
      attempt: 0,
      lease: null,
      reason: null,
      startedAt: null,
      finishedAt: null,
      jobs: ids.jobs.map((jobId) => ({
        jobId,
        status: 'QUEUED',
        exitCode: null,
        startedAt: null,
        finishedAt: null,
      })),
      at: at(),
    };
    await waitFor('the subscription to hear an announcement', async () => {
      if (sub.items.length > 0 || sub.errors.length > 0) return true;
      await t.broker.publish('event', [queued]);
      return false;
    });
    for (const event of passingRun(ids)) await t.broker.publish('event', [event]);
    await sub.done;
    expect(sub.errors).toEqual([]);
    const seen = sub.items
      .filter((i) => i.buildUpdated.status !== 'QUEUED')
      .map(
        (i) => `${i.buildUpdated.status}:${i.buildUpdated.stages.map((s) => s.jobs[0]!.status).join(',')}`,
      );
    expect(seen[0]).toBe('RUNNING:QUEUED,QUEUED');
    expect(seen).toContain('RUNNING:RUNNING,QUEUED');
    expect(seen).toContain('RUNNING:PASSED,RUNNING');
    expect(seen.at(-1)).toBe('PASSED:PASSED,PASSED');
  });

  it('fails a build whose job is dead-lettered, with the reason, and closes its log', async () => {
    const ids = await submit();
    const consumer = await t.broker.consume('build', ['default'], 1, async (delivery) => {
      if (delivery.message.buildId === ids.buildId) await delivery.reject();
      else await delivery.requeue();
    });
    try {
      const build = await waitForStatus(ids, 'FAILED');
      expect(build.reason).toMatch(/refused by a runner \(rejected\)/);
      expect(build.stages.flatMap((s) => s.jobs.map((j) => j.status))).toEqual(['SKIPPED', 'SKIPPED']);
      const log = collect<LogItem>(t.ws(), LOG, { id: ids.globalId });
      await log.done;
      expect(log.items).toEqual([]);
    } finally {
      await consumer.cancel();
    }
  });

  it('republishes a build job whose outbox row was never published', async () => {
    const ids = await submit();
    // As if the process died between commit and publish.
    await t.orm.em.fork().execute(
      `update outbox set published_at = null, created_at = now() - interval '1 minute'
         where id = (select id from outbox order by created_at desc limit 1)`,
      [],
    );
    const seen: string[] = [];
    const numbers = new Map<string, number>();
    const consumer = await t.broker.consume('build', ['default'], 10, async (delivery) => {
      seen.push(delivery.message.buildId);
      numbers.set(delivery.message.buildId, delivery.message.number);
      await delivery.ack();
    });
    try {
      expect(await t.app.maintenance.sweepOutbox()).toBe(1);
      await waitFor('the republished job to be delivered', () => seen.includes(ids.buildId));
      expect(seen.filter((id) => id === ids.buildId).length).toBeGreaterThanOrEqual(1);
      // The number travels beside the sealed job in the outbox row.
      const [row] = await t.orm.em
        .fork()
        .execute<{ number: number }[]>('select number from builds where id = ?', [ids.buildId]);
      expect(numbers.get(ids.buildId)).toBe(row!.number);
      expect(await t.app.maintenance.sweepOutbox()).toBe(0);
    } finally {
      await consumer.cancel();
    }
  });

  it('times out a running build whose runner went silent past its timeout', async () => {
    const ids = await submit();
    await t.broker.publish('event', passingRun(ids).slice(0, 2)); // started on runner r1, never heard of again
    await waitForStatus(ids, 'RUNNING');
    expect(await t.app.maintenance.checkLostRunners()).toEqual([]);
    await t.orm.em
      .fork()
      .execute(`update builds set started_at = now() - interval '2 hours' where id = ?`, [ids.buildId]);
    expect(await t.app.maintenance.checkLostRunners()).toEqual([ids.buildId]);
    const build = await waitForStatus(ids, 'TIMED_OUT');
    expect(build.reason).toMatch(/runner r1 stopped sending heartbeats/);
    expect(build.stages.flatMap((s) => s.jobs.map((j) => j.status))).toEqual(['TIMED_OUT', 'SKIPPED']);
  });

  it('refuses a subscription to a build the caller may not see, without revealing that it exists', async () => {
    const ids = await submit();
    const anonymous = collect(t.ws(null), LOG, { id: ids.globalId });
    await anonymous.done;
    const missing = collect(t.ws(null), LOG, {
      id: 'QnVpbGQ6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw',
    });
    await missing.done;
    expect(JSON.stringify(anonymous.errors)).toContain('no build with id');
    expect(JSON.stringify(anonymous.errors).replace(ids.globalId, 'X')).toBe(
      JSON.stringify(missing.errors).replace('QnVpbGQ6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw', 'X'),
    );
    const wrongToken = collect(t.ws('kiln_wrong'), LOG, { id: ids.globalId });
    await wrongToken.done;
    expect(JSON.stringify(wrongToken.errors)).toContain('UNAUTHENTICATED');
  });
});

/**
 * Who holds a build: leases, as the api enforces them on what runners report through the broker
 * (the runner's side is in runner/runner.test.ts). Reports of a run that does not hold the build
 * must change nothing, and each run that reports its start gets the answer that keeps the build
 * running once.
 */
import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlMessage, RunnerEvent } from '../../../runner/contract/messages.ts';
import { startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const MANIFEST = `driver: {type: os}
stages: [one]
jobs:
  - {stage: one, name: a, commands: [echo a]}
  - {stage: one, name: b, commands: [echo b]}
`;

type Ids = { buildId: string; jobs: string[] };
type Row = {
  status: string;
  attempt: number;
  lease: string | null;
  tags: string[];
  jobs: string[];
  lines: string[];
};

describe.runIf(available('postgres'))('leases: one run holds a build', () => {
  let t: TestApp;
  const controls: ControlMessage[] = [];
  beforeAll(async () => {
    t = await startTestApp();
    // Starts the app's consumers: the ingester stores what runners report.
    await t.listen();
    await t.broker.subscribe('control', (message) => controls.push(message));
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
    return {
      buildId: decodeGlobalID(build.id).id,
      jobs: build.stages.flatMap((s) => s.jobs.map((j) => decodeGlobalID(j.id).id)),
    };
  }

  const at = () => new Date().toISOString();
  /** A run's reports: started, job a with one line, then (when `finish`) job b and the end. */
  function run(ids: Ids, attempt: number, lease: string, opts: { waiting?: boolean; finish?: boolean } = {}) {
    const base = { buildId: ids.buildId, attempt, lease, at: at() };
    const events: RunnerEvent[] = [
      { type: 'build.started', runner: `runner-${lease}`, waiting: opts.waiting ?? false, ...base },
      { type: 'job.started', jobId: ids.jobs[0]!, ...base },
      { type: 'log.chunk', jobId: ids.jobs[0]!, seq: 1, firstLine: 1, lines: [`${lease} line`], ...base },
      { type: 'job.finished', jobId: ids.jobs[0]!, status: 'PASSED', exitCode: 0, ...base },
    ];
    if (opts.finish) {
      events.push(
        { type: 'job.started', jobId: ids.jobs[1]!, ...base },
        { type: 'job.finished', jobId: ids.jobs[1]!, status: 'PASSED', exitCode: 0, ...base },
        { type: 'build.finished', status: 'PASSED', lastSeq: 1, reason: null, ...base },
      );
    }
    return events;
  }

  async function row(ids: Ids): Promise<Row> {
    const [build] = await t.orm.em.fork().execute<Row[]>(
      `select status, attempt, lease,
         array(select name from build_tags where build_id = b.id order by name) as tags,
         array(select status from jobs where build_id = b.id order by position) as jobs,
         array(select content from log_chunks where build_id = b.id order by attempt, seq) as lines
       from builds b where id = ?`,
      [ids.buildId],
    );
    return build!;
  }

  const answerFor = (lease: string) =>
    waitFor(`the answer to ${lease}`, () => controls.find((c) => 'lease' in c && c.lease === lease));

  /** Waits until every report published so far is stored: a marker build's start comes back. */
  async function settled(): Promise<void> {
    const marker = await submit();
    const lease = `marker-${marker.buildId}`;
    await t.broker.publish('event', [
      {
        type: 'build.started',
        runner: 'marker',
        waiting: true,
        buildId: marker.buildId,
        attempt: 1,
        lease,
        at: at(),
      },
    ]);
    await answerFor(lease);
  }

  it('answers a second run with wait while the holder is alive, and keeps its reports out', async () => {
    const ids = await submit();
    await t.broker.publish('event', run(ids, 1, 'holder'));
    await t.broker.publish('event', run(ids, 2, 'second', { waiting: true, finish: true }));
    expect(await answerFor('second')).toMatchObject({ type: 'wait', buildId: ids.buildId });
    await settled();
    expect(await row(ids)).toMatchObject({
      status: 'RUNNING',
      attempt: 1,
      lease: 'holder',
      tags: [],
      jobs: ['PASSED', 'QUEUED'],
      lines: ['holder line'],
    });

    // The holder finishes; the second run, asking again as a new run, is told the build is over.
    await t.broker.publish('event', run(ids, 1, 'holder', { finish: true }).slice(4));
    await t.broker.publish('event', run(ids, 2, 'second-again', { waiting: true }).slice(0, 1));
    expect(await answerFor('second-again')).toMatchObject({ type: 'kill', buildId: ids.buildId });
    expect(await row(ids)).toMatchObject({ status: 'PASSED', attempt: 1, jobs: ['PASSED', 'PASSED'] });
  });

  it('lets the next run hold the build at once when the holder releases it', async () => {
    const ids = await submit();
    await t.broker.publish('event', run(ids, 1, 'leaving'));
    await t.broker.publish('event', [
      { type: 'build.released', buildId: ids.buildId, attempt: 1, lease: 'leaving', at: at() },
      ...run(ids, 2, 'taking', { waiting: true, finish: true }),
    ]);
    expect(await answerFor('taking')).toMatchObject({ type: 'go' });
    await waitFor('the build to pass', async () => (await row(ids)).status === 'PASSED');
    expect(await row(ids)).toMatchObject({
      attempt: 2,
      lease: 'taking',
      tags: ['orphaned'],
      jobs: ['PASSED', 'PASSED'],
      lines: ['leaving line', 'taking line'],
    });
  });

  it('renews a lease by heartbeat, and gives the build to the next run once it lapses', async () => {
    const ids = await submit();
    await t.broker.publish('event', run(ids, 1, 'quiet'));
    await settled();
    const em = t.orm.em.fork();
    await em.execute(`update builds set lease_seen_at = now() - interval '1 hour' where id = ?`, [
      ids.buildId,
    ]);
    await t.broker.publish('event', [
      {
        type: 'runner.heartbeat',
        runner: 'runner-quiet',
        queues: ['default'],
        concurrency: 1,
        running: [{ buildId: ids.buildId, attempt: 1, lease: 'quiet' }],
        at: at(),
      },
    ]);
    await t.broker.publish('event', run(ids, 2, 'early', { waiting: true }).slice(0, 1));
    expect(await answerFor('early')).toMatchObject({ type: 'wait' });

    // Silent for longer than a lease lasts: the runner died.
    await em.execute(`update builds set lease_seen_at = now() - interval '1 hour' where id = ?`, [
      ids.buildId,
    ]);
    await t.broker.publish('event', run(ids, 2, 'late', { waiting: true, finish: true }));
    expect(await answerFor('late')).toMatchObject({ type: 'go' });
    await waitFor('the build to pass', async () => (await row(ids)).status === 'PASSED');
    expect(await row(ids)).toMatchObject({ attempt: 2, lease: 'late', lines: ['quiet line', 'late line'] });
  });

  it('tells a run of an attempt already run to stop, even once its holder is gone', async () => {
    const ids = await submit();
    await t.broker.publish('event', run(ids, 1, 'first'));
    await settled();
    await t.orm.em
      .fork()
      .execute(`update builds set lease_seen_at = now() - interval '1 hour' where id = ?`, [ids.buildId]);
    // A second publish of the same job (attempt 1 again) must not rerun attempt 1 over its own log.
    await t.broker.publish('event', run(ids, 1, 'duplicate', { finish: true }));
    expect(await answerFor('duplicate')).toMatchObject({ type: 'kill', buildId: ids.buildId });
    await settled();
    expect(await row(ids)).toMatchObject({ status: 'RUNNING', lease: 'first', lines: ['first line'] });
  });

  it('keeps an event storage cannot take in dead_letters, without blocking those behind it', async () => {
    const raw = t.broker as unknown as {
      publishRaw(kind: 'event', key: string, body: string): Promise<void>;
    };
    const invalid = JSON.stringify({ type: 'log.chunk', buildId: 'not-a-build', lines: 'not a list' });
    await raw.publishRaw('event', 'log.chunk', invalid);
    await settled();
    const rows = await waitFor('the dead letter to be kept', async () => {
      const found = await t.orm.em
        .fork()
        .execute<{ kind: string; reason: string; body: string }[]>(
          'select kind, reason, body from dead_letters where body = ?',
          [invalid],
        );
      return found.length > 0 && found;
    });
    expect(rows).toEqual([{ kind: 'event', reason: 'invalid', body: invalid }]);
  });

  it('keeps who killed a running build as its reason, and stores the jobs the kill reached before they started SKIPPED', async () => {
    const ids = await submit();
    const base = { buildId: ids.buildId, attempt: 1, lease: 'killed', at: at() };
    await t.broker.publish('event', [
      { type: 'build.started', runner: 'runner-killed', waiting: false, ...base },
      { type: 'job.started', jobId: ids.jobs[0]!, ...base },
    ]);
    await waitFor('the build running', async () => (await row(ids)).jobs[0] === 'RUNNING');
    const killed = await t.gql<{ killBuild: { __typename: string } }>(
      'mutation ($id: ID!) { killBuild(input: { buildId: $id }) { __typename } }',
      { id: encodeGlobalID('Build', ids.buildId) },
    );
    expect(killed.data!.killBuild.__typename).toBe('KillBuildSuccess');
    // The runner stops job a and reports b, which it never started, KILLED, as it does.
    await t.broker.publish('event', [
      { type: 'job.finished', jobId: ids.jobs[0]!, status: 'KILLED', exitCode: null, ...base },
      { type: 'job.finished', jobId: ids.jobs[1]!, status: 'KILLED', exitCode: null, ...base },
      { type: 'build.finished', status: 'KILLED', lastSeq: 0, reason: 'the build was killed', ...base },
    ]);
    await settled();
    expect(await row(ids)).toMatchObject({ status: 'KILLED', jobs: ['KILLED', 'SKIPPED'] });
    const [build] = await t.orm.em.fork().execute<{ reason: string; started: (Date | null)[] }[]>(
      `select reason, array(select started_at from jobs where build_id = b.id order by position) as started
         from builds b where id = ?`,
      [ids.buildId],
    );
    expect(build!.reason).toBe('killed by admin');
    expect(build!.started[0]).not.toBeNull();
    expect(build!.started[1]).toBeNull();
  });
});

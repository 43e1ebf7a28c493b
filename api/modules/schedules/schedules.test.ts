/**
 * Schedules end to end on PostgreSQL: settings refused with the field named, times that agree with
 * node-schedule's, two serve apps on one database firing each slot of a two-second schedule exactly
 * once, a slot missed while no app ran fired once (late) by the app that comes back, onlyOnChanges
 * against a bare repository made here, pause and resume, and an owner who lost access.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import schedule from 'node-schedule';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { makeRemote, type Remote } from '../../../test/testkit/forge.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands: [echo scheduled]
`;

type Data = Record<string, unknown>;
interface BuildView {
  id: string;
  number: number;
  trigger: string;
  comment: string | null;
  cause: {
    kind: string;
    sha: string | null;
    scheduledFor: string | null;
    late: boolean;
    schedule: { id: string } | null;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** node-schedule's own next `count` invocations of `rule` in `tz` after `from`. */
function nodeScheduleRuns(rule: string, tz: string, from: Date, count: number): string[] {
  const runs: string[] = [];
  let start = from;
  for (let i = 0; i < count; i++) {
    const job = schedule.scheduleJob({ rule, tz, start: new Date(start.getTime() + 1) }, () => {});
    const next = new Date(job.nextInvocation()!.getTime());
    job.cancel();
    runs.push(next.toISOString());
    start = next;
  }
  return runs;
}

describe.runIf(available('postgres'))('schedules', () => {
  let a: TestApp;
  let b: TestApp | null = null;
  let alice: string;
  let bob: string;
  let dir: string;
  let remote: Remote;

  const gql = async (t: TestApp, query: string, variables: Data = {}, as = alice) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Data;
  };

  const CREATE = `mutation ($input: CreateScheduleInput!) { createSchedule(input: $input) {
    __typename
    ... on CreateScheduleSuccess { schedule { id name cron timezone enabled nextRuns(first: 5) problem } }
    ... on InputError { message path }
    ... on Error { message } } }`;

  async function create(input: Data, as = alice, t = a) {
    const data = await gql(t, CREATE, { input }, as);
    return data.createSchedule as {
      __typename: string;
      message?: string;
      path?: string;
      schedule: {
        id: string;
        timezone: string;
        enabled: boolean;
        nextRuns: string[];
        problem: string | null;
      };
    };
  }

  async function update(id: string, input: Data, as = alice) {
    const data = await gql(
      a,
      `mutation ($input: UpdateScheduleInput!) { updateSchedule(input: $input) {
        __typename ... on UpdateScheduleSuccess { schedule { enabled nextRuns(first: 3) problem } }
        ... on Error { message } } }`,
      { input: { id, ...input } },
      as,
    );
    return data.updateSchedule as { __typename: string; schedule: { enabled: boolean; nextRuns: string[] } };
  }

  async function builds(id: string, t = a): Promise<BuildView[]> {
    const data = await gql(
      t,
      `query ($id: ID!) { node(id: $id) { ... on Schedule { builds(first: 100) { edges { node {
        id number trigger comment cause { kind sha scheduledFor late schedule { id } } } } } } } }`,
      { id },
    );
    return (data.node as { builds: { edges: { node: BuildView }[] } }).builds.edges
      .map((e) => e.node)
      .sort((x, y) => x.number - y.number);
  }

  async function state(id: string) {
    const data = await gql(
      a,
      `query ($id: ID!) { node(id: $id) { ... on Schedule { enabled problem nextRuns(first: 2) lastRunAt
        firings(first: 20) { slot late state outcome } } } }`,
      { id },
    );
    return data.node as {
      enabled: boolean;
      problem: string | null;
      nextRuns: string[];
      lastRunAt: string | null;
      firings: { slot: string; late: boolean; state: string; outcome: string | null }[];
    };
  }

  /** The app fires what is due until `until` says yes (no ticker: the test decides when). */
  const fireUntil = <T>(what: string, until: () => Promise<T | null | false | undefined>, t = a) =>
    waitFor(
      what,
      async () => {
        await t.app.maintenance.fireSchedules();
        return until();
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-schedules-test-'));
    remote = await makeRemote(join(dir, 'remote'));
    await remote.commit({ '.kiln.yml': MANIFEST }, 'first');
    a = await startTestApp({ scheduleMinSeconds: 1 });
    alice = await signUpAndLogIn(a, 'alice');
    bob = await signUpAndLogIn(a, 'bob');
    await gql(a, 'mutation { createNamespace(input: { path: "team" }) { __typename } }');
  }, 60_000);

  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses bad settings with an InputError naming the field, and reads the default zone as UTC', async () => {
    const refused = async (input: Data) => {
      const r = await create({
        namespace: 'team',
        name: 'bad',
        manifest: MANIFEST,
        cron: '@daily',
        ...input,
      });
      expect(r.__typename).toBe('InputError');
      return { path: r.path, message: r.message };
    };
    expect(await refused({ cron: '* * * *' })).toEqual({
      path: 'input.cron',
      message: expect.stringMatching(/has 4 fields: give five .* or six/),
    });
    expect(await refused({ cron: '61 * * * *' })).toEqual({
      path: 'input.cron',
      message: expect.stringMatching(/got value 61 expected range 0-59/),
    });
    expect(await refused({ cron: '@fortnightly' })).toMatchObject({ path: 'input.cron' });
    expect(await refused({ timezone: 'Mars/Olympus' })).toEqual({
      path: 'input.timezone',
      message: expect.stringMatching(/Mars\/Olympus is not an IANA time zone/),
    });
    expect(await refused({ manifest: 'stages: [' })).toMatchObject({ path: 'input.manifest' });
    expect(await refused({ manifest: null })).toMatchObject({ path: 'input.manifest' });
    expect(await refused({ onlyOnChanges: true })).toMatchObject({ path: 'input.onlyOnChanges' });
    expect(await refused({ name: '' })).toMatchObject({ path: 'input.name' });

    const ok = await create({ namespace: 'team', name: 'nightly', manifest: MANIFEST, cron: '@daily' });
    expect(ok.__typename).toBe('CreateScheduleSuccess');
    expect(ok.schedule).toMatchObject({ timezone: 'UTC', enabled: true, problem: null });
    expect(await refused({ name: 'nightly' })).toMatchObject({ path: 'input.name' });
  });

  it('refuses expressions that fire more often than KILN_SCHEDULE_MIN_SECONDS', async () => {
    const strict = await startTestApp({ db: a.db, prefix: a.prefix, scheduleMinSeconds: 60 });
    try {
      const r = await create(
        { namespace: 'team', name: 'busy', manifest: MANIFEST, cron: '*/10 * * * * *' },
        alice,
        strict,
      );
      expect(r).toMatchObject({ __typename: 'InputError', path: 'input.cron' });
      expect(r.message).toMatch(/fires every 10 s .* at most every 60 s \(KILN_SCHEDULE_MIN_SECONDS\)/);
      // The shortest interval is what counts: twice a minute, 30 s apart, is too often.
      const minutely = await create(
        { namespace: 'team', name: 'minutely', manifest: MANIFEST, cron: '* * * * *' },
        alice,
        strict,
      );
      expect(minutely.__typename).toBe('CreateScheduleSuccess');
      const pair = await create(
        { namespace: 'team', name: 'pair', manifest: MANIFEST, cron: '0,30 * * * * *' },
        alice,
        strict,
      );
      expect(pair).toMatchObject({ __typename: 'InputError', path: 'input.cron' });
    } finally {
      await strict.stop();
    }
  });

  it('lists the next runs as node-schedule computes them, in the chosen zone, across daylight saving', async () => {
    for (const [cron, tz] of [
      ['0 3 * * *', 'America/New_York'],
      ['30 2 * * *', 'Europe/Berlin'],
      ['*/20 9-17 * * 1-5', 'Asia/Kolkata'],
      ['@weekly', 'UTC'],
    ] as const) {
      const before = new Date();
      const r = await create({
        namespace: 'team',
        name: `times ${cron} ${tz}`,
        manifest: MANIFEST,
        cron,
        timezone: tz,
      });
      expect(r.__typename).toBe('CreateScheduleSuccess');
      const rule = cron === '@weekly' ? '0 0 * * 0' : cron;
      expect(r.schedule.nextRuns).toEqual(nodeScheduleRuns(rule, tz, before, 5));
    }
  });

  it('previews the times of an expression before it is saved, or says what is wrong', async () => {
    const query = `query ($cron: String!, $tz: String) { scheduleTimes(cron: $cron, timezone: $tz, first: 3) {
      __typename ... on ScheduleTimesSuccess { times } ... on InputError { message path } } }`;
    const before = new Date();
    const ok = await gql(a, query, { cron: '15 8 * * 1-5', tz: 'Asia/Tokyo' });
    expect(ok.scheduleTimes).toEqual({
      __typename: 'ScheduleTimesSuccess',
      times: nodeScheduleRuns('15 8 * * 1-5', 'Asia/Tokyo', before, 3),
    });
    const bad = await gql(a, query, { cron: '15 8 * * 1-5', tz: 'Tokyo' });
    expect(bad.scheduleTimes).toMatchObject({ __typename: 'InputError', path: 'timezone' });
  });

  it('fires each slot exactly once with two apps on one database, and stops when paused', async () => {
    b = await startTestApp({ db: a.db, prefix: a.prefix, scheduleMinSeconds: 1 });
    // Both tickers run: each app claims what it can, the database decides.
    await a.listen();
    await b.listen();
    const r = await create({
      namespace: 'team',
      name: 'every two seconds',
      manifest: MANIFEST,
      cron: '*/2 * * * * *',
    });
    expect(r.__typename).toBe('CreateScheduleSuccess');
    const id = r.schedule.id;
    await sleep(10_500);
    expect((await update(id, { enabled: false })).schedule).toEqual({
      enabled: false,
      nextRuns: [],
      problem: null,
    });
    await sleep(500); // a firing that began before the pause settles
    const fired = await builds(id);
    const slots = fired.map((f) => Date.parse(f.cause.scheduledFor!));
    expect(fired.length).toBeGreaterThanOrEqual(4);
    // No slot twice, none skipped: consecutive two-second slots.
    expect(new Set(slots).size).toBe(slots.length);
    for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).toBe(2_000);
    expect(fired.every((f) => f.trigger === 'SCHEDULE' && f.cause.kind === 'SCHEDULE')).toBe(true);
    expect(fired.every((f) => f.cause.schedule?.id === id && !f.cause.late)).toBe(true);
    // Paused: nothing more fires.
    await sleep(3_000);
    expect((await builds(id)).length).toBe(fired.length);
    const s = await state(id);
    expect(s.firings.filter((f) => f.state === 'fired').length).toBe(fired.length);
    await b.stop();
    b = null;
    await a.app.jobs.scheduler.stop();
  }, 40_000);

  it('fires a slot missed while no app ran once, late, when an app comes back', async () => {
    const r = await create({ namespace: 'team', name: 'missed', manifest: MANIFEST, cron: '* * * * * *' });
    const id = r.schedule.id;
    // No ticker runs (the last test stopped it): the slots of the next 3.5 s are missed.
    await sleep(3_500);
    const back = await startTestApp({ db: a.db, prefix: a.prefix, scheduleMinSeconds: 1 });
    try {
      const firings = await back.app.maintenance.fireSchedules();
      const mine = firings.filter((f) => f.scheduleId === decodeGlobalID(id).id);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ state: 'fired', late: true });
      const [build] = await builds(id, back);
      expect(build!.cause.late).toBe(true);
      expect(build!.comment).toMatch(/late: due at .*, fired at /);
      // The slot fired is the latest one due, not the first one missed.
      expect(Date.now() - Date.parse(build!.cause.scheduledFor!)).toBeLessThan(2_000);
      await update(id, { enabled: false });
    } finally {
      await back.stop();
    }
  });

  it('does not fire the slots a paused schedule skipped when it is resumed', async () => {
    const r = await create({
      namespace: 'team',
      name: 'paused',
      manifest: MANIFEST,
      cron: '* * * * * *',
      enabled: false,
    });
    expect(r.schedule).toMatchObject({ enabled: false, nextRuns: [] });
    await sleep(2_100);
    const resumed = await update(r.schedule.id, { enabled: true });
    expect(Date.parse(resumed.schedule.nextRuns[0]!)).toBeGreaterThan(Date.now() - 1_000);
    await a.app.maintenance.fireSchedules();
    for (const f of (await state(r.schedule.id)).firings) expect(f.late).toBe(false);
    await update(r.schedule.id, { enabled: false });
  });

  it('with onlyOnChanges, skips a firing when the branch head was built and builds a new head', async () => {
    const repo = await gql(
      a,
      `mutation ($url: String!) { createRepository(input: { namespace: "team", cloneUrl: $url }) {
        ... on CreateRepositorySuccess { repository { id } } } }`,
      { url: remote.url },
    );
    const repositoryId = (repo.createRepository as { repository: { id: string } }).repository.id;
    const r = await create({
      namespace: 'team',
      name: 'on changes',
      repositoryId,
      cron: '* * * * * *',
      onlyOnChanges: true,
    });
    expect(r.__typename).toBe('CreateScheduleSuccess');
    const id = r.schedule.id;
    const first = await fireUntil('the first firing', async () => (await builds(id)).length === 1);
    expect(first).toBe(true);
    const [built] = await builds(id);
    const head = await remote.commit({ 'a.txt': 'a' }, 'second', 'main', false);
    expect(built!.cause.sha).not.toBe(head);
    await fireUntil('a skipped firing', async () =>
      (await state(id)).firings.some(
        (f) => f.state === 'skipped' && /which this schedule built/.test(f.outcome ?? ''),
      ),
    );
    expect((await builds(id)).length).toBe(1);
    // A new head builds.
    const pushed = await remote.commit({ 'b.txt': 'b' }, 'third');
    await fireUntil('the new head to build', async () => (await builds(id)).length === 2);
    const all = await builds(id);
    expect(all[1]!.cause).toMatchObject({ kind: 'SCHEDULE', sha: pushed });
    expect(all[1]!.comment).toMatch(/^on changes: \.kiln\.yml: third/);
    await update(id, { enabled: false });
  });

  it('stops a schedule whose owner lost access to the namespace, and says why', async () => {
    await gql(a, 'mutation { inviteCollaborator(input: { path: "team", username: "bob" }) { __typename } }');
    const invites = await gql(a, '{ viewer { invites { id } } }', {}, bob);
    const [invite] = (invites.viewer as { invites: { id: string }[] }).invites;
    await gql(a, `mutation { acceptInvite(input: { id: "${invite!.id}" }) { __typename } }`, {}, bob);
    const r = await create(
      { namespace: 'alice@team', name: "bob's", manifest: MANIFEST, cron: '* * * * * *' },
      bob,
    );
    expect(r.__typename).toBe('CreateScheduleSuccess');
    await fireUntil('a build of bob', async () => (await builds(r.schedule.id)).length >= 1);
    await gql(a, 'mutation { removeCollaborator(input: { path: "team", username: "bob" }) { __typename } }');
    const stopped = await fireUntil('the schedule to stop', async () => {
      const s = await state(r.schedule.id);
      return s.enabled ? null : s;
    });
    expect(stopped.problem).toBe('stopped: bob may no longer write namespace team');
    expect(stopped.nextRuns).toEqual([]);
    expect(stopped.firings[0]).toMatchObject({ state: 'failed', outcome: stopped.problem });
  });

  it("keeps a user's own schedules to that user", async () => {
    const mine = await create({ name: 'mine', manifest: MANIFEST, cron: '@hourly' });
    expect(mine.__typename).toBe('CreateScheduleSuccess');
    const own = await gql(a, '{ viewer { schedules { name } } }');
    expect((own.viewer as { schedules: { name: string }[] }).schedules.map((s) => s.name)).toEqual(['mine']);
    const theirs = await a.gql(`query ($id: ID!) { node(id: $id) { id } }`, { id: mine.schedule.id }, bob);
    expect(theirs.data?.node ?? null).toBeNull();
    const change = await a.gql(
      `mutation ($id: ID!) { updateSchedule(input: { id: $id, enabled: false }) { __typename } }`,
      { id: mine.schedule.id },
      bob,
    );
    const result = change.data?.updateSchedule as { __typename: string } | undefined;
    expect(result?.__typename).toBe('NotFoundError');
    const deleted = await gql(
      a,
      `mutation ($id: ID!) { deleteSchedule(input: { id: $id }) { __typename ... on DeleteScheduleSuccess { deletedId } } }`,
      { id: mine.schedule.id },
    );
    expect(deleted.deleteSchedule).toEqual({
      __typename: 'DeleteScheduleSuccess',
      deletedId: mine.schedule.id,
    });
  });
});

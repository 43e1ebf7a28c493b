import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';

const SUBMIT = `mutation ($input: SubmitBuildInput!) {
  submitBuild(input: $input) {
    __typename
    ... on SubmitBuildSuccess { build { id number status tags comment stages { name canFail jobs { id name stage status } } } }
    ... on ManifestError { message problems { path line column message } }
  }
}`;

const MANIFEST = `driver:
  type: os
stages: [test, build]
allow_failures: [test]
jobs:
  - stage: test
    name: unit
    commands:
      - echo testing
  - stage: build
    commands:
      - echo building
`;

type SubmitData = {
  submitBuild:
    | {
        __typename: 'SubmitBuildSuccess';
        build: {
          id: string;
          number: number;
          status: string;
          tags: string[];
          comment: string | null;
          stages: {
            name: string;
            canFail: boolean;
            jobs: { id: string; name: string; stage: string; status: string }[];
          }[];
        };
      }
    | {
        __typename: 'ManifestError';
        message: string;
        problems: { path: string; line: number; column: number }[];
      };
};

describe.runIf(available('postgres'))('builds over GraphQL', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function submit(manifest = MANIFEST, extra: Record<string, unknown> = {}) {
    const res = await t.gql<SubmitData>(SUBMIT, { input: { manifest, ...extra } });
    expect(res.errors).toBeUndefined();
    return res.data!.submitBuild;
  }

  it('refuses a wrong token with code UNAUTHENTICATED, and shows an anonymous caller no private build', async () => {
    const bad = await t.gql('{ builds { edges { node { id } } } }', {}, 'kiln_not_a_real_token');
    expect(bad.data).toBeUndefined();
    expect(bad.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await submit();
    const anonymous = await t.gql<{ builds: { edges: unknown[] }; viewer: null }>(
      '{ viewer { id } builds { edges { node { id } } } }',
      {},
      null,
    );
    expect(anonymous.data).toEqual({ viewer: null, builds: { edges: [] } });
    const submitAnonymously = await t.gql(SUBMIT, { input: { manifest: MANIFEST } }, null);
    expect(submitAnonymously.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const viewer = await t.gql<{ viewer: { username: string; isAdmin: boolean } }>(
      '{ viewer { username isAdmin } }',
    );
    expect(viewer.data?.viewer).toEqual({ username: 'admin', isAdmin: true });
  });

  it('returns every manifest problem with its path, line and column', async () => {
    const result = await submit(`driver:
  type: os
stages: [test]
jobs:
  - stage: tset
    commands: [echo hi]
  - stage: test
    comands: [echo hi]
`);
    expect(result.__typename).toBe('ManifestError');
    if (result.__typename !== 'ManifestError') return;
    expect(result.problems.map((p) => [p.path, p.line, p.column])).toEqual([
      ['jobs[0].stage', 5, 12],
      ['jobs[1].commands', 7, 5],
      ['jobs[1].comands', 8, 5],
    ]);
  });

  it('refuses bad tags as problems of the submission', async () => {
    const result = await submit(MANIFEST, { tags: ['ok', 'not ok'] });
    expect(result.__typename).toBe('ManifestError');
    if (result.__typename !== 'ManifestError') return;
    expect(result.problems).toEqual([expect.objectContaining({ path: 'tags[1]', line: null })]);
  });

  it('queues a valid build with its stages, jobs, tags and comment', async () => {
    const result = await submit(MANIFEST, { comment: 'first', tags: ['main', 'nightly'] });
    expect(result.__typename).toBe('SubmitBuildSuccess');
    if (result.__typename !== 'SubmitBuildSuccess') return;
    expect(result.build).toMatchObject({ status: 'QUEUED', comment: 'first', tags: ['main', 'nightly'] });
    expect(result.build.stages).toEqual([
      {
        name: 'test',
        canFail: true,
        jobs: [expect.objectContaining({ name: 'unit', stage: 'test', status: 'QUEUED' })],
      },
      {
        name: 'build',
        canFail: false,
        jobs: [expect.objectContaining({ name: 'build.1', stage: 'build', status: 'QUEUED' })],
      },
    ]);
    const fetched = await t.gql<{ build: { number: number }; node: { __typename: string } }>(
      'query ($id: ID!) { build(id: $id) { number } node(id: $id) { __typename } }',
      { id: result.build.id },
    );
    expect(fetched.data).toEqual({ build: { number: result.build.number }, node: { __typename: 'Build' } });
  });

  it('numbers concurrent submissions 1..n without a gap or a collision', async () => {
    const before = await t.gql<{ builds: { edges: { node: { number: number } }[] } }>(
      '{ builds(first: 1) { edges { node { number } } } }',
    );
    const start = before.data!.builds.edges[0]?.node.number ?? 0;
    const results = await Promise.all(Array.from({ length: 20 }, () => submit()));
    const numbers = results.map((r) => (r.__typename === 'SubmitBuildSuccess' ? r.build.number : -1));
    expect(numbers.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => start + i + 1));
  });

  it('pages through builds newest first and filters by tag and status', async () => {
    const all: number[] = [];
    let after: string | null = null;
    for (;;) {
      const page: {
        data?: {
          builds: {
            edges: { node: { number: number } }[];
            pageInfo: { hasNextPage: boolean; endCursor: string };
          };
        };
      } = await t.gql(
        'query ($after: String) { builds(first: 7, after: $after) { edges { node { number } } pageInfo { hasNextPage endCursor } } }',
        { after },
      );
      all.push(...page.data!.builds.edges.map((e) => e.node.number));
      if (!page.data!.builds.pageInfo.hasNextPage) break;
      after = page.data!.builds.pageInfo.endCursor;
    }
    expect(all).toEqual([...all].sort((a, b) => b - a));
    expect(new Set(all).size).toBe(all.length);
    const tagged = await t.gql<{ builds: { edges: { node: { tags: string[] } }[] } }>(
      '{ builds(tag: "nightly") { edges { node { tags } } } }',
    );
    expect(tagged.data!.builds.edges.map((e) => e.node.tags)).toEqual([['main', 'nightly']]);
    const passed = await t.gql<{ builds: { edges: unknown[] } }>(
      '{ builds(status: PASSED) { edges { cursor } } }',
    );
    expect(passed.data!.builds.edges).toEqual([]);
  });

  it('kills a queued build at once, its jobs skipped and its reason naming who, and says when a build does not exist', async () => {
    const result = await submit();
    if (result.__typename !== 'SubmitBuildSuccess') throw new Error('submit failed');
    const kill = `mutation ($id: ID!) { killBuild(input: { buildId: $id }) {
      __typename ... on KillBuildSuccess { build { status reason stages { jobs { status startedAt } } } }
      ... on Error { message } } }`;
    const killed = await t.gql<{
      killBuild: {
        __typename: string;
        build: {
          status: string;
          reason: string;
          stages: { jobs: { status: string; startedAt: string | null }[] }[];
        };
      };
    }>(kill, { id: result.build.id });
    expect(killed.data!.killBuild.build.status).toBe('KILLED');
    expect(killed.data!.killBuild.build.reason).toMatch(/^killed by \S+ before a runner took it$/);
    // None of its jobs started: they never ran, so they are SKIPPED, not KILLED.
    expect(killed.data!.killBuild.build.stages.flatMap((s) => s.jobs)).toEqual([
      { status: 'SKIPPED', startedAt: null },
      { status: 'SKIPPED', startedAt: null },
    ]);
    const missing = await t.gql<{ killBuild: { __typename: string } }>(kill, { id: 'QnVpbGQ6bm9wZQ' });
    expect(missing.data!.killBuild.__typename).toBe('NotFoundError');
  });

  it('refuses an after cursor that is not one, on Build.log and buildLog, instead of replaying the log', async () => {
    const result = await submit();
    if (result.__typename !== 'SubmitBuildSuccess') throw new Error('submit failed');
    const bad = ['garbage', Buffer.from('log:x:1').toString('base64url'), ''];
    for (const after of bad) {
      const read = await t.gql<{ build: unknown }>(
        'query ($id: ID!, $after: String) { build(id: $id) { log(after: $after) { edges { cursor } } } }',
        { id: result.build.id, after },
      );
      expect(read.errors?.[0]?.extensions?.code).toBe('BAD_CURSOR');
      expect(read.errors?.[0]?.message).toContain('not a log cursor');
    }
    await t.listen();
    const client = t.ws();
    const sub = collect<unknown>(
      client,
      'subscription ($id: ID!, $after: String) { buildLog(buildId: $id, after: $after) { cursor } }',
      { id: result.build.id, after: 'garbage' },
    );
    await sub.done;
    expect(sub.items).toEqual([]);
    expect(JSON.stringify(sub.errors)).toContain('not a log cursor');
    // A real cursor still works: the empty log of a queued build reads back empty.
    const good = await t.gql<{ build: { log: { edges: unknown[] } } }>(
      'query ($id: ID!, $after: String) { build(id: $id) { log(after: $after) { edges { cursor } } } }',
      { id: result.build.id, after: Buffer.from('log:1:5').toString('base64url') },
    );
    expect(good.errors).toBeUndefined();
    expect(good.data!.build.log.edges).toEqual([]);
  });
});

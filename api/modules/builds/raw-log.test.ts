/**
 * What a build page's readable address, raw log and editor check stand on: a namespace's build by its
 * number, the stored log as plain text (to those who may see the build), and a manifest's problems
 * without a submit.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands: ['for i in $(seq 1 500); do echo "row $i"; done']
`;

describe.runIf(available('postgres'))('raw logs, builds by number, manifest checks', () => {
  let t: TestApp;
  let url: string;
  let alice: string;
  let bob: string;
  let dir: string;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  let build: { id: string; number: number };

  const gql = async (query: string, variables: Record<string, unknown> = {}, as: string | null = alice) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-raw-test-'));
    t = await startTestApp();
    url = await t.listen();
    await mkdir(join(dir, 'w'));
    runner = await startTestRunner(t, join(dir, 'w'));
    alice = await signUpAndLogIn(t, 'alice');
    bob = await signUpAndLogIn(t, 'bob');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const data = await gql(
      `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) { ... on SubmitBuildSuccess { build { id number } } } }`,
      { m: MANIFEST },
    );
    build = (data.submitBuild as { build: { id: string; number: number } }).build;
    await waitFor('the build to pass', async () => {
      const b = await gql('query ($id: ID!) { build(id: $id) { status } }', { id: build.id });
      return (b.build as { status: string }).status === 'PASSED';
    });
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the stored log as plain text, in order, to those who may see the build', async () => {
    const res = await fetch(`${url}/builds/${encodeURIComponent(build.id)}/raw`, {
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const lines = (await res.text()).split('\n');
    const rows = lines.filter((l) => /^row \d+$/.test(l));
    expect(rows).toEqual(Array.from({ length: 500 }, (_, i) => `row ${i + 1}`));
    const hidden = await fetch(`${url}/builds/${encodeURIComponent(build.id)}/raw`, {
      headers: { authorization: `Bearer ${bob}` },
    });
    expect(hidden.status).toBe(404);
    expect((await fetch(`${url}/builds/${encodeURIComponent(build.id)}/raw`)).status).toBe(404);
  });

  it("finds a namespace's build by its number, and only for those who may see it", async () => {
    const mine = await gql('query ($n: Int!) { namespace(path: "team") { build(number: $n) { id } } }', {
      n: build.number,
    });
    expect(mine.namespace).toEqual({ build: { id: build.id } });
    const none = await gql('{ namespace(path: "team") { build(number: 999) { id } } }');
    expect(none.namespace).toEqual({ build: null });
    const theirs = await gql(
      'query ($n: Int!) { namespace(path: "alice@team") { build(number: $n) { id } } }',
      { n: build.number },
      bob,
    );
    expect(theirs.namespace ?? null).toBeNull();
  });

  it("answers a manifest's problems as submit would, without submitting", async () => {
    const problems = async (manifest: string) =>
      (
        await gql('query ($m: String!) { validateManifest(manifest: $m) { path line column message } }', {
          m: manifest,
        })
      ).validateManifest as { path: string; line: number | null; message: string }[];
    expect(await problems(MANIFEST)).toEqual([]);
    const bad = await problems(
      'driver: {type: os}\nstages: [test]\njobs:\n  - stage: tset\n    commands: [x]\n',
    );
    expect(bad).toEqual([
      expect.objectContaining({
        path: 'jobs[0].stage',
        line: 4,
        message: 'stage "tset" is not in stages; expected one of: test',
      }),
    ]);
    const count = await gql('{ builds(first: 100) { edges { node { id } } } }');
    expect((count.builds as { edges: unknown[] }).edges).toHaveLength(1);
  });
});

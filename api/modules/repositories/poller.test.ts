/**
 * Polling, against a bare repository made here: the first poll only records heads, a later push
 * builds its head (once, however many commits it brought), a head a forge event built is not built
 * again, a remote that hangs is stopped and shown as the repository's problem, and a repository set
 * to build every commit builds each commit of a push, polled or posted, oldest first.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import { deliverSigned, githubPush, makeRemote, type Remote } from '../../../test/testkit/forge.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: show
    commands: [git rev-parse HEAD]
`;

interface Cause {
  kind: string;
  ref: string;
  sha: string;
}

describe.runIf(available('postgres'))('polling repositories', () => {
  let t: TestApp;
  let dir: string;
  let token: string;
  let remote: Remote;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  let silent: Server;
  let repo: { id: string; webhookUrl: string; secret: string };

  const gql = async (query: string, variables: Record<string, unknown> = {}) => {
    const res = await t.gql(query, variables, token);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  async function connect(input: Record<string, unknown>) {
    const data = await gql(
      `mutation ($input: CreateRepositoryInput!) { createRepository(input: $input) {
        __typename ... on CreateRepositorySuccess { webhookSecret repository { id webhookUrl } }
        ... on Error { message } } }`,
      { input: { namespace: 'team', ...input } },
    );
    const created = data.createRepository as {
      webhookSecret: string;
      repository: { id: string; webhookUrl: string };
      message?: string;
    };
    if (!created.repository) throw new Error(JSON.stringify(created));
    return {
      id: created.repository.id,
      webhookUrl: created.repository.webhookUrl,
      secret: created.webhookSecret,
    };
  }

  async function causes(id: string): Promise<Cause[]> {
    const data = await gql(
      `query ($id: ID!) { node(id: $id) { ... on Repository { builds(first: 100) { edges { node { cause { kind ref sha } } } } } } }`,
      { id },
    );
    return (data.node as { builds: { edges: { node: { cause: Cause } }[] } }).builds.edges.map(
      (e) => e.node.cause,
    );
  }

  async function state(id: string): Promise<{ problem: string | null; lastCheckedAt: string | null }> {
    const data = await gql(
      `query ($id: ID!) { node(id: $id) { ... on Repository { problem lastCheckedAt } } }`,
      { id },
    );
    return data.node as { problem: string | null; lastCheckedAt: string | null };
  }

  /** Polls until the repository's next check has run (its interval is a second), and returns it. */
  async function nextCheck(id: string) {
    return waitFor(
      `a poll of ${id}`,
      async () =>
        (await t.app.maintenance.pollRepositories()).find((r) => r.repositoryId === decodeGlobalID(id).id),
      { intervalMs: 100 },
    );
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-poller-test-'));
    remote = await makeRemote(join(dir, 'remote'));
    await remote.commit({ '.kiln.yml': MANIFEST }, 'first');
    await remote.commit({ 'feature.txt': 'x' }, 'feature work', 'feature');
    t = await startTestApp({ pollMinSeconds: 1, pollTimeoutMs: 1_500 });
    await t.listen();
    // The checks are made by the test (maintenance.pollRepositories), not by the timer, so that each
    // one's result is seen.
    await t.app.jobs.repositoryPoller.stop();
    await mkdir(join(dir, 'workspaces'));
    runner = await startTestRunner(t, join(dir, 'workspaces'));
    token = await signUpAndLogIn(t, 'poll');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    // A "forge" that takes connections and never answers: a check of it hangs.
    silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    repo = await connect({ cloneUrl: remote.url, forge: 'GITHUB', pollInterval: 1 });
  }, 60_000);

  afterAll(async () => {
    silent?.closeAllConnections();
    silent?.close();
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('records the heads on the first poll and builds nothing', async () => {
    const first = await nextCheck(repo.id);
    expect(first.moved.sort()).toEqual(['refs/heads/feature', 'refs/heads/main']);
    expect(first.builds).toBe(0);
    expect(first.problem).toBeNull();
    expect(await causes(repo.id)).toEqual([]);
    expect((await state(repo.id)).lastCheckedAt).not.toBeNull();
  });

  it('builds the head of a push once, however many commits it brought', async () => {
    await remote.commit({ 'a.txt': 'a' }, 'one', 'main', false);
    const head = await remote.commit({ 'b.txt': 'b' }, 'two', 'main');
    const check = await nextCheck(repo.id);
    expect(check).toMatchObject({ moved: ['refs/heads/main'], builds: 1, problem: null });
    expect(await causes(repo.id)).toEqual([{ kind: 'PUSH', ref: 'refs/heads/main', sha: head }]);
    // Nothing moved since: the next check builds nothing.
    expect(await nextCheck(repo.id)).toMatchObject({ moved: [], builds: 0 });
  });

  it('does not build again a head that a forge event built', async () => {
    const head = await remote.commit({ 'c.txt': 'c' }, 'three', 'main');
    const sent = await deliverSigned(repo.webhookUrl, 'github', 'push', githubPush(head), repo.secret);
    expect(sent.status).toBe(202);
    await waitFor('the push to be built', async () => (await causes(repo.id)).some((c) => c.sha === head));
    expect(await nextCheck(repo.id)).toMatchObject({ moved: [], builds: 0 });
    expect((await causes(repo.id)).filter((c) => c.sha === head)).toHaveLength(1);
  });

  it('checks a polled repository at once when a forge event comes, building what else moved', async () => {
    const other = await remote.commit({ 'f.txt': 'f' }, 'feature moves', 'feature');
    const head = await remote.commit({ 'd.txt': 'd' }, 'four', 'main');
    const sent = await deliverSigned(repo.webhookUrl, 'github', 'push', githubPush(head), repo.secret);
    expect(sent.status).toBe(202);
    // No poll is asked for (the timer is stopped): the event's check builds the feature branch.
    await waitFor('the feature branch to be built', async () =>
      (await causes(repo.id)).some((c) => c.sha === other),
    );
    const built = await causes(repo.id);
    expect(built.filter((c) => c.sha === other)).toEqual([
      { kind: 'PUSH', ref: 'refs/heads/feature', sha: other },
    ]);
    expect(built.filter((c) => c.sha === head)).toHaveLength(1);
  });

  it('stops a check that hangs, shows why, and clears it once a check goes well', async () => {
    const port = (silent.address() as AddressInfo).port;
    const hanging = await connect({
      cloneUrl: `http://127.0.0.1:${port}/app.git`,
      name: 'hanging',
      defaultBranch: 'main',
      pollInterval: 1,
    });
    const check = await nextCheck(hanging.id);
    expect(check.problem).toMatch(/took longer than 2 s and was stopped/);
    expect((await state(hanging.id)).problem).toBe(check.problem);
    await gql(
      `mutation ($id: ID!, $url: String!) { updateRepository(input: { id: $id, cloneUrl: $url }) { __typename } }`,
      {
        id: hanging.id,
        url: remote.url,
      },
    );
    const good = await nextCheck(hanging.id);
    expect(good.problem).toBeNull();
    expect((await state(hanging.id)).problem).toBeNull();
  });

  it('with buildEveryCommit, builds each commit a push added, oldest first, but not [skip ci] ones', async () => {
    const every = await connect({
      cloneUrl: remote.url,
      name: 'every',
      pollInterval: 1,
      buildEveryCommit: true,
    });
    const numbered = async () => {
      const data = await gql(
        `query ($id: ID!) { node(id: $id) { ... on Repository { builds(first: 100) { edges { node { number cause { sha message } } } } } } }`,
        { id: every.id },
      );
      return (
        data.node as {
          builds: { edges: { node: { number: number; cause: { sha: string; message: string } } }[] };
        }
      ).builds.edges
        .map((e) => e.node)
        .sort((a, b) => a.number - b.number)
        .map((b) => [b.cause.sha, b.cause.message]);
    };
    expect(await nextCheck(every.id)).toMatchObject({ builds: 0 });
    // Polled: three commits in one push, the middle one skipped.
    const one = await remote.commit({ 'e1.txt': '1' }, 'every one', 'main', false);
    await remote.commit({ 'e2.txt': '2' }, 'every two [skip ci]', 'main', false);
    const three = await remote.commit({ 'e3.txt': '3' }, 'every three', 'main');
    expect(await nextCheck(every.id)).toMatchObject({ moved: ['refs/heads/main'], builds: 2, problem: null });
    expect(await numbered()).toEqual([
      [one, 'every one'],
      [three, 'every three'],
    ]);
    // A forge's push names its `before`: the commits between it and `after` build, in order.
    const four = await remote.commit({ 'e4.txt': '4' }, 'every four', 'main', false);
    const five = await remote.commit({ 'e5.txt': '5' }, 'every five', 'main');
    const payload = githubPush(five, 'refs/heads/main', 'every five');
    payload.before = three;
    const sent = await deliverSigned(every.webhookUrl, 'github', 'push', payload, every.secret);
    expect(sent.status).toBe(202);
    await waitFor('both commits of the push to be built', async () => (await numbered()).length === 4);
    expect((await numbered()).slice(2)).toEqual([
      [four, 'every four'],
      [five, 'every five'],
    ]);
    // Without the option, a push with a `before` builds its head alone.
    const head = await connect({ cloneUrl: remote.url, name: 'headonly' });
    const six = await remote.commit({ 'e6.txt': '6' }, 'every six', 'main', false);
    const seven = await remote.commit({ 'e7.txt': '7' }, 'every seven', 'main');
    const headPush = githubPush(seven, 'refs/heads/main', 'every seven');
    headPush.before = five;
    expect((await deliverSigned(head.webhookUrl, 'github', 'push', headPush, head.secret)).status).toBe(202);
    await waitFor('the head to be built', async () => (await causes(head.id)).length === 1);
    expect((await causes(head.id)).map((c) => c.sha)).toEqual([seven]);
    expect((await causes(head.id)).map((c) => c.sha)).not.toContain(six);
  });
});

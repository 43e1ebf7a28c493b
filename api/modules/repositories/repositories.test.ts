/**
 * Repositories and forge events end to end: a bare repository made here (file://), real forge
 * payloads signed as each forge signs them, posted to the repository's webhook URL over HTTP, and a
 * real runner (os driver) that checks the commit out and runs its manifests.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import {
  type ForgeName,
  giteaPush,
  githubExample,
  githubPullRequest,
  githubPush,
  gitlabPush,
  makeRemote,
  type Remote,
  serveGitHttp,
  signedHeaders,
} from '../../../test/testkit/forge.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const SECRET = 'kiln-repo-s3cret-7c1d';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: show
    commands:
      - git rev-parse HEAD
      - cat hello.txt
      - 'if [ -n "$SECRET" ]; then echo secret-given; else echo secret-withheld; fi'
`;

const SECOND = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: second
    commands:
      - echo second manifest
`;

type Data = Record<string, unknown>;
interface Cause {
  kind: string;
  ref: string | null;
  sha: string | null;
  author: string | null;
  message: string | null;
  pullRequest: number | null;
  manifestPath: string | null;
  user: { username: string } | null;
  repository: { name: string } | null;
}
interface BuildView {
  id: string;
  status: string;
  trigger: string;
  cause: Cause;
  log: { edges: { node: { lines: string[] } }[] };
}
interface EventView {
  id: string;
  deliveryId: string | null;
  event: string;
  verified: boolean;
  outcome: string;
  builds: { id: string }[];
}

describe.runIf(available('postgres'))('repositories and forge events', () => {
  let t: TestApp;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  let dir: string;
  let token: string;
  let url: string;
  let remote: Remote;
  let first: string;
  let second: string;
  const repos: Record<string, { id: string; secret: string; webhookUrl: string }> = {};

  const gql = async (query: string, variables: Data = {}, as = token) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Data;
  };

  const CREATE = `mutation ($input: CreateRepositoryInput!) { createRepository(input: $input) {
    __typename
    ... on CreateRepositorySuccess { webhookSecret repository { id name defaultBranch webhookUrl manifestPaths forge } }
    ... on InputError { message path }
    ... on Error { message } } }`;

  async function connect(name: string, forge: string) {
    const data = await gql(CREATE, { input: { namespace: 'team', cloneUrl: remote.url, forge, name } });
    const created = data.createRepository as {
      webhookSecret: string;
      repository: { id: string; webhookUrl: string };
    };
    repos[name] = {
      id: created.repository.id,
      secret: created.webhookSecret,
      webhookUrl: created.repository.webhookUrl,
    };
  }

  /** Posts `body` to the repository's webhook URL as `forge` would, signed with `secret`. */
  async function deliver(
    repo: string,
    forge: ForgeName,
    event: string,
    body: unknown,
    opts: { delivery?: string; secret?: string; headers?: Record<string, string> } = {},
  ) {
    const text = JSON.stringify(body);
    const headers = {
      ...signedHeaders(
        forge,
        event,
        text,
        opts.secret ?? repos[repo]!.secret,
        opts.delivery ?? crypto.randomUUID(),
      ),
      ...opts.headers,
    };
    const response = await fetch(repos[repo]!.webhookUrl, { method: 'POST', headers, body: text });
    return {
      status: response.status,
      body: (await response.json()) as { event?: string; error?: string; outcome?: string },
    };
  }

  async function events(repo: string): Promise<EventView[]> {
    const data = await gql(
      `query ($id: ID!) { node(id: $id) { ... on Repository { events(first: 100) {
        edges { node { id deliveryId event verified outcome builds { id } } } } } } }`,
      { id: repos[repo]!.id },
    );
    return (data.node as { events: { edges: { node: EventView }[] } }).events.edges.map((e) => e.node);
  }

  /** The event once worked on (its outcome no longer `received` or `working`). */
  async function settled(repo: string, eventId: string): Promise<EventView> {
    return waitFor(`forge event ${eventId} to be worked on`, async () => {
      const event = (await events(repo)).find((e) => e.id === eventId);
      return event && !['received', 'working'].includes(event.outcome) ? event : null;
    });
  }

  async function finished(id: string): Promise<BuildView> {
    return waitFor(
      `build ${id} to finish`,
      async () => {
        const data = await gql(
          `query ($id: ID!) { build(id: $id) { id status trigger
            cause { kind ref sha author message pullRequest manifestPath user { username } repository { name } }
            log(first: 1000) { edges { node { lines } } } } }`,
          { id },
        );
        const build = data.build as BuildView;
        return ['PASSED', 'FAILED', 'KILLED', 'TIMED_OUT', 'PASSED_WITH_FAILURES'].includes(build.status)
          ? build
          : null;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
  }

  const lines = (b: BuildView) => b.log.edges.flatMap((e) => e.node.lines);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-repositories-test-'));
    remote = await makeRemote(join(dir, 'remote'));
    await mkdir(join(dir, 'workspaces'));
    first = await remote.commit(
      { '.kiln.yml': MANIFEST, '.kiln/second.yml': SECOND, 'hello.txt': 'hello from the first commit\n' },
      'First commit\n\nWith a body.',
    );
    second = await remote.commit({ 'hello.txt': 'hello from the second commit\n' }, 'Second commit');
    t = await startTestApp();
    url = await t.listen();
    runner = await startTestRunner(t, join(dir, 'workspaces'));
    token = await signUpAndLogIn(t, 'alice');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    await gql(
      `mutation ($v: String!) { createVariable(input: { namespace: "team", key: "SECRET", value: $v, masked: true }) { __typename } }`,
      { v: SECRET },
    );
    await connect('hub', 'GITHUB');
    await connect('lab', 'GITLAB');
    await connect('tea', 'GITEA');
    await connect('jo', 'FORGEJO');
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('connects a repository: default branch asked of the remote, the secret shown once, a webhook URL of its own', async () => {
    const data = await gql(CREATE, { input: { namespace: 'team', cloneUrl: remote.url } });
    const created = data.createRepository as {
      __typename: string;
      webhookSecret: string;
      repository: {
        name: string;
        defaultBranch: string;
        webhookUrl: string;
        manifestPaths: string[];
        forge: string;
      };
    };
    expect(created.__typename).toBe('CreateRepositorySuccess');
    expect(created.repository).toMatchObject({
      name: 'origin',
      defaultBranch: 'main',
      manifestPaths: ['.kiln.yml', '.kiln/*.yml'],
      forge: 'GENERIC',
    });
    expect(created.webhookSecret).toMatch(/^[0-9a-f]{48}$/);
    expect(created.repository.webhookUrl).toMatch(new RegExp(`^${url}/hooks/github/[0-9a-f-]{36}$`));
    const listed = await gql('{ namespace(path: "team") { repositories { name } } }');
    expect(
      (listed.namespace as { repositories: { name: string }[] }).repositories.map((r) => r.name),
    ).toEqual(['hub', 'jo', 'lab', 'origin', 'tea']);
    // The secret is never read back.
    const again = await t.gql(`query ($id: ID!) { node(id: $id) { ... on Repository { webhookSecret } } }`, {
      id: repos.hub!.id,
    });
    expect(again.errors?.[0]?.message).toMatch(/webhookSecret/);
  });

  it('refuses bad input with an InputError naming the field', async () => {
    const refuse = async (input: Data) =>
      (await gql(CREATE, { input: { namespace: 'team', cloneUrl: remote.url, ...input } }))
        .createRepository as {
        __typename: string;
        path: string;
        message: string;
      };
    expect(await refuse({ cloneUrl: 'ftp://example.com/x.git' })).toMatchObject({
      __typename: 'InputError',
      path: 'input.cloneUrl',
    });
    expect(await refuse({ name: 'hub' })).toMatchObject({ __typename: 'InputError', path: 'input.name' });
    const poll = await refuse({ name: 'polled', pollInterval: 5 });
    expect(poll).toMatchObject({ __typename: 'InputError', path: 'input.pollInterval' });
    expect(poll.message).toMatch(/KILN_POLL_MIN_SECONDS/);
    expect(await refuse({ name: 'nowhere', cloneUrl: `file://${join(dir, 'missing.git')}` })).toMatchObject({
      __typename: 'InputError',
      path: 'input.cloneUrl',
    });
  });

  it('lets only those who may write the namespace connect a repository', async () => {
    const bob = await signUpAndLogIn(t, 'bob');
    const res = await t.gql(
      CREATE,
      { input: { namespace: 'alice@team', cloneUrl: remote.url, name: 'sneaky' } },
      bob,
    );
    const result = res.data?.createRepository as { __typename: string } | undefined;
    expect(result?.__typename ?? res.errors?.[0]?.extensions?.code).toMatch(/NotFoundError|FORBIDDEN/);
  });

  it('builds a GitHub push at exactly its commit, one build per manifest, with its cause', async () => {
    const sent = await deliver('hub', 'github', 'push', githubPush(first));
    expect(sent.status).toBe(202);
    const event = await settled('hub', sent.body.event!);
    expect(event).toMatchObject({ event: 'push', verified: true, outcome: 'started 2 builds' });
    const builds = await Promise.all(event.builds.map((b) => finished(b.id)));
    const main = builds.find((b) => b.cause.manifestPath === '.kiln.yml')!;
    expect(builds.map((b) => b.cause.manifestPath).sort()).toEqual(['.kiln.yml', '.kiln/second.yml']);
    expect(main.status, lines(main).join('\n')).toBe('PASSED');
    expect(main.trigger).toBe('PUSH');
    expect(main.cause).toMatchObject({
      kind: 'PUSH',
      ref: 'refs/heads/main',
      sha: first,
      author: 'Codertocat <21031067+Codertocat@users.noreply.github.com>',
      message: 'Initial commit',
      user: null,
      repository: { name: 'hub' },
    });
    // The head has moved on to the second commit: the build still has the first, with its .git.
    const log = lines(main);
    expect(log).toContain(first);
    expect(log).toContain('hello from the first commit');
    expect(log).toContain('secret-given');
  });

  it('fetches and checks out over HTTP as a forge serves it (git http-backend)', async () => {
    const server = await serveGitHttp(dirname(remote.bare));
    try {
      const data = await gql(CREATE, {
        input: { namespace: 'team', cloneUrl: server.url('origin.git'), forge: 'GITHUB', name: 'http' },
      });
      const created = data.createRepository as {
        webhookSecret: string;
        repository: { id: string; webhookUrl: string; defaultBranch: string };
      };
      expect(created.repository.defaultBranch).toBe('main');
      repos.http = {
        id: created.repository.id,
        secret: created.webhookSecret,
        webhookUrl: created.repository.webhookUrl,
      };
      const sent = await deliver('http', 'github', 'push', githubPush(second));
      expect(sent.status).toBe(202);
      const event = await settled('http', sent.body.event!);
      expect(event.outcome).toBe('started 2 builds');
      const build = (await Promise.all(event.builds.map((b) => finished(b.id)))).find(
        (b) => b.cause.manifestPath === '.kiln.yml',
      )!;
      expect(build.status, lines(build).join('\n')).toBe('PASSED');
      expect(lines(build)).toContain(second);
      expect(lines(build)).toContain('hello from the second commit');
      // The server's ls-remote and fetch, and the runner's checkout, all went over HTTP.
      const uploads = server.requests.filter((r) => r.startsWith('POST /origin.git/git-upload-pack'));
      expect(uploads.length).toBeGreaterThanOrEqual(2);
    } finally {
      await server.close();
    }
  });

  it('refuses a bad or missing signature with 401 and records it', async () => {
    const bad = await deliver('hub', 'github', 'push', githubPush(first), { secret: 'not-the-secret' });
    expect(bad.status).toBe(401);
    expect(bad.body.error).toMatch(/bad signature in X-Hub-Signature-256/);
    const missing = await deliver('hub', 'github', 'push', githubPush(first), {
      headers: { 'x-hub-signature-256': '' },
    });
    expect(missing.status).toBe(401);
    const refused = (await events('hub')).filter((e) => !e.verified);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(refused[0]!.outcome).toMatch(/^refused: /);
    expect(refused.every((e) => e.builds.length === 0)).toBe(true);
  });

  it('answers 404 for an unknown repository or forge and 413 past 25 MiB', async () => {
    const body = JSON.stringify(githubPush(first));
    const unknown = await fetch(`${url}/hooks/github/00000000-0000-0000-0000-000000000000`, {
      method: 'POST',
      headers: signedHeaders('github', 'push', body, 'x', 'd1'),
      body,
    });
    expect(unknown.status).toBe(404);
    const wrongForge = await fetch(repos.hub!.webhookUrl.replace('/github/', '/gitlab/'), {
      method: 'POST',
      headers: signedHeaders('gitlab', 'Push Hook', body, repos.hub!.secret, 'd2'),
      body,
    });
    expect(wrongForge.status).toBe(404);
    const huge = Buffer.alloc(25 * 1024 * 1024 + 1, 0x20);
    const tooLarge = await fetch(repos.hub!.webhookUrl, {
      method: 'POST',
      headers: signedHeaders('github', 'push', huge.toString(), repos.hub!.secret, 'd3'),
      body: huge,
    });
    expect(tooLarge.status).toBe(413);
  });

  it('starts nothing for a delivery id it has seen, and records the duplicate', async () => {
    const delivery = crypto.randomUUID();
    const once = await deliver('hub', 'github', 'push', githubPush(second), { delivery });
    expect(once.status).toBe(202);
    const original = await settled('hub', once.body.event!);
    expect(original.outcome).toBe('started 2 builds');
    const twice = await deliver('hub', 'github', 'push', githubPush(second), { delivery });
    expect(twice.status).toBe(200);
    expect(twice.body.outcome).toBe('duplicate delivery');
    const same = (await events('hub')).filter((e) => e.deliveryId === delivery);
    expect(same.map((e) => e.outcome).sort()).toEqual(['duplicate delivery', 'started 2 builds']);
    expect(same.flatMap((e) => e.builds)).toHaveLength(2);
  });

  it('ignores a deleted tag, [skip ci], and answers a ping', async () => {
    const deleted = await deliver('hub', 'github', 'push', githubExample('push', 1));
    expect((await settled('hub', deleted.body.event!)).outcome).toBe('ignored: tag deleted');
    const skipped = await deliver(
      'hub',
      'github',
      'push',
      githubPush(second, 'refs/heads/main', 'docs only [skip ci]'),
    );
    expect((await settled('hub', skipped.body.event!)).outcome).toBe(
      'ignored: [skip ci] in the commit message',
    );
    const ping = await deliver('hub', 'github', 'ping', githubExample('ping', 0));
    const pinged = await settled('hub', ping.body.event!);
    expect(pinged).toMatchObject({ outcome: 'ping: the webhook works', builds: [] });
  });

  it('builds a pull request from a fork without the namespace secrets, and says so in its log', async () => {
    await remote.setRef('refs/pull/7/head', second);
    const sent = await deliver('hub', 'github', 'pull_request', githubPullRequest(second, 7, { fork: true }));
    const event = await settled('hub', sent.body.event!);
    expect(event.outcome).toBe('started 2 builds');
    const builds = await Promise.all(event.builds.map((b) => finished(b.id)));
    const main = builds.find((b) => b.cause.manifestPath === '.kiln.yml')!;
    expect(main.trigger).toBe('PULL');
    expect(main.cause).toMatchObject({ kind: 'PULL', ref: 'refs/pull/7/head', sha: second, pullRequest: 7 });
    const log = lines(main);
    expect(log).toContain('hello from the second commit');
    expect(log).toContain('secret-withheld');
    expect(log.some((l) => /fork: masked variables, SSH keys and objects are withheld/.test(l))).toBe(true);
    expect(log.join('\n')).not.toContain(SECRET);

    // A repository that allows it gives a fork's build the secrets (masked in its log, as ever).
    await gql(
      'mutation ($id: ID!) { updateRepository(input: { id: $id, allowForkSecrets: true }) { __typename } }',
      {
        id: repos.hub!.id,
      },
    );
    const allowed = await deliver(
      'hub',
      'github',
      'pull_request',
      githubPullRequest(second, 7, { fork: true }),
    );
    const trusted = await settled('hub', allowed.body.event!);
    const trustedBuild = (await Promise.all(trusted.builds.map((b) => finished(b.id)))).find(
      (b) => b.cause.manifestPath === '.kiln.yml',
    )!;
    expect(lines(trustedBuild)).toContain('secret-given');
    expect(lines(trustedBuild).some((l) => /are withheld/.test(l))).toBe(false);
    await gql(
      'mutation ($id: ID!) { updateRepository(input: { id: $id, allowForkSecrets: false }) { __typename } }',
      {
        id: repos.hub!.id,
      },
    );
  });

  it('takes GitLab, Gitea and Forgejo pushes, each verified its own way', async () => {
    const deliveries = [
      await deliver('lab', 'gitlab', 'Push Hook', gitlabPush(first)),
      await deliver('tea', 'gitea', 'push', giteaPush(first)),
      await deliver('jo', 'forgejo', 'push', giteaPush(first)),
    ];
    expect(deliveries.map((d) => d.status)).toEqual([202, 202, 202]);
    const [lab, tea, jo] = await Promise.all([
      settled('lab', deliveries[0]!.body.event!),
      settled('tea', deliveries[1]!.body.event!),
      settled('jo', deliveries[2]!.body.event!),
    ]);
    for (const event of [lab!, tea!, jo!]) expect(event.outcome).toBe('started 2 builds');
    const labBuild = await finished(lab!.builds[0]!.id);
    expect(labBuild.cause).toMatchObject({
      kind: 'PUSH',
      sha: first,
      author: 'GitLab dev user <gitlabdev@example.com>',
    });
    const teaBuild = await finished(tea!.builds[0]!.id);
    expect(teaBuild.cause).toMatchObject({
      sha: first,
      author: 'Gitea <someone@gitea.io>',
      message: 'Webhooks Yay!',
    });
    // A wrong GitLab token, and a Gitea signature made with another secret, are refused.
    expect((await deliver('lab', 'gitlab', 'Push Hook', gitlabPush(first), { secret: 'wrong' })).status).toBe(
      401,
    );
    expect((await deliver('tea', 'gitea', 'push', giteaPush(first), { secret: 'wrong' })).status).toBe(401);
  });

  it('works on an event that a replica stored but never worked on (it stopped after answering)', async () => {
    const sent = await deliver('hub', 'github', 'push', githubPush(first));
    const done = await settled('hub', sent.body.event!);
    // As the event would be had serve stopped between its answer and its work, a minute ago.
    const { id } = decodeGlobalID(sent.body.event!);
    await t.orm.em
      .fork()
      .execute(
        `update forge_events set outcome = 'received', build_ids = '[]', received_at = now() - interval '1 minute' where id = ?`,
        [id],
      );
    expect(await t.app.services.forgeEvents.workLeftOver()).toBe(1);
    const again = (await events('hub')).find((e) => e.id === sent.body.event)!;
    expect(again.outcome).toBe('started 2 builds');
    expect(again.builds).toHaveLength(2);
    expect(again.builds).not.toEqual(done.builds);
    expect(await t.app.services.forgeEvents.workLeftOver()).toBe(0);
  });

  it('builds the default branch head when triggered by a person, and replays a stored event', async () => {
    const triggered = await gql(
      `mutation ($id: ID!) { triggerRepository(input: { repositoryId: $id }) {
        __typename ... on TriggerRepositorySuccess { builds { id } } ... on Error { message } } }`,
      { id: repos.hub!.id },
    );
    const builds = (triggered.triggerRepository as { builds: { id: string }[] }).builds;
    expect(builds).toHaveLength(2);
    const build = (await Promise.all(builds.map((b) => finished(b.id)))).find(
      (b) => b.cause.manifestPath === '.kiln.yml',
    )!;
    expect(build.cause).toMatchObject({
      kind: 'MANUAL',
      ref: 'refs/heads/main',
      sha: second,
      author: 'Ada Lovelace <ada@example.com>',
      message: 'Second commit',
      user: { username: 'alice' },
    });
    expect(build.trigger).toBe('MANUAL');

    const pushed = (await events('hub')).find((e) => e.outcome === 'started 2 builds' && e.event === 'push')!;
    const replayed = await gql(
      `mutation ($id: ID!) { replayForgeEvent(input: { id: $id }) {
        __typename ... on ReplayForgeEventSuccess { event { id outcome builds { id } } } } }`,
      { id: pushed.id },
    );
    const event = (replayed.replayForgeEvent as { event: EventView }).event;
    expect(event.id).not.toBe(pushed.id);
    expect(event.outcome).toBe('started 2 builds');
    expect(event.builds.map((b) => b.id)).not.toEqual(pushed.builds.map((b) => b.id));
  });

  it('builds only the branches its filters let through; tags and pull requests are not filtered', async () => {
    const filter = (input: Record<string, unknown>) =>
      gql(
        `mutation ($input: UpdateRepositoryInput!) { updateRepository(input: $input) {
          __typename ... on UpdateRepositorySuccess { repository { includeBranches excludeBranches } } } }`,
        { input: { id: repos.hub!.id, ...input } },
      );
    const set = await filter({ includeBranches: ['main', 'release/*'], excludeBranches: ['release/old*'] });
    expect(set.updateRepository).toMatchObject({
      repository: { includeBranches: ['main', 'release/*'], excludeBranches: ['release/old*'] },
    });
    const outcome = async (ref: string) => {
      const sent = await deliver('hub', 'github', 'push', githubPush(second, ref));
      return (await settled('hub', sent.body.event!)).outcome;
    };
    await remote.setRef('refs/heads/release/1', second);
    expect(await outcome('refs/heads/feature')).toBe(
      'ignored: branch feature matches none of main, release/*',
    );
    expect(await outcome('refs/heads/release/old-1')).toBe(
      'ignored: branch release/old-1 is excluded by release/old*',
    );
    expect(await outcome('refs/heads/release/1')).toBe('started 2 builds');
    expect(await outcome('refs/tags/v9')).toBe('started 2 builds');
    const refused = await t.gql(
      `mutation ($id: ID!) { updateRepository(input: { id: $id, excludeBranches: ["a b"] }) {
        __typename ... on InputError { path } } }`,
      { id: repos.hub!.id },
      token,
    );
    expect(refused.data?.updateRepository).toEqual({
      __typename: 'InputError',
      path: 'input.excludeBranches[0]',
    });
    await filter({ includeBranches: [], excludeBranches: [] });
  });
});

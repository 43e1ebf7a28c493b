/**
 * Repositories behind an ssh clone URL, served by a private OpenSSH server on loopback that lets in
 * one key: the server fetches with the namespace's key named by the repository (ls-remote for the
 * default branch, the mirror's fetch), the checkout job gets that key and the build's own jobs of a
 * fork's pull request never see it.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import { deliverSigned, githubPullRequest, makeRemote, type Remote } from '../../../test/testkit/forge.ts';
import { available } from '../../../test/testkit/services.ts';
import { type Sshd, startSshd } from '../../../test/testkit/sshd.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: show
    commands:
      - git rev-parse HEAD
      - cat hello.txt
      - 'echo "ssh dir: $(ls -A "$HOME/.ssh" 2>/dev/null | tr "\\n" " ")"'
`;

type Data = Record<string, unknown>;
interface BuildView {
  status: string;
  cause: { kind: string; sha: string | null };
  log: { edges: { node: { lines: string[] } }[] };
}

describe.runIf(available('postgres') && available('sshd'))('repositories over ssh', () => {
  let t: TestApp;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  let sshd: Sshd;
  let dir: string;
  let token: string;
  let remote: Remote;
  let head: string;

  const gql = async (query: string, variables: Data = {}) => {
    const res = await t.gql(query, variables, token);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Data;
  };

  const CREATE = `mutation ($input: CreateRepositoryInput!) { createRepository(input: $input) {
    __typename
    ... on CreateRepositorySuccess { webhookSecret repository { id defaultBranch sshKey webhookUrl } }
    ... on InputError { message path } } }`;

  async function finished(id: string): Promise<BuildView> {
    return waitFor(
      `build ${id} to finish`,
      async () => {
        const data = await gql(
          `query ($id: ID!) { build(id: $id) { status cause { kind sha } log(first: 1000) { edges { node { lines } } } } }`,
          { id },
        );
        const build = data.build as BuildView;
        return ['PASSED', 'FAILED', 'KILLED', 'TIMED_OUT'].includes(build.status) ? build : null;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
  }
  const lines = (b: BuildView) => b.log.edges.flatMap((e) => e.node.lines);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-test-'));
    sshd = await startSshd(join(dir, 'sshd'));
    remote = await makeRemote(join(dir, 'remote'));
    head = await remote.commit({ '.kiln.yml': MANIFEST, 'hello.txt': 'hello over ssh\n' }, 'Over ssh');
    await remote.setRef('refs/pull/3/head', head);
    t = await startTestApp({ pollMinSeconds: 1 });
    await t.listen();
    await mkdir(join(dir, 'workspaces'));
    runner = await startTestRunner(t, join(dir, 'workspaces'));
    token = await signUpAndLogIn(t, 'sshuser');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const key = await gql(
      `mutation ($key: String!) { createKey(input: { namespace: "team", name: "deploy", privateKey: $key }) { __typename } }`,
      { key: sshd.clientKey },
    );
    expect(key.createKey).toEqual({ __typename: 'CreateKeySuccess' });
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses an ssh clone URL without a key of the namespace, saying which field', async () => {
    const none = await gql(CREATE, { input: { namespace: 'team', cloneUrl: sshd.url(remote.bare) } });
    expect(none.createRepository).toMatchObject({ __typename: 'InputError', path: 'input.sshKey' });
    expect((none.createRepository as { message: string }).message).toMatch(/fetched over ssh: give sshKey/);
    const unknown = await gql(CREATE, {
      input: { namespace: 'team', cloneUrl: sshd.url(remote.bare), sshKey: 'nope' },
    });
    expect(unknown.createRepository).toMatchObject({
      __typename: 'InputError',
      path: 'input.sshKey',
      message: 'the namespace has no SSH key named nope',
    });
  });

  it('connects with the key (asking the remote its default branch), builds and checks out over ssh', async () => {
    const created = await gql(CREATE, {
      input: { namespace: 'team', cloneUrl: sshd.url(remote.bare), sshKey: 'deploy', forge: 'GITHUB' },
    });
    const repo = (
      created.createRepository as {
        webhookSecret: string;
        repository: { id: string; defaultBranch: string; sshKey: string; webhookUrl: string };
      }
    ).repository;
    expect(repo).toMatchObject({ defaultBranch: 'main', sshKey: 'deploy' });
    const secret = (created.createRepository as { webhookSecret: string }).webhookSecret;

    const triggered = await gql(
      `mutation ($id: ID!) { triggerRepository(input: { repositoryId: $id }) {
        __typename ... on TriggerRepositorySuccess { builds { id } } ... on Error { message } } }`,
      { id: repo.id },
    );
    const [build] = (triggered.triggerRepository as { builds: { id: string }[] }).builds;
    const done = await finished(build!.id);
    expect(done.status).toBe('PASSED');
    expect(done.cause).toEqual({ kind: 'MANUAL', sha: head });
    const trusted = lines(done);
    expect(trusted).toContain(head);
    expect(trusted).toContain('hello over ssh');
    // The checkout's key is gone once the checkout is done; the namespace's own keys are placed.
    expect(trusted.find((l) => l.startsWith('ssh dir:'))).toMatch(
      /^ssh dir: (config deploy|deploy config) $/,
    );

    // A fork's pull request gets no keys, but is still checked out with the repository's key.
    const sent = await deliverSigned(
      repo.webhookUrl,
      'github',
      'pull_request',
      githubPullRequest(head, 3, { fork: true }),
      secret,
    );
    expect(sent.status).toBe(202);
    const fork = await waitFor('the fork build', async () => {
      const data = await gql(
        `query ($id: ID!) { node(id: $id) { ... on Repository { builds(first: 10) { edges { node { id cause { kind } } } } } } }`,
        { id: repo.id },
      );
      const edges = (data.node as { builds: { edges: { node: { id: string; cause: { kind: string } } }[] } })
        .builds.edges;
      return edges.find((e) => e.node.cause.kind === 'PULL')?.node.id ?? null;
    });
    const forked = await finished(fork);
    expect(forked.status).toBe('PASSED');
    const forkLines = lines(forked);
    expect(forkLines).toContain('hello over ssh');
    expect(forkLines.some((l) => /withheld from this build/.test(l))).toBe(true);
    expect(forkLines.find((l) => l.startsWith('ssh dir:'))).toBe('ssh dir: ');
    // The key's lines never reach a log.
    const body = sshd.clientKey.split('\n').find((l) => l.length > 20 && !l.startsWith('-----'))!;
    expect([...trusted, ...forkLines].some((l) => l.includes(body))).toBe(false);
  });

  it('says why when the server refuses the key, as the repository problem of a poll', async () => {
    await gql(
      `mutation ($key: String!) { createKey(input: { namespace: "team", name: "stranger", privateKey: $key }) { __typename } }`,
      { key: (await startKeyOnly(join(dir, 'stranger'))).privateKey },
    );
    const created = await gql(CREATE, {
      input: {
        namespace: 'team',
        name: 'refused',
        cloneUrl: sshd.url(remote.bare),
        sshKey: 'stranger',
        defaultBranch: 'main',
        pollInterval: 1,
      },
    });
    const id = (created.createRepository as { repository: { id: string } }).repository.id;
    const check = await waitFor('a poll of the refused repository', async () =>
      (await t.app.maintenance.pollRepositories()).find((r) => r.problem !== null),
    );
    expect(check.problem).toMatch(/Permission denied/);
    const data = await gql(`query ($id: ID!) { node(id: $id) { ... on Repository { problem } } }`, { id });
    expect((data.node as { problem: string }).problem).toMatch(/Permission denied/);
  });
});

/** A key pair the private sshd does not let in. */
async function startKeyOnly(path: string): Promise<{ privateKey: string }> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { readFile } = await import('node:fs/promises');
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  return { privateKey: await readFile(path, 'utf8') };
}

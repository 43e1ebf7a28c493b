/**
 * Commit statuses, against a local HTTP server standing in for GitHub's and GitLab's APIs: what it
 * records is what Kiln sent (path, token, state, context, link), as the build goes from queued to
 * its end; a forge that fails is tried again.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import {
  deliverSigned,
  githubPush,
  gitlabPush,
  makeRemote,
  type Remote,
} from '../../../test/testkit/forge.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';
import { forgeState } from './statuses.ts';

const manifest = (command: string) => `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: run
    commands: ['${command}']
`;

interface Recorded {
  path: string;
  method: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, string>;
}

describe('forge states', () => {
  it('maps build statuses as each forge names them', () => {
    expect(
      ['QUEUED', 'RUNNING', 'PASSED', 'PASSED_WITH_FAILURES', 'FAILED', 'KILLED', 'TIMED_OUT'].map((s) =>
        forgeState('GITHUB', s as never),
      ),
    ).toEqual(['pending', 'pending', 'success', 'success', 'failure', 'error', 'error']);
    expect(
      ['QUEUED', 'RUNNING', 'PASSED', 'FAILED', 'KILLED', 'TIMED_OUT'].map((s) =>
        forgeState('GITLAB', s as never),
      ),
    ).toEqual(['pending', 'running', 'success', 'failed', 'canceled', 'canceled']);
  });
});

describe.runIf(available('postgres'))('the forge API: webhooks and commit statuses', () => {
  let t: TestApp;
  let dir: string;
  let token: string;
  let remote: Remote;
  let forge: Server;
  let forgeUrl: string;
  const recorded: Recorded[] = [];
  /** Answers to give before the forge takes statuses again (a forge having a bad minute). */
  let failures = 0;

  const gql = async (query: string, variables: Record<string, unknown> = {}) => {
    const res = await t.gql(query, variables, token);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  async function connect(name: string, input: Record<string, unknown>) {
    const data = await gql(
      `mutation ($input: CreateRepositoryInput!) { createRepository(input: $input) {
        ... on CreateRepositorySuccess { webhookSecret repository { id webhookUrl webhookInstalled problem } }
        ... on Error { message } } }`,
      {
        input: {
          namespace: 'team',
          cloneUrl: remote.url,
          name,
          forgeApiUrl: forgeUrl,
          forgeToken: `token-${name}`,
          ...input,
        },
      },
    );
    const created = data.createRepository as {
      webhookSecret: string;
      repository: { id: string; webhookUrl: string; webhookInstalled: boolean; problem: string | null };
    };
    return { secret: created.webhookSecret, ...created.repository };
  }

  /** Posts a push of `sha` and returns the one build it started. */
  async function push(repo: { secret: string; webhookUrl: string }, kind: 'github' | 'gitlab', sha: string) {
    const payload = kind === 'github' ? githubPush(sha) : gitlabPush(sha);
    const event = kind === 'github' ? 'push' : 'Push Hook';
    const sent = await deliverSigned(repo.webhookUrl, kind, event, payload, repo.secret);
    const eventId = ((await sent.json()) as { event: string }).event;
    return waitFor(`the builds of event ${eventId}`, async () => {
      const data = await gql(
        `query ($id: ID!) { node(id: $id) { ... on ForgeEvent { outcome builds { id number } } } }`,
        {
          id: eventId,
        },
      );
      const node = data.node as { outcome: string; builds: { id: string; number: number }[] };
      return node.builds.length > 0 ? node.builds[0]! : null;
    });
  }

  async function build(id: string) {
    const data = await gql(`query ($id: ID!) { build(id: $id) { status forgeStatus } }`, { id });
    return data.build as { status: string; forgeStatus: string | null };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-statuses-test-'));
    remote = await makeRemote(join(dir, 'remote'));
    forge = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on('end', () => {
        if (failures > 0) {
          failures--;
          res.writeHead(502).end('bad gateway');
          return;
        }
        recorded.push({
          path: req.url ?? '',
          method: req.method ?? '',
          headers: req.headers,
          body: text ? (JSON.parse(text) as Record<string, string>) : {},
        });
        if (req.method === 'DELETE') {
          res.writeHead(204).end();
          return;
        }
        // A new hook gets an id, as the forges give one.
        const answer = req.method === 'POST' && req.url?.endsWith('/hooks') ? '{"id":4242}' : '{}';
        res.writeHead(201, { 'content-type': 'application/json' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => forge.listen(0, '127.0.0.1', resolve));
    forgeUrl = `http://127.0.0.1:${(forge.address() as AddressInfo).port}`;
    t = await startTestApp();
    await t.listen();
    // Reports are made by the test (maintenance.reportStatuses), so each one's moment is known.
    await t.app.jobs.commitStatuses.stop();
    token = await signUpAndLogIn(t, 'statuses');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    await mkdir(join(dir, 'workspaces'));
  }, 60_000);

  afterAll(async () => {
    forge?.closeAllConnections();
    forge?.close();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('installs the webhook on the forge when a repository is connected with a token, and removes it with it', async () => {
    const repo = await connect('hooked', {
      forge: 'GITEA',
      forgeRepository: 'acme/hooked',
      defaultBranch: 'main',
    });
    expect(repo).toMatchObject({ webhookInstalled: true, problem: null });
    expect(recorded.at(-1)).toMatchObject({
      method: 'POST',
      path: '/repos/acme/hooked/hooks',
      headers: { authorization: 'token token-hooked' },
      body: {
        type: 'gitea',
        active: true,
        events: ['push', 'pull_request'],
        config: { url: repo.webhookUrl, content_type: 'json', secret: repo.secret },
      },
    });
    await gql('mutation ($id: ID!) { deleteRepository(input: { id: $id }) { __typename } }', { id: repo.id });
    expect(recorded.at(-1)).toMatchObject({ method: 'DELETE', path: '/repos/acme/hooked/hooks/4242' });
  });

  it('keeps a repository whose hook the forge refused, and says why', async () => {
    failures = 1;
    const repo = await connect('refused', {
      forge: 'GITHUB',
      forgeRepository: 'acme/refused',
      defaultBranch: 'main',
    });
    expect(repo.webhookInstalled).toBe(false);
    expect(repo.problem).toMatch(/^could not install the webhook on the forge \(HTTP 502: bad gateway\)/);
  });

  it('reports a GitHub build pending while queued and running, then success or failure, with a link', async () => {
    const passing = await remote.commit({ '.kiln/app.yml': manifest('true') }, 'passes');
    const repo = await connect('hub', { forge: 'GITHUB', forgeRepository: 'acme/app' });
    const queued = await push(repo, 'github', passing);
    expect(await t.app.maintenance.reportStatuses()).toBe(1);
    expect(recorded.at(-1)).toMatchObject({
      path: `/repos/acme/app/statuses/${passing}`,
      headers: { authorization: 'Bearer token-hub' },
      body: {
        state: 'pending',
        context: 'kiln/app',
        description: `Build #${queued.number} queued`,
        target_url: `${await t.listen()}/builds/${decodeGlobalID(queued.id).id}`,
      },
    });
    // Nothing changed: nothing is sent again.
    expect(await t.app.maintenance.reportStatuses()).toBe(0);
    const runner = await startTestRunner(t, join(dir, 'workspaces'));
    try {
      await waitFor('the build to pass', async () => (await build(queued.id)).status === 'PASSED');
      expect(await t.app.maintenance.reportStatuses()).toBe(1);
      expect(recorded.at(-1)!.body).toMatchObject({
        state: 'success',
        description: `Build #${queued.number} passed`,
      });
      expect((await build(queued.id)).forgeStatus).toBe('reported success to github as kiln/app');

      const failing = await remote.commit({ '.kiln/app.yml': manifest('false') }, 'fails');
      const failed = await push(repo, 'github', failing);
      await waitFor('the build to fail', async () => (await build(failed.id)).status === 'FAILED');
      await t.app.maintenance.reportStatuses();
      expect(recorded.at(-1)).toMatchObject({
        path: `/repos/acme/app/statuses/${failing}`,
        body: { state: 'failure' },
      });
    } finally {
      await runner.stop();
    }
  });

  it('reports to GitLab by project path with its token and its own states, and tries again after a failure', async () => {
    const sha = await remote.commit({ '.kiln/app.yml': manifest('true'), 'x.txt': 'x' }, 'for gitlab');
    const repo = await connect('lab', { forge: 'GITLAB', forgeRepository: 'group/sub/app' });
    const queued = await push(repo, 'gitlab', sha);
    failures = 1;
    expect(await t.app.maintenance.reportStatuses()).toBe(0);
    expect((await build(queued.id)).forgeStatus).toMatch(
      /^reporting pending failed \(HTTP 502: bad gateway\); try 2 in 5 s$/,
    );
    // Not before its time: a report that failed waits for its backoff.
    expect(await t.app.maintenance.reportStatuses()).toBe(0);
    await t.orm.em
      .fork()
      .execute('update builds set forge_report_next_at = now() where id = ?', [decodeGlobalID(queued.id).id]);
    expect(await t.app.maintenance.reportStatuses()).toBe(1);
    expect(recorded.at(-1)).toMatchObject({
      path: `/projects/group%2Fsub%2Fapp/statuses/${sha}`,
      headers: { 'private-token': 'token-lab' },
      body: { state: 'pending', name: 'kiln/app' },
    });
  });
});

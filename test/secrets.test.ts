/**
 * Secrets end to end (issue 3's "done when"): a masked variable and an SSH key, stored through the
 * API, reach a build run by a real runner (os driver, in-process broker), and their values appear in
 * no GraphQL response, nowhere in a full `pg_dump --data-only` of the database, and in neither the
 * streamed nor the stored log, even when the job prints the secret whole, inside other text, and
 * split across two writes.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBroker } from '../runner/broker/memory/memory-broker.ts';
import { runnerBaseEnv } from '../runner/config.ts';
import { createDrivers } from '../runner/drivers/registry.ts';
import type { Logger } from '../runner/executor.ts';
import { createRunner, type Runner } from '../runner/runner.ts';
import { collect, signUpAndLogIn, startTestApp, type TestApp } from './testkit/app.ts';
import { available, ensureTestImage } from './testkit/services.ts';
import { waitFor } from './testkit/wait.ts';

const run = promisify(execFile);
const silent: Logger = { info() {}, warn() {}, error() {} };
const SECRET = 'kiln-s3cret-4f9a1c77';

type Res = { data?: Record<string, unknown> | null; errors?: unknown[] };
type Chunk = { lines: string[]; job: { name: string } | null };

/** A real ed25519 key when ssh-keygen is there; its base64 lines are what must never be logged. */
async function privateKey(dir: string): Promise<string> {
  try {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-test', '-f', join(dir, 'id')]);
    return await readFile(join(dir, 'id'), 'utf8');
  } catch {
    return [
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
      'QyNTUxOQAAACBmYWtlLWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5AAAAmAAAAAAA',
      '-----END OPENSSH PRIVATE KEY-----',
      '',
    ].join('\n');
  }
}

describe.runIf(available('postgres'))('secrets in builds', () => {
  let t: TestApp;
  let runner: Runner;
  let dir: string;
  let token: string;
  let key: string;
  /** Every GraphQL response of this file. */
  const responses: unknown[] = [];
  const gql = async (query: string, variables: Record<string, unknown> = {}) => {
    const res = (await t.gql(query, variables, token)) as Res;
    responses.push(res);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data!;
  };
  /** The key's secret lines: everything but the BEGIN/END markers. */
  const keyLines = () => key.split('\n').filter((line) => line.length >= 6 && !line.startsWith('-----'));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-secrets-test-'));
    key = await privateKey(dir);
    const work = join(dir, 'work');
    await mkdir(work);
    t = await startTestApp();
    await t.listen();
    if (!(t.broker instanceof MemoryBroker)) throw new Error('expected the in-process broker');
    runner = createRunner({
      broker: t.broker.connect(),
      name: 'secrets-runner',
      queues: ['default'],
      concurrency: 1,
      drivers: createDrivers(['os', 'docker'], { baseEnv: runnerBaseEnv(), workspaceDir: work }),
      logger: silent,
      heartbeatMs: 1000,
    });
    await runner.start();
    token = await signUpAndLogIn(t, 'alice');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const variable = await gql(
      `mutation ($v: String!) { createVariable(input: { namespace: "team", key: "SECRET", value: $v, masked: true }) {
        __typename } }`,
      { v: SECRET },
    );
    expect(variable.createVariable).toEqual({ __typename: 'CreateVariableSuccess' });
    const created = await gql(
      `mutation ($k: String!) { createKey(input: { name: "deploy", privateKey: $k, config: "Host git.example.com\\n  User git" }) {
        __typename } }`,
      { k: key },
    );
    expect(created.createKey).toEqual({ __typename: 'CreateKeySuccess' });
  });

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Submits a build in `team`, follows its log live to the end, then reads the stored log. */
  async function build(commands: string[], more: { driver?: string; next?: string[] } = {}) {
    const job = (name: string, lines: string[]) => [
      '  - stage: s',
      `    name: ${name}`,
      '    commands:',
      ...lines.map((c) => `      - ${JSON.stringify(c)}`),
    ];
    const manifest = [
      `driver: ${more.driver ?? '{type: os}'}`,
      'stages: [s]',
      'jobs:',
      ...job('job', commands),
      ...(more.next ? job('next', more.next) : []),
      '',
    ].join('\n');
    const submitted = await gql(
      `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) {
        __typename ... on SubmitBuildSuccess { build { id } } ... on Error { message } } }`,
      { m: manifest },
    );
    const id = (submitted.submitBuild as { build?: { id: string } }).build?.id;
    if (!id) throw new Error(JSON.stringify(submitted));
    const live = collect<{ buildLog: Chunk }>(
      t.ws(token),
      'subscription ($id: ID!) { buildLog(buildId: $id) { lines job { name } } }',
      { id },
    );
    await live.done;
    responses.push(live.items, live.errors);
    expect(live.errors).toEqual([]);
    const streamed = live.items.flatMap((item) => item.buildLog.lines);
    // The ingester stores chunks apart from the live fan-out: wait until all of them are stored.
    const { status, stored } = await waitFor(`build ${id} to be finished with its log stored`, async () => {
      const data = await gql(
        'query ($id: ID!) { build(id: $id) { status log(first: 1000) { edges { node { lines } } } } }',
        { id },
      );
      const b = data.build as { status: string; log: { edges: { node: { lines: string[] } }[] } };
      const stored = b.log.edges.flatMap((edge) => edge.node.lines);
      const done = stored.length >= streamed.length && b.status !== 'RUNNING' && b.status !== 'QUEUED';
      return done && { status: b.status, stored };
    });
    return { status, streamed, stored };
  }

  it('masks a masked variable in the log, whole and split across writes, and keeps it out of the API and the database', async () => {
    const { status, streamed, stored } = await build([
      'echo "token=$SECRET!"',
      'A=$(printf %s "$SECRET" | cut -c1-7); B=$(printf %s "$SECRET" | cut -c8-); printf %s "$A"; sleep 0.1; printf "%s\\n" "$B"',
      'echo "$SECRET" >&2',
      'echo done',
    ]);
    expect(status).toBe('PASSED');
    for (const log of [streamed, stored]) {
      expect(log).toContain('token=xxxxxx!');
      expect(log.filter((line) => line === 'xxxxxx')).toHaveLength(2);
      expect(log).toContain('done');
      expect(log.join('\n')).not.toContain(SECRET);
    }
    const listed = await gql('{ namespace(path: "team") { variables { key value masked } } }');
    expect(listed.namespace).toEqual({ variables: [{ key: 'SECRET', value: null, masked: true }] });

    expect(JSON.stringify(responses)).not.toContain(SECRET);
    const { stdout: dump } = await run('pg_dump', ['--data-only', t.db.url], {
      maxBuffer: 256 * 1024 * 1024,
    });
    expect(dump).toContain('token=xxxxxx!');
    expect(dump).not.toContain(SECRET);
  });

  it('places the SSH keys in ~/.ssh with a generated config, and never logs the key', async () => {
    const { status, streamed, stored } = await build([
      'cat ~/.ssh/config',
      'test -f ~/.ssh/deploy && echo placed',
      'stat -c %a ~/.ssh/deploy ~/.ssh',
      'ssh-keygen -y -f ~/.ssh/deploy > /dev/null && echo valid-key || echo no-ssh-keygen',
      'ssh -F ~/.ssh/config -G git.example.com | grep -E "^(user|identityfile|stricthostkeychecking) "',
      'cat ~/.ssh/deploy',
      'env | grep -c KILN_SSH_ || true',
    ]);
    expect(status).toBe('PASSED');
    for (const log of [streamed, stored]) {
      expect(log).toEqual(
        expect.arrayContaining([
          'StrictHostKeyChecking no',
          'UserKnownHostsFile /dev/null',
          'Host git.example.com',
          '  User git',
          'placed',
          '600',
          '700',
          'user git',
          'stricthostkeychecking false',
          '-----BEGIN OPENSSH PRIVATE KEY-----',
        ]),
      );
      const identity = new RegExp(`^IdentityFile "${join(dir, 'work')}/kiln-[^/]+/home/\\.ssh/deploy"$`);
      expect(log.some((line) => identity.test(line))).toBe(true);
      expect(log.some((line) => /^identityfile .*\/home\/\.ssh\/deploy$/.test(line))).toBe(true);
      expect(log.some((line) => line === 'valid-key' || line === 'no-ssh-keygen')).toBe(true);
      // The key's environment variables are gone before the job's commands run.
      expect(log.at(-1)).toBe('0');
      for (const line of keyLines()) expect(log).not.toContain(line);
      expect(log.filter((line) => line === 'xxxxxx').length).toBeGreaterThanOrEqual(keyLines().length);
    }
    const fetched = JSON.stringify(responses);
    for (const line of keyLines()) expect(fetched).not.toContain(line);
    const { stdout: dump } = await run('pg_dump', ['--data-only', t.db.url], {
      maxBuffer: 256 * 1024 * 1024,
    });
    for (const line of keyLines()) expect(dump).not.toContain(line);
    // The build's HOME was its own, next to its workspace (not the runner's), and went with it.
    // The runner removes it right after reporting the build finished.
    await waitFor("the build's workspace and HOME to be removed", async () => {
      return (await readdir(join(dir, 'work'))).length === 0;
    });
  });

  it.runIf(available('docker'))(
    'places the keys in every job when the driver keeps only the workspace between jobs (docker)',
    async () => {
      const image = await ensureTestImage();
      const check = ['test -f ~/.ssh/deploy && echo placed', 'stat -c %a ~/.ssh/deploy', 'cat ~/.ssh/deploy'];
      const { status, stored } = await build(check, {
        driver: `{type: docker, image: "${image}", workspace: /workspace}`,
        next: ['grep -c "^IdentityFile \\"/root/.ssh/deploy\\"$" ~/.ssh/config', ...check],
      });
      expect(status).toBe('PASSED');
      expect(stored.filter((line) => line === 'placed')).toHaveLength(2);
      expect(stored.filter((line) => line === '600')).toHaveLength(2);
      expect(stored).toContain('1');
      for (const line of keyLines()) expect(stored).not.toContain(line);
    },
  );
});

/**
 * Objects and artifacts end to end (issue 4's "done when"): an object uploaded over GraphQL is placed
 * into builds run by a real runner (os driver, and docker against a real engine), the jobs'
 * artifacts are collected (also from a failed job), truncated at the limit, listed in GraphQL,
 * downloaded over HTTP (whole and by range) and checked by SHA-256; equal files are stored once; a
 * missing object is a log line and the build still passes; downloads are refused to those who may
 * not see the build, and the runner endpoints to tokens of other builds.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueBuildToken } from '../api/auth/build-token.ts';
import { createSecretBox } from '../api/auth/secret-box.ts';
import { MemoryBroker } from '../runner/broker/memory/memory-broker.ts';
import { runnerBaseEnv } from '../runner/config.ts';
import { createDrivers } from '../runner/drivers/registry.ts';
import type { Logger } from '../runner/executor.ts';
import { createRunner, type Runner } from '../runner/runner.ts';
import { signUpAndLogIn, startTestApp, type TestApp } from './testkit/app.ts';
import { available, ensureTestImage } from './testkit/services.ts';
import { waitFor } from './testkit/wait.ts';

const silent: Logger = { info() {}, warn() {}, error() {} };
const LIMIT = 2048;
const OBJECT = 'object content\n';

type Res = { data?: Record<string, unknown> | null; errors?: unknown[] };
type ArtifactView = { id: string; name: string; size: number; sha256: string; downloadUrl: string };
type BuildView = {
  id: string;
  status: string;
  artifacts: ArtifactView[];
  stages: { jobs: { name: string; status: string; artifacts: { name: string }[] }[] }[];
  log: { edges: { node: { lines: string[] } }[] };
};

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe.runIf(available('postgres'))('objects and artifacts in builds', () => {
  let t: TestApp;
  let url: string;
  let runner: Runner;
  let dir: string;
  let alice: string;
  let bob: string;

  const gql = async (query: string, variables: Record<string, unknown> = {}, token = alice) => {
    const res = (await t.gql(query, variables, token)) as Res;
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data!;
  };

  /** Submits a manifest in `team` and waits for the build to finish; returns it with its log. */
  async function build(manifest: string): Promise<BuildView & { lines: string[] }> {
    const submitted = await gql(
      `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) {
        __typename ... on SubmitBuildSuccess { build { id } } ... on ManifestError { problems { message } } } }`,
      { m: manifest },
    );
    const id = (submitted.submitBuild as { build?: { id: string } }).build?.id;
    if (!id) throw new Error(JSON.stringify(submitted));
    const found = await waitFor(
      `build ${id} to finish`,
      async () => {
        const data = await gql(
          `query ($id: ID!) { build(id: $id) {
          id status artifacts { id name size sha256 downloadUrl }
          stages { jobs { name status artifacts { name } } }
          log(first: 1000) { edges { node { lines } } } } }`,
          { id },
        );
        const build = data.build as BuildView;
        return build.status !== 'QUEUED' && build.status !== 'RUNNING' && build;
      },
      // A docker build may take most of the test's minute on a slow machine.
      { timeoutMs: 50_000 },
    );
    return { ...found, lines: found.log.edges.flatMap((edge) => edge.node.lines) };
  }

  const download = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { headers });
  const storedBlobs = async () => {
    const found: string[] = [];
    for await (const blob of t.files.list()) found.push(blob.sha256);
    return found.sort();
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-artifacts-test-'));
    const work = join(dir, 'work');
    await mkdir(work);
    t = await startTestApp({ artifactMaxBytes: LIMIT });
    url = await t.listen();
    if (!(t.broker instanceof MemoryBroker)) throw new Error('expected the in-process broker');
    runner = createRunner({
      broker: t.broker.connect(),
      name: 'artifacts-runner',
      queues: ['default'],
      concurrency: 1,
      drivers: createDrivers(['os', 'docker'], { baseEnv: runnerBaseEnv(), workspaceDir: work }),
      logger: silent,
      heartbeatMs: 1000,
    });
    await runner.start();
    alice = await signUpAndLogIn(t, 'alice');
    bob = await signUpAndLogIn(t, 'bob');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const uploaded = (await t.upload(
      `mutation ($file: File!) { uploadObject(input: { namespace: "team", name: "config.txt", file: $file }) {
        __typename } }`,
      { file: null },
      { file: { name: 'config.txt', content: OBJECT } },
      alice,
    )) as Res;
    expect(uploaded.data).toEqual({ uploadObject: { __typename: 'UploadObjectSuccess' } });
  });

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('places objects with the os driver, logs a missing one and passes, and stores equal files once', async () => {
    const result = await build(
      [
        'driver: {type: os}',
        'objects:',
        '  - config.txt => conf/config.txt',
        '  - missing.txt',
        'stages: [make]',
        'jobs:',
        '  - stage: make',
        '    name: build',
        '    commands:',
        '      - cat conf/config.txt',
        '      - mkdir -p out/sub',
        "      - printf 'first\\n' > out/a.txt",
        '      - cp conf/config.txt out/sub/same.txt',
        '    artifacts:',
        "      - 'out/**/*.txt'",
        '      - conf/config.txt => config-copy.txt',
        '',
      ].join('\n'),
    );
    expect(result.status).toBe('PASSED');
    expect(result.lines).toContain('kiln: object "missing.txt" not found, skipped');
    expect(result.lines).toContain('object content');
    expect(result.artifacts.map((a) => [a.name, a.size])).toEqual([
      ['a.txt', 6],
      ['config-copy.txt', OBJECT.length],
      ['same.txt', OBJECT.length],
    ]);
    const byName = new Map(result.artifacts.map((a) => [a.name, a]));
    expect(byName.get('same.txt')!.sha256).toBe(sha256(OBJECT));
    // The object and both copies of it are one blob.
    expect(await storedBlobs()).toEqual([sha256('first\n'), sha256(OBJECT)].sort());
    const response = await download(byName.get('a.txt')!.downloadUrl, { authorization: `Bearer ${alice}` });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('first\n');
  });

  it('refuses downloads to those who may not see the build, and the runner endpoints to other tokens', async () => {
    const result = await build(
      [
        'driver: {type: os}',
        'stages: [make]',
        'jobs:',
        "  - {stage: make, commands: ['echo secret-ish > s.txt'], artifacts: [s.txt]}",
        '',
      ].join('\n'),
    );
    const artifact = result.artifacts[0]!;
    expect((await download(artifact.downloadUrl)).status).toBe(401);
    expect((await download(artifact.downloadUrl, { authorization: `Bearer ${bob}` })).status).toBe(404);
    expect(
      (
        await download(`/artifacts/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}`, {
          authorization: `Bearer ${alice}`,
        })
      ).status,
    ).toBe(404);
    const byCookie = await download(artifact.downloadUrl, { cookie: `kiln_session=${alice}` });
    expect(byCookie.status).toBe(200);
    expect(await byCookie.text()).toBe('secret-ish\n');

    const local = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;
    const buildId = local(result.id);
    const jobs = await gql('query ($id: ID!) { build(id: $id) { stages { jobs { id } } } }', {
      id: result.id,
    });
    const jobId = local((jobs.build as { stages: { jobs: { id: string }[] }[] }).stages[0]!.jobs[0]!.id);
    const upload = (token: string | null, job = jobId) =>
      fetch(`${url}/runner/builds/${buildId}/artifacts?job=${job}&name=extra.txt`, {
        method: 'POST',
        headers: token ? { authorization: `Bearer ${token}` } : {},
        body: 'extra',
      });
    const box = createSecretBox(`test-${t.prefix}`);
    const future = new Date(Date.now() + 60_000);
    expect((await upload(null)).status).toBe(401);
    expect((await upload(alice)).status).toBe(401);
    expect((await upload(issueBuildToken(box, crypto.randomUUID(), future))).status).toBe(403);
    expect((await upload(issueBuildToken(box, buildId, new Date(Date.now() - 1000)))).status).toBe(401);
    expect((await upload(issueBuildToken(createSecretBox('another key'), buildId, future))).status).toBe(401);
    expect((await upload(issueBuildToken(box, buildId, future), buildId)).status).toBe(404);

    // A runner token (admins make them) may use the runner endpoints of any build.
    const made = await gql(
      'mutation { createRunnerToken(input: { name: "r1" }) { ... on CreateRunnerTokenSuccess { token } } }',
      {},
      t.token,
    );
    const runnerToken = (made.createRunnerToken as { token: string }).token;
    const stored = await upload(runnerToken);
    expect(stored.status).toBe(201);
    expect(await stored.json()).toMatchObject({ size: 5, sha256: sha256('extra') });
    const listed = await gql('query ($id: ID!) { build(id: $id) { artifacts { name } } }', { id: result.id });
    expect(listed.build).toEqual({ artifacts: [{ name: 'extra.txt' }, { name: 's.txt' }] });
  });

  describe.runIf(available('docker'))('with the docker driver', () => {
    let image: string;
    beforeAll(async () => {
      image = await ensureTestImage();
    });

    it('places an object in the container and collects artifacts, also of a failed job, truncated at the limit', async () => {
      const result = await build(
        [
          `driver: {type: docker, image: "${image}", workspace: /src}`,
          'objects: [config.txt => /src/conf/config.txt]',
          'stages: [make, check]',
          'allow_failures: [check]',
          'jobs:',
          '  - stage: make',
          '    name: make',
          '    commands:',
          '      - cat conf/config.txt',
          '      - mkdir -p dist',
          '      - head -c 3000 /dev/urandom > dist/big.bin',
          "      - printf 'hello artifact\\n' > dist/app.txt",
          '    artifacts: [dist/*]',
          '  - stage: check',
          '    name: check',
          '    commands: [echo failing > report.txt, exit 3]',
          '    artifacts: [report.txt => failed-report.txt]',
          '',
        ].join('\n'),
      );
      expect(result.status).toBe('PASSED_WITH_FAILURES');
      expect(result.lines).toContain('object content');
      expect(result.lines).toContain(
        `kiln: artifact "big.bin" is 3000 bytes, over the limit of ${LIMIT}: truncated`,
      );
      expect(result.artifacts.map((a) => [a.name, a.size])).toEqual([
        ['app.txt', 15],
        ['big.bin', LIMIT],
        ['failed-report.txt', 8],
      ]);
      const check = result.stages[1]!.jobs[0]!;
      expect(check).toMatchObject({ status: 'FAILED', artifacts: [{ name: 'failed-report.txt' }] });

      const auth = { authorization: `Bearer ${alice}` };
      for (const artifact of result.artifacts) {
        const response = await download(artifact.downloadUrl, auth);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-disposition')).toContain(`filename="${artifact.name}"`);
        const bytes = Buffer.from(await response.arrayBuffer());
        expect(bytes.length).toBe(artifact.size);
        expect(sha256(bytes)).toBe(artifact.sha256);
      }
      const app = result.artifacts[0]!;
      expect(app.sha256).toBe(sha256('hello artifact\n'));
      const range = await download(app.downloadUrl, { ...auth, range: 'bytes=6-13' });
      expect(range.status).toBe(206);
      expect(range.headers.get('content-range')).toBe('bytes 6-13/15');
      expect(await range.text()).toBe('artifact');
      const suffix = await download(app.downloadUrl, { ...auth, range: 'bytes=-9' });
      expect(await suffix.text()).toBe('artifact\n');
      const beyond = await download(app.downloadUrl, { ...auth, range: 'bytes=100-' });
      expect(beyond.status).toBe(416);
      expect(beyond.headers.get('content-range')).toBe('bytes */15');
    });
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available, DOCKER_HOST, ensureTestImage } from '../../../test/testkit/services.ts';
import { directoryArtifactSink } from '../../build-files.ts';
import { loadRunnerConfig } from '../../config.ts';
import type { BuildJob, RunnerEvent, RunnerEventOf, Variable } from '../../contract/messages.ts';
import { type ExecuteBuildOptions, executeBuild } from '../../executor.ts';
import { runOffline } from '../../offline.ts';
import { createDrivers, unavailableDriver } from '../registry.ts';
import {
  type CleanupResult,
  cleanupLeftovers,
  createDockerDriver,
  type DockerDriver,
  type DockerSettings,
  dockerClient,
  LABEL_BUILD,
  LABEL_RUNNER,
} from './docker-driver.ts';

type StageSpec = { name: string; canFail?: boolean; jobs: Record<string, string[]> };

const WORKSPACE = '/workspace';

function buildJob(
  image: string,
  stages: StageSpec[],
  extra: { variables?: Variable[]; timeoutMs?: number } = {},
): BuildJob {
  let n = 0;
  return {
    kind: 'build',
    buildId: `docker-test-${randomBytes(4).toString('hex')}`,
    number: 3,
    queue: 'default',
    driver: { type: 'docker', image, workspace: WORKSPACE },
    stages: stages.map((stage) => ({
      name: stage.name,
      canFail: stage.canFail ?? false,
      jobs: Object.entries(stage.jobs).map(([name, commands]) => ({
        id: `job-${++n}`,
        name,
        commands,
        artifacts: [],
      })),
    })),
    variables: extra.variables ?? [],
    timeoutMs: extra.timeoutMs ?? 60_000,
    submittedAt: new Date().toISOString(),
  };
}

const settings = (overrides: Partial<DockerSettings> = {}): DockerSettings => ({
  host: DOCKER_HOST,
  memoryBytes: 256 * 1024 ** 2,
  nanoCpus: 1e9,
  pidsLimit: 200,
  pullTimeoutMs: 20_000,
  ...overrides,
});

describe('docker settings', () => {
  it('parses limits with units and falls back to working defaults', () => {
    const parsed = loadRunnerConfig(
      { KILN_DOCKER_MEMORY: '512m', KILN_DOCKER_CPUS: '1.5', KILN_DOCKER_PIDS: '0', DOCKER_HOST: 'ssh://x' },
      { inProcess: true },
    );
    expect(parsed.ok && parsed.config.docker).toEqual({
      host: 'unix:///var/run/docker.sock',
      memoryBytes: 512 * 1024 ** 2,
      nanoCpus: 1.5e9,
      pidsLimit: 0,
      pullTimeoutMs: 240_000,
    });
    const defaults = loadRunnerConfig({ KILN_DOCKER_HOST: 'tcp://10.0.0.2:2375' }, { inProcess: true });
    expect(defaults.ok && defaults.config.docker).toMatchObject({
      host: 'tcp://10.0.0.2:2375',
      memoryBytes: 2 * 1024 ** 3,
      pidsLimit: 1024,
    });
  });

  it('names every invalid docker setting', () => {
    const parsed = loadRunnerConfig(
      { KILN_DOCKER_MEMORY: 'lots', KILN_DOCKER_HOST: 'docker.example', KILN_DOCKER_CPUS: '-1' },
      { inProcess: true },
    );
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'KILN_DOCKER_CPUS',
      'KILN_DOCKER_HOST',
      'KILN_DOCKER_MEMORY',
    ]);
  });

  it('reports docker unavailable without an engine socket, and a docker build then fails with the reason', async () => {
    const reasons: string[] = [];
    const drivers = createDrivers(['os', 'docker'], {
      baseEnv: {},
      docker: settings({ host: 'unix:///nonexistent/docker.sock' }),
      onUnavailable: (name, reason) => reasons.push(`${name}: ${reason}`),
    });
    expect([...drivers.keys()]).toEqual(['os']);
    expect(reasons).toEqual([
      expect.stringContaining('docker: no Docker engine socket at /nonexistent/docker.sock'),
    ]);
    const events: RunnerEvent[] = [];
    const result = await executeBuild({
      lease: 'test-lease',
      job: buildJob('any', [{ name: 's', jobs: { a: ['true'] } }]),
      attempt: 1,
      driver: unavailableDriver('docker', reasons[0]),
      emit: async (batch) => {
        events.push(...batch);
      },
      signal: new AbortController().signal,
      runnerName: 'test',
    });
    expect(result.status).toBe('FAILED');
    expect(result.reason).toContain('no Docker engine socket');
  });
});

describe.runIf(available('docker'))('docker driver', () => {
  const docker = dockerClient(DOCKER_HOST);
  const runnerName = `kiln-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  let image: string;
  let driver: DockerDriver;

  beforeAll(async () => {
    image = await ensureTestImage();
    driver = createDockerDriver({ ...settings(), runnerName });
  });
  afterAll(async () => {
    await cleanupLeftovers(docker, runnerName);
  });

  /** Containers and volumes of a build still on the engine. */
  async function leftovers(label: string) {
    const filters = { label: [label] };
    const containers = await docker.listContainers({ all: true, filters });
    const { Volumes } = await docker.listVolumes({ filters });
    return { containers: containers.length, volumes: (Volumes ?? []).length };
  }

  async function execute(
    job: BuildJob,
    opts: Partial<ExecuteBuildOptions> & { onEvent?: (e: RunnerEvent) => void } = {},
  ) {
    const events: RunnerEvent[] = [];
    const result = await executeBuild({
      lease: 'test-lease',
      job,
      attempt: 1,
      driver,
      emit: async (batch) => {
        for (const event of batch) {
          events.push(event);
          opts.onEvent?.(event);
        }
      },
      signal: new AbortController().signal,
      runnerName,
      ...opts,
    });
    const of = <T extends RunnerEvent['type']>(type: T) =>
      events.filter((e): e is RunnerEventOf<T> => e.type === type);
    const log = (id: string) =>
      of('log.chunk')
        .filter((e) => e.jobId === id)
        .flatMap((e) => e.lines);
    const statuses = () => of('job.finished').map((e) => [e.status, e.exitCode]);
    const left = await leftovers(`${LABEL_BUILD}=${job.buildId}`);
    return { result, of, log, statuses, left };
  }

  it('runs a multi-stage build in containers that share files through the workspace volume', async () => {
    const { result, log, statuses, left } = await execute(
      buildJob(
        image,
        [
          {
            name: 'make',
            jobs: { write: ['mkdir -p out', 'echo "$GREETING from $KILN_JOB" > out/file.txt'] },
          },
          {
            name: 'check',
            jobs: {
              read: ['cat out/file.txt', 'echo "in $(pwd) build $KILN_BUILD_NUMBER ci=$CI"'],
              limits: [
                'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
                'cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max',
              ],
            },
          },
        ],
        { variables: [{ key: 'GREETING', value: 'hello', masked: false }] },
      ),
    );
    expect(result).toMatchObject({ status: 'PASSED', reason: null });
    expect(statuses()).toEqual([
      ['PASSED', 0],
      ['PASSED', 0],
      ['PASSED', 0],
    ]);
    expect(log('job-2')).toEqual([
      '$ cat out/file.txt',
      'hello from write',
      '$ echo "in $(pwd) build $KILN_BUILD_NUMBER ci=$CI"',
      `in ${WORKSPACE} build 3 ci=true`,
    ]);
    expect(log('job-3').filter((line) => !line.startsWith('$'))).toEqual([String(256 * 1024 ** 2), '200']);
    expect(left).toEqual({ containers: 0, volumes: 0 });
  });

  it('keeps stdout and stderr in the order they were written', async () => {
    const { log } = await execute(
      buildJob(image, [
        { name: 's', jobs: { mix: ['for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done'] } },
      ]),
    );
    expect(log('job-1').slice(1)).toEqual(['out 1', 'err 1', 'out 2', 'err 2', 'out 3', 'err 3']);
  });

  it('fails a job that exits non-zero, keeps its exit code and skips the rest', async () => {
    const { result, log, statuses, left } = await execute(
      buildJob(image, [
        { name: 'one', jobs: { bad: ['echo before', 'exit 3', 'echo never'] } },
        { name: 'two', jobs: { later: ['true'] } },
      ]),
    );
    expect(result.status).toBe('FAILED');
    expect(statuses()).toEqual([
      ['FAILED', 3],
      ['SKIPPED', null],
    ]);
    expect(log('job-1')).toEqual(['$ echo before', 'before', '$ exit 3']);
    expect(left).toEqual({ containers: 0, volumes: 0 });
  });

  it('kills a running container at once and leaves no container or volume behind', async () => {
    const controller = new AbortController();
    const { result, statuses, left } = await execute(
      buildJob(image, [{ name: 'one', jobs: { long: ['echo started', 'sleep 300'], next: ['true'] } }]),
      {
        signal: controller.signal,
        // Output arrives while the job runs: the kill is triggered by it.
        onEvent: (e) => {
          if (e.type === 'log.chunk' && e.lines.includes('started')) controller.abort('killed');
        },
      },
    );
    expect(result).toMatchObject({ status: 'KILLED', reason: 'the build was killed' });
    expect(statuses()).toEqual([
      ['KILLED', 137],
      ['KILLED', null],
    ]);
    expect(left).toEqual({ containers: 0, volumes: 0 });
  });

  it('times a build out and leaves no container or volume behind', async () => {
    const { result, statuses, left } = await execute(
      buildJob(image, [{ name: 'one', jobs: { slow: ['sleep 300'] } }], { timeoutMs: 1500 }),
    );
    expect(result.status).toBe('TIMED_OUT');
    expect(statuses()).toEqual([['TIMED_OUT', 137]]);
    expect(left).toEqual({ containers: 0, volumes: 0 });
  });

  it('fails the build with a clear reason when the image is missing and cannot be pulled', async () => {
    const { result, log, statuses, left } = await execute(
      buildJob('kiln-test/no-such-image:1', [{ name: 's', jobs: { a: ['true'], b: ['true'] } }]),
    );
    expect(result.status).toBe('FAILED');
    expect(result.reason).toMatch(/^cannot pull image "kiln-test\/no-such-image:1": \S/);
    expect(log('job-1')).toEqual([`kiln: ${result.reason}`]);
    expect(statuses()).toEqual([
      ['FAILED', null],
      ['SKIPPED', null],
    ]);
    expect(left).toEqual({ containers: 0, volumes: 0 });
  });

  it('gives up a pull from a registry that never answers after the pull timeout', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const hanging = createDockerDriver({ ...settings({ pullTimeoutMs: 1000 }), runnerName });
      const { result } = await execute(
        buildJob(`127.0.0.1:${port}/kiln/hangs:1`, [{ name: 's', jobs: { a: ['true'] } }]),
        { driver: hanging },
      );
      expect(result.status).toBe('FAILED');
      expect(result.reason).toBe(`cannot pull image "127.0.0.1:${port}/kiln/hangs:1": no result after 1s`);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('puts files into the workspace and reads them back as a tar archive', async () => {
    const session = await driver.create(
      { env: { KILN_BUILD_ID: 'docker-test-files' }, signal: new AbortController().signal },
      { image, workspace: WORKSPACE },
    );
    try {
      const content = Buffer.from('object content\n');
      await session.putFile('objects/data.txt', content, content.length);
      await expect(session.putFile('/etc/passwd', content, content.length)).rejects.toThrow(
        'outside the workspace',
      );
      const output: Buffer[] = [];
      const run = await session.run({
        name: 'read',
        script: 'cat objects/data.txt\necho made > made.txt\n',
        env: {},
        signal: new AbortController().signal,
        output: (data) => output.push(data),
      });
      expect(run).toEqual({ exitCode: 0, aborted: false });
      expect(Buffer.concat(output).toString()).toBe('object content\n');
      const chunks: Buffer[] = [];
      for await (const chunk of await session.getArchive(`${WORKSPACE}/made.txt`))
        chunks.push(chunk as Buffer);
      const tar = Buffer.concat(chunks);
      expect(tar.subarray(0, 8).toString()).toBe('made.txt');
      expect(tar.subarray(512, 517).toString()).toBe('made\n');
    } finally {
      await session.destroy();
    }
    expect(await leftovers(`${LABEL_BUILD}=docker-test-files`)).toEqual({ containers: 0, volumes: 0 });
  });

  it('skips an artifact that resolves outside the workspace, in the container or on the host, with a log line', async () => {
    const host = await mkdtemp(join(tmpdir(), 'kiln-docker-host-'));
    const sentinel = `sentinel ${randomBytes(8).toString('hex')}\n`;
    await writeFile(join(host, 'sentinel.txt'), sentinel);
    try {
      const job = buildJob(image, [
        {
          name: 'make',
          jobs: {
            links: [
              'ln -s /etc link',
              `ln -s ${host} hostdir`,
              `ln -s ${host}/sentinel.txt host.txt`,
              'ln -s ../../../../.. up',
              'mkdir -p real/sub && echo inside > real/sub/in.txt && ln -s real/sub inlink',
              `ln -s ${WORKSPACE}/real/sub/in.txt absin.txt`,
            ],
          },
        },
      ]);
      job.stages[0]!.jobs[0]!.artifacts = [
        { src: 'link/passwd', name: 'passwd' },
        { src: 'hostdir/sentinel.txt', name: 'sentinel' },
        { src: 'host.txt', name: 'host.txt' },
        { src: 'up/etc/passwd', name: 'passwd' },
        { src: '../etc/passwd', name: 'passwd' },
        { src: '/etc/passwd', name: 'passwd' },
        { src: 'link/*', name: '*' },
        { src: '*.txt', name: '*.txt' },
        { src: 'inlink/in.txt', name: 'in.txt' },
      ];
      const sink = join(host, 'artifacts');
      const { result, log, statuses } = await execute(job, { artifacts: directoryArtifactSink(sink) });

      expect(result.status).toBe('PASSED');
      expect(statuses()).toEqual([['PASSED', 0]]);
      expect(log('job-1').filter((line) => line.includes('skipped'))).toEqual(
        [
          'link/passwd',
          'hostdir/sentinel.txt',
          'host.txt',
          'up/etc/passwd',
          '../etc/passwd',
          '/etc/passwd',
          'link',
          'host.txt',
        ].map((path) => `kiln: artifact ${path}: skipped, it resolves outside the workspace`),
      );
      // Links that stay inside the workspace are followed; nothing else reached the sink.
      const stored = await readdir(sink);
      expect(stored.sort()).toEqual(['absin.txt', 'in.txt']);
      for (const name of stored) expect(await readFile(join(sink, name), 'utf8')).toBe('inside\n');
    } finally {
      await rm(host, { recursive: true, force: true });
    }
  });

  it('refuses to place a file through a link an earlier job planted, or above the workspace', async () => {
    const session = await driver.create(
      { env: { KILN_BUILD_ID: 'docker-test-put-links' }, signal: new AbortController().signal },
      { image, workspace: WORKSPACE },
    );
    const content = Buffer.from('object\n');
    const put = (path: string) => session.putFile(path, content, content.length);
    const run = async (script: string) => {
      const output: Buffer[] = [];
      const result = await session.run({
        name: 'job',
        script,
        env: {},
        signal: new AbortController().signal,
        output: (data) => output.push(data),
      });
      return { ...result, output: Buffer.concat(output).toString() };
    };
    try {
      const planted = await run(
        'ln -s /etc link\nln -s /etc/passwd file-link\nmkdir real\nln -s real inside\n',
      );
      expect(planted.exitCode).toBe(0);
      await expect(put('link/placed.txt')).rejects.toThrow('link/placed.txt resolves outside the workspace');
      await expect(put(`${WORKSPACE}/file-link`)).rejects.toThrow('resolves outside the workspace');
      await expect(put('../placed.txt')).rejects.toThrow('../placed.txt resolves outside the workspace');
      await expect(session.getArchive('link/passwd')).rejects.toThrow('resolves outside the workspace');
      await put('inside/placed.txt');
      const check = await run('cat real/placed.txt\nreadlink file-link\n');
      expect(check.output).toBe('object\n/etc/passwd\n');
    } finally {
      await session.destroy();
    }
  });

  it("removes a crashed runner's leftover containers and volumes when a runner of that name starts", async () => {
    const crashed = `${runnerName}-crashed`;
    const first = createDockerDriver({ ...settings(), runnerName: crashed });
    const session = await first.create(
      { env: { KILN_BUILD_ID: 'docker-test-crash' }, signal: new AbortController().signal },
      { image, workspace: WORKSPACE },
    );
    let up: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      up = resolve;
    });
    // The "crash": a job left running and the session never destroyed.
    const orphan = session
      .run({
        name: 'orphan',
        script: 'echo up\nsleep 300\n',
        env: {},
        signal: new AbortController().signal,
        output: () => up(),
      })
      .catch(() => null);
    await started;
    expect(await leftovers(`${LABEL_RUNNER}=${crashed}`)).toEqual({ containers: 1, volumes: 1 });

    let reported: CleanupResult | Error | null = null;
    const next = createDockerDriver({
      ...settings(),
      runnerName: crashed,
      cleanupLeftovers: true,
      onCleanup: (result) => {
        reported = result;
      },
    });
    await next.ready;
    expect(reported).toEqual({ containers: 1, volumes: 1 });
    expect(await leftovers(`${LABEL_RUNNER}=${crashed}`)).toEqual({ containers: 0, volumes: 0 });
    await orphan;
  });

  it('runs a docker manifest offline with `kiln run`', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-docker-offline-'));
    try {
      await writeFile(
        join(dir, '.kiln.yml'),
        [
          `driver: {type: docker, image: "${image}", workspace: /src}`,
          'env: [WHO=offline]',
          'stages: [a, b]',
          'jobs:',
          '  - {stage: a, commands: ["echo $WHO > note"]}',
          '  - {stage: b, commands: ["cat note"]}',
          '',
        ].join('\n'),
      );
      let out = '';
      const code = await runOffline(
        [],
        { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (out += t) } },
        { cwd: dir, handleSigint: false },
      );
      expect(out).toContain('$ cat note\noffline\n');
      expect(out).toContain('==> build PASSED');
      expect(code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

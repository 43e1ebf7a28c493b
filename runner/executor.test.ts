import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryArtifactSink, directoryObjectSource } from './build-files.ts';
import type { BuildJob, RunnerEvent, RunnerEventOf, Variable } from './contract/messages.ts';
import { createOsDriver } from './drivers/os/os-driver.ts';
import { unavailableDriver } from './drivers/registry.ts';
import { type ExecuteBuildOptions, executeBuild } from './executor.ts';

type StageSpec = { name: string; canFail?: boolean; jobs: Record<string, string[]> };

function buildJob(stages: StageSpec[], extra: { variables?: Variable[]; timeoutMs?: number } = {}): BuildJob {
  let n = 0;
  return {
    kind: 'build',
    buildId: 'build-1',
    number: 7,
    queue: 'default',
    driver: { type: 'os' },
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

describe('executeBuild with the os driver', () => {
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'kiln-executor-test-'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  async function execute(
    job: BuildJob,
    opts: Partial<ExecuteBuildOptions> & { onEvent?: (e: RunnerEvent) => void } = {},
  ) {
    const events: RunnerEvent[] = [];
    const result = await executeBuild({
      lease: 'test-lease',
      job,
      attempt: 1,
      driver: createOsDriver({ baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, workspaceDir: base }),
      emit: async (batch) => {
        for (const event of batch) {
          events.push(event);
          opts.onEvent?.(event);
        }
      },
      signal: new AbortController().signal,
      runnerName: 'test-runner',
      ...opts,
    });
    const of = <T extends RunnerEvent['type']>(type: T) =>
      events.filter((e): e is RunnerEventOf<T> => e.type === type);
    const jobStatus = (id: string) => of('job.finished').find((e) => e.jobId === id)?.status;
    const log = (id: string) =>
      of('log.chunk')
        .filter((e) => e.jobId === id)
        .flatMap((e) => e.lines);
    return { result, events, of, jobStatus, log };
  }

  it('runs every job of a passing build and reports events in order with gapless seq numbers', async () => {
    const { result, events, of, log } = await execute(
      buildJob([
        { name: 'build', jobs: { compile: ['echo compiling', 'echo to stderr >&2'] } },
        { name: 'test', jobs: { unit: ['echo "$KILN_JOB of build $KILN_BUILD_NUMBER ($KILN_BUILD_ID)"'] } },
      ]),
    );
    expect(result).toEqual({ status: 'PASSED', lastSeq: of('log.chunk').length, reason: null });
    const withoutLogs = events.filter((e) => e.type !== 'log.chunk');
    expect(withoutLogs.map((e) => ('jobId' in e ? `${e.type} ${e.jobId}` : e.type))).toEqual([
      'build.started',
      'job.started job-1',
      'job.finished job-1',
      'job.started job-2',
      'job.finished job-2',
      'build.finished',
    ]);
    // Every chunk comes between its own job's job.started and job.finished.
    let current: string | null = null;
    for (const event of events) {
      if (event.type === 'job.started') current = event.jobId;
      if (event.type === 'job.finished') current = null;
      if (event.type === 'log.chunk') expect(event.jobId).toBe(current);
    }
    expect(of('log.chunk').map((e) => e.seq)).toEqual(of('log.chunk').map((_, i) => i + 1));
    expect(of('build.started')[0]).toMatchObject({ runner: 'test-runner', buildId: 'build-1', attempt: 1 });
    expect(log('job-1')).toEqual(['$ echo compiling', 'compiling', '$ echo to stderr >&2', 'to stderr']);
    expect(log('job-2')[1]).toBe('unit of build 7 (build-1)');
    expect(of('job.finished').map((e) => [e.jobId, e.status, e.exitCode])).toEqual([
      ['job-1', 'PASSED', 0],
      ['job-2', 'PASSED', 0],
    ]);
    expect(of('build.finished')[0]).toMatchObject({
      status: 'PASSED',
      lastSeq: result.lastSeq,
      reason: null,
    });
    expect(await readdir(base)).toEqual([]);
  });

  it('stops at a failed job and skips every job after it', async () => {
    const { result, of, jobStatus } = await execute(
      buildJob([
        { name: 'one', jobs: { ok: ['true'], bad: ['echo failing', 'exit 4'], after: ['echo never'] } },
        { name: 'two', jobs: { later: ['echo never'] } },
      ]),
    );
    expect(result.status).toBe('FAILED');
    expect(result.reason).toBeNull();
    expect(of('job.finished').map((e) => [e.jobId, e.status, e.exitCode])).toEqual([
      ['job-1', 'PASSED', 0],
      ['job-2', 'FAILED', 4],
      ['job-3', 'SKIPPED', null],
      ['job-4', 'SKIPPED', null],
    ]);
    expect(jobStatus('job-4')).toBe('SKIPPED');
    expect(of('job.started').map((e) => e.jobId)).toEqual(['job-1', 'job-2']);
    expect(of('log.chunk').flatMap((e) => e.lines)).not.toContain('never');
  });

  it('goes on after a failure in a stage allowed to fail and ends PASSED_WITH_FAILURES', async () => {
    const { result, of } = await execute(
      buildJob([
        { name: 'lint', canFail: true, jobs: { flaky: ['exit 1'], style: ['true'] } },
        { name: 'test', jobs: { unit: ['true'] } },
      ]),
    );
    expect(result.status).toBe('PASSED_WITH_FAILURES');
    expect(of('job.finished').map((e) => e.status)).toEqual(['FAILED', 'PASSED', 'PASSED']);
  });

  it('keeps files in the workspace between jobs of different stages', async () => {
    const { result, log } = await execute(
      buildJob([
        { name: 'make', jobs: { write: ['mkdir -p dist', 'echo artefact > dist/out.txt'] } },
        { name: 'check', jobs: { read: ['cat dist/out.txt'] } },
      ]),
    );
    expect(result.status).toBe('PASSED');
    expect(log('job-2')).toEqual(['$ cat dist/out.txt', 'artefact']);
  });

  it('masks masked variables in the log and passes every variable to the job', async () => {
    const { log } = await execute(
      buildJob(
        [{ name: 's', jobs: { show: ['echo "$TOKEN and $PLAIN"', 'printf "%s" "$TOKEN" | cut -c1-3'] } }],
        {
          variables: [
            { key: 'TOKEN', value: 'first', masked: false },
            { key: 'PLAIN', value: 'visible', masked: false },
            { key: 'TOKEN', value: 's3cr3t-t0ken', masked: true },
          ],
        },
      ),
    );
    expect(log('job-1')).toContain('xxxxxx and visible');
    expect(log('job-1').join('\n')).not.toContain('s3cr3t-t0ken');
    expect(log('job-1')).toContain('s3c');
  });

  it('kills the running job and marks it and every later job KILLED', async () => {
    const controller = new AbortController();
    const { result, of } = await execute(
      buildJob([
        { name: 'one', jobs: { long: ['echo started', 'sleep 1000'], next: ['true'] } },
        { name: 'two', jobs: { later: ['true'] } },
      ]),
      {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'log.chunk' && e.lines.includes('started')) controller.abort('killed');
        },
      },
    );
    expect(result).toMatchObject({ status: 'KILLED', reason: 'the build was killed' });
    expect(of('job.finished').map((e) => e.status)).toEqual(['KILLED', 'KILLED', 'KILLED']);
    expect(of('build.finished')[0]?.status).toBe('KILLED');
    expect(await readdir(base)).toEqual([]);
  });

  it('times the build out after its timeout and marks the rest TIMED_OUT', async () => {
    const { result, of } = await execute(
      buildJob([{ name: 'one', jobs: { slow: ['sleep 1000'], next: ['true'] } }], { timeoutMs: 300 }),
    );
    expect(result.status).toBe('TIMED_OUT');
    expect(result.reason).toContain('timeout');
    expect(of('job.finished').map((e) => e.status)).toEqual(['TIMED_OUT', 'TIMED_OUT']);
  });

  it('returns QUEUED without finishing the build when the runner shuts down', async () => {
    const controller = new AbortController();
    const { result, of } = await execute(
      buildJob([{ name: 'one', jobs: { long: ['echo started', 'sleep 1000'] } }]),
      {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'log.chunk') controller.abort('shutdown');
        },
      },
    );
    expect(result.status).toBe('QUEUED');
    expect(of('build.finished')).toEqual([]);
    expect(of('job.finished')).toEqual([]);
    expect(await readdir(base)).toEqual([]);
  });

  describe('with files outside the workspace', () => {
    let outside: string;
    let stored: string;
    const sentinel = `sentinel ${randomBytes(8).toString('hex')}\n`;
    beforeAll(async () => {
      // A sibling of `base`: the workspace is <base>/<root>/workspace, three levels below tmpdir.
      outside = await mkdtemp(join(tmpdir(), 'kiln-executor-outside-'));
      await writeFile(join(outside, 'sentinel.txt'), sentinel);
      await mkdir(join(outside, 'conf'));
      stored = await mkdtemp(join(tmpdir(), 'kiln-executor-stored-'));
      await writeFile(join(stored, 'config.env'), 'A=1\n');
    });
    afterAll(async () => {
      await rm(outside, { recursive: true, force: true });
      await rm(stored, { recursive: true, force: true });
    });

    /** What the artifact sink received, by name. */
    async function received(dir: string): Promise<Record<string, string>> {
      const names = await readdir(dir).catch(() => []);
      const files = await Promise.all(
        names.map(async (name) => [name, await readFile(join(dir, name), 'utf8')]),
      );
      return Object.fromEntries(files);
    }

    it('skips an artifact that resolves outside the workspace, with a log line, reading none of it', async () => {
      const job = buildJob([
        {
          name: 'make',
          jobs: {
            links: [
              `ln -s ${outside} link`,
              `ln -s ${outside}/sentinel.txt abs.txt`,
              'mkdir -p real/sub && echo inside > real/sub/in.txt && ln -s real/sub inlink',
            ],
          },
        },
      ]);
      const climb = `../../../${basename(outside)}/sentinel.txt`;
      job.stages[0]!.jobs[0]!.artifacts = [
        { src: 'link/sentinel.txt', name: 'through-dir' },
        { src: 'abs.txt', name: 'abs.txt' },
        { src: climb, name: 'climbed' },
        { src: `/${climb}`, name: 'climbed-absolute' },
        { src: 'link/*', name: '*' },
        { src: '*.txt', name: '*.txt' },
        { src: 'inlink/in.txt', name: 'in.txt' },
      ];
      const sink = join(stored, 'artifacts');
      const { result, of, log } = await execute(job, { artifacts: directoryArtifactSink(sink) });

      expect(result.status).toBe('PASSED');
      expect(of('job.finished').map((e) => [e.status, e.exitCode])).toEqual([['PASSED', 0]]);
      const skips = log('job-1').filter((line) => line.includes('skipped'));
      expect(skips).toEqual([
        'kiln: artifact link/sentinel.txt: skipped, it resolves outside the workspace',
        'kiln: artifact abs.txt: skipped, it resolves outside the workspace',
        `kiln: artifact ${climb}: skipped, it resolves outside the workspace`,
        `kiln: artifact /${climb}: skipped, it resolves outside the workspace`,
        'kiln: artifact link: skipped, it resolves outside the workspace',
        'kiln: artifact abs.txt: skipped, it resolves outside the workspace',
      ]);
      // A link that stays inside the workspace is followed.
      expect(await received(sink)).toEqual({ 'in.txt': 'inside\n' });
      expect(await readFile(join(outside, 'sentinel.txt'), 'utf8')).toBe(sentinel);
    });

    it('refuses an object destination that climbs out of the workspace, with a log line', async () => {
      const job = buildJob([{ name: 'make', jobs: { look: ['ls -R'] } }]);
      const climb = `../../../${basename(outside)}/conf/config.env`;
      const { result, log } = await execute(job, {
        objects: directoryObjectSource(stored, [
          { name: 'config.env', dest: climb },
          { name: 'config.env', dest: `/${climb}` },
          { name: 'config.env', dest: 'conf/config.env' },
        ]),
      });
      expect(result.status).toBe('PASSED');
      expect(log('job-1').filter((line) => line.startsWith('kiln:'))).toEqual([
        `kiln: could not place object "config.env" at ${climb}: ${climb} resolves outside the workspace`,
        `kiln: could not place object "config.env" at /${climb}: /${climb} resolves outside the workspace`,
        'kiln: object "config.env" placed at conf/config.env (4 bytes)',
      ]);
      expect(await readdir(join(outside, 'conf'))).toEqual([]);
    });
  });

  it('fails the build with the reason when the driver cannot make its environment', async () => {
    const { result, of, log } = await execute(
      buildJob([
        { name: 'one', jobs: { a: ['true'], b: ['true'] } },
        { name: 'two', jobs: { c: ['true'] } },
      ]),
      { driver: unavailableDriver('docker') },
    );
    expect(result).toMatchObject({
      status: 'FAILED',
      reason: 'driver "docker" is not enabled on this runner',
    });
    expect(of('job.finished').map((e) => e.status)).toEqual(['FAILED', 'SKIPPED', 'SKIPPED']);
    expect(log('job-1')).toEqual(['kiln: driver "docker" is not enabled on this runner']);
    expect(of('build.finished')[0]).toMatchObject({ status: 'FAILED', lastSeq: 1 });
  });
});

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../test/testkit/wait.ts';
import { createBroker } from './broker/create-broker.ts';
import { MemoryBroker } from './broker/memory/memory-broker.ts';
import type { BuildJob, RunnerEvent, RunnerEventOf } from './contract/messages.ts';
import { createOsDriver } from './drivers/os/os-driver.ts';
import type { Logger } from './executor.ts';
import { createRunner, type Runner } from './runner.ts';

const silent: Logger = { info() {}, warn() {}, error() {} };

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie is dead; it only waits for an init that does not reap (as in some containers).
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('runner with the in-process broker', () => {
  let dir: string;
  let broker: MemoryBroker;
  let events: RunnerEvent[];
  const runners: Runner[] = [];
  let builds = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-runner-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((runner) => runner.stop()));
    await broker.close();
  });

  /** How the stand-in for the api answers a runner that waits for its go-ahead. */
  let answer: (started: RunnerEventOf<'build.started'>) => 'go' | 'wait' | 'kill';

  async function setup(): Promise<void> {
    const created = createBroker({});
    if (!(created instanceof MemoryBroker)) throw new Error('expected the in-process broker');
    broker = created;
    await broker.start();
    events = [];
    answer = () => 'go';
    await broker.subscribe('event', (event) => {
      events.push(event);
      if (event.type === 'build.started' && event.waiting) {
        void broker.publish('control', [{ type: answer(event), buildId: event.buildId, lease: event.lease }]);
      }
    });
  }

  async function startRunner(
    name: string,
    opts: { drainTimeoutMs?: number; concurrency?: number; retryMs?: number } = {},
  ) {
    const connection = broker.connect();
    const runner = createRunner({
      broker: connection,
      name,
      queues: ['default'],
      concurrency: opts.concurrency ?? 2,
      drivers: new Map([['os', createOsDriver({ baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } })]]),
      logger: silent,
      heartbeatMs: 20,
      drainTimeoutMs: opts.drainTimeoutMs,
      retryMs: opts.retryMs ?? 50,
    });
    await runner.start();
    runners.push(runner);
    return { runner, connection };
  }

  function build(commands: string[], driver = 'os'): BuildJob {
    builds++;
    return {
      kind: 'build',
      buildId: `b${builds}`,
      number: builds,
      queue: 'default',
      driver: { type: driver },
      stages: [
        {
          name: 'main',
          canFail: false,
          jobs: [{ id: `b${builds}-j1`, name: 'job', commands, artifacts: [] }],
        },
      ],
      variables: [],
      timeoutMs: 60_000,
      submittedAt: new Date().toISOString(),
    };
  }

  const of = <T extends RunnerEvent['type']>(type: T, buildId?: string) =>
    events.filter(
      (e): e is RunnerEventOf<T> =>
        e.type === type && (!buildId || ('buildId' in e && e.buildId === buildId)),
    );
  const finished = (buildId: string) =>
    waitFor(`build ${buildId} to finish`, () => of('build.finished', buildId)[0]);
  const logged = (buildId: string, line: string) =>
    waitFor(`build ${buildId} to log "${line}"`, () =>
      of('log.chunk', buildId).some((e) => e.lines.includes(line)),
    );

  it('runs a published build and publishes its events, with heartbeats listing it while it runs', async () => {
    await setup();
    const { runner } = await startRunner('r1');
    expect(runner.readiness()).toEqual({ ready: true, running: 0 });
    const gate = join(dir, 'gate-1');
    const job = build(['echo hello', `while [ ! -e ${gate} ]; do sleep 0.02; done`]);
    await broker.publish('build', [job]);

    await logged(job.buildId, 'hello');
    expect(runner.readiness().running).toBe(1);
    await waitFor('a heartbeat of r1 listing the build', () =>
      of('runner.heartbeat').some(
        (e) => e.runner === 'r1' && e.running.some((r) => r.buildId === job.buildId),
      ),
    );
    writeFileSync(gate, '');

    const done = await finished(job.buildId);
    expect(done).toMatchObject({ status: 'PASSED', attempt: 1, reason: null });
    expect(of('build.started', job.buildId)).toMatchObject([{ runner: 'r1', attempt: 1 }]);
    expect(of('job.finished', job.buildId)).toMatchObject([
      { jobId: `${job.buildId}-j1`, status: 'PASSED', exitCode: 0 },
    ]);
    expect(of('log.chunk', job.buildId).map((e) => e.seq)).toEqual(
      Array.from({ length: done.lastSeq }, (_, i) => i + 1),
    );
    await waitFor('the runner to run nothing', () => runner.readiness().running === 0);
  });

  it('acks a build only after its build.finished: with concurrency 1 the next build waits for it', async () => {
    await setup();
    await startRunner('r1', { concurrency: 1 });
    const first = build(['sleep 0.2', 'echo first']);
    const second = build(['echo second']);
    await broker.publish('build', [first]);
    await broker.publish('build', [second]);
    await finished(second.buildId);
    const order = events
      .filter((e) => e.type === 'build.started' || e.type === 'build.finished')
      .map((e) => `${e.type} ${'buildId' in e ? e.buildId : ''}`);
    expect(order).toEqual([
      `build.started ${first.buildId}`,
      `build.finished ${first.buildId}`,
      `build.started ${second.buildId}`,
      `build.finished ${second.buildId}`,
    ]);
  });

  it('kills a running build on a kill control message, leaving no process of the job alive', async () => {
    await setup();
    await startRunner('r1');
    const pidFile = join(dir, 'kill.pid');
    const job = build(['echo started', `sh -c 'echo $$ > ${pidFile}; exec sleep 1000'`]);
    await broker.publish('build', [job]);
    await logged(job.buildId, 'started');
    const pid = await waitFor('the job to write its pid', () =>
      existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0,
    );
    expect(isRunning(pid)).toBe(true);

    await broker.publish('control', [{ type: 'kill', buildId: job.buildId }]);
    const done = await finished(job.buildId);
    expect(done).toMatchObject({ status: 'KILLED', reason: 'the build was killed' });
    expect(of('job.finished', job.buildId)).toMatchObject([{ status: 'KILLED' }]);
    expect(isRunning(pid)).toBe(false);
  });

  it('fails a build whose driver the runner does not offer', async () => {
    await setup();
    await startRunner('r1');
    const job = build(['true'], 'docker');
    await broker.publish('build', [job]);
    expect(await finished(job.buildId)).toMatchObject({
      status: 'FAILED',
      reason: 'driver "docker" is not enabled on this runner',
    });
    expect(of('job.finished', job.buildId)).toMatchObject([{ status: 'FAILED', exitCode: null }]);
  });

  it('hands a running build back on stop() so a second runner runs it as attempt 2', async () => {
    await setup();
    const { runner: first } = await startRunner('r1');
    const marker = join(dir, 'attempted');
    // The first attempt blocks; the second finds the marker and passes.
    const job = build([
      `if [ ! -e ${marker} ]; then touch ${marker}; echo waiting; sleep 1000; fi`,
      'echo done',
    ]);
    await broker.publish('build', [job]);
    await logged(job.buildId, 'waiting');

    await first.stop();
    expect(first.readiness()).toEqual({ ready: false, running: 0 });
    expect(of('build.finished', job.buildId)).toEqual([]);

    // The first run gave its lease up, so the next need not wait for it to lapse.
    const [started] = of('build.started', job.buildId);
    const released = await waitFor(
      'the first run to release the build',
      () => of('build.released', job.buildId)[0],
    );
    expect(released).toMatchObject({ lease: started?.lease, attempt: 1 });

    await startRunner('r2');
    const done = await finished(job.buildId);
    expect(done).toMatchObject({ status: 'PASSED', attempt: 2 });
    expect(of('build.started', job.buildId).map((e) => [e.runner, e.attempt, e.waiting])).toEqual([
      ['r1', 1, false],
      ['r2', 2, true],
    ]);
  });

  it('runs nothing of a redelivered build until the api says go, and asks again as a new run after a wait', async () => {
    await setup();
    const { runner: first } = await startRunner('r1');
    const marker = join(dir, 'attempted-wait');
    const job = build([
      `if [ ! -e ${marker} ]; then touch ${marker}; echo waiting; sleep 1000; fi`,
      'echo ran',
    ]);
    await broker.publish('build', [job]);
    await logged(job.buildId, 'waiting');
    await first.stop();

    let asked = 0;
    answer = () => (++asked < 3 ? 'wait' : 'go');
    await startRunner('r2');
    const done = await finished(job.buildId);
    expect(done).toMatchObject({ status: 'PASSED', attempt: 2 });
    const starts = of('build.started', job.buildId).filter((e) => e.runner === 'r2');
    expect(starts).toHaveLength(3);
    // Each try is a run of its own, and only the run the api let go reported anything.
    expect(new Set(starts.map((e) => e.lease)).size).toBe(3);
    const reporters = new Set(
      events
        .filter(
          (e) => e.type !== 'build.started' && 'lease' in e && e.buildId === job.buildId && e.attempt === 2,
        )
        .map((e) => (e as { lease: string }).lease),
    );
    expect([...reporters]).toEqual([starts[2]!.lease]);
  });

  it('drops a redelivered build the api says is over, without running it', async () => {
    await setup();
    const { runner: first } = await startRunner('r1');
    const marker = join(dir, 'attempted-over');
    const job = build([
      `if [ ! -e ${marker} ]; then touch ${marker}; echo waiting; sleep 1000; fi`,
      'echo ran',
    ]);
    await broker.publish('build', [job]);
    await logged(job.buildId, 'waiting');
    await first.stop();

    answer = () => 'kill';
    const { runner: second } = await startRunner('r2');
    await waitFor('r2 to ask', () => of('build.started', job.buildId).some((e) => e.runner === 'r2'));
    await waitFor('r2 to drop the delivery', () => second.readiness().running === 0);
    // Acked: a third runner gets nothing, and r2 ran nothing.
    await startRunner('r3');
    const probe = build(['echo probe']);
    await broker.publish('build', [probe]);
    await finished(probe.buildId);
    expect(of('build.started', job.buildId).map((e) => e.runner)).toEqual(['r1', 'r2']);
    expect(of('log.chunk', job.buildId).filter((e) => e.attempt === 2)).toEqual([]);
  });

  it('lets running builds finish on stop({ drain: true }) and takes no new ones', async () => {
    await setup();
    const { runner } = await startRunner('r1', { drainTimeoutMs: 60_000 });
    const gate = join(dir, 'gate-drain');
    const running = build(['echo started', `while [ ! -e ${gate} ]; do sleep 0.02; done`]);
    await broker.publish('build', [running]);
    await logged(running.buildId, 'started');

    const stopped = runner.stop({ drain: true });
    const later = build(['echo later']);
    await broker.publish('build', [later]);
    writeFileSync(gate, '');
    await stopped;
    expect(of('build.finished', running.buildId)).toMatchObject([{ status: 'PASSED', attempt: 1 }]);
    expect(of('build.started', later.buildId)).toEqual([]);

    await startRunner('r2');
    expect(await finished(later.buildId)).toMatchObject({ status: 'PASSED', attempt: 1 });
  });
});

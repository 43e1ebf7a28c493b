import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../test/testkit/services.ts';
import { waitFor } from '../test/testkit/wait.ts';
import { AmqpBroker } from './broker/amqp/amqp-broker.ts';
import { deleteTopology } from './broker/amqp/topology.ts';
import type { BuildJob, RunnerEvent } from './contract/messages.ts';

const AMQP_URL = process.env.KILN_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
// Under KILN_REQUIRE=rabbitmq a missing RabbitMQ fails instead of skipping.
const hasRabbit = available('rabbitmq');

/** `kiln runner` as its own process, as the CLI starts it; `output()` is what it printed so far. */
function startRunnerProcess(env: Record<string, string>): {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
} {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "import { main } from './runner/main.ts'; process.exitCode = await main();",
    ],
    {
      cwd: join(import.meta.dirname, '..'),
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d));
  child.stderr?.on('data', (d: Buffer) => (output += d));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0) console.error(output);
      resolve(code);
    }),
  );
  return { child, exited, output: () => output };
}

describe('kiln runner (the process)', () => {
  it('refuses to start without KILN_AMQP_URL and says why', async () => {
    const { child, exited } = startRunnerProcess({});
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d));
    expect(await exited).toBe(1);
    expect(stderr).toContain('KILN_AMQP_URL: required by `kiln runner`');
  });

  describe.skipIf(!hasRabbit)('with RabbitMQ', () => {
    const prefix = `kiln-runner-main-${process.pid}-${Date.now()}`;
    let broker: AmqpBroker;
    let dir: string;
    const events: RunnerEvent[] = [];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'kiln-runner-main-'));
      broker = new AmqpBroker({ url: AMQP_URL, prefix });
      await broker.start();
      await broker.subscribe('event', (event) => events.push(event));
    });
    afterAll(async () => {
      await broker.close();
      await deleteTopology(AMQP_URL, prefix, ['default']);
      await rm(dir, { recursive: true, force: true });
    });

    it('runs a build and, on SIGTERM, lets it finish before exiting 0', async () => {
      const gate = join(dir, 'gate');
      const job: BuildJob = {
        kind: 'build',
        buildId: 'main-1',
        number: 1,
        queue: 'default',
        driver: { type: 'os' },
        stages: [
          {
            name: 'main',
            canFail: false,
            jobs: [
              {
                id: 'j1',
                name: 'wait',
                commands: ['echo waiting', `while [ ! -e ${gate} ]; do sleep 0.05; done`],
                artifacts: [],
              },
            ],
          },
        ],
        variables: [],
        timeoutMs: 60_000,
        submittedAt: new Date().toISOString(),
      };
      const { child, exited, output } = startRunnerProcess({
        KILN_AMQP_URL: AMQP_URL,
        KILN_BROKER_PREFIX: prefix,
        KILN_RUNNER_NAME: 'process-runner',
        KILN_LOG_LEVEL: 'info',
      });
      await broker.publish('build', [job]);
      await waitFor('the job to log "waiting"', () =>
        events.some((e) => e.type === 'log.chunk' && e.lines.includes('waiting')),
      );

      child.kill('SIGTERM');
      // It has taken the signal and is draining: it must still be there, waiting for the build.
      await waitFor('the runner to say it is draining', () =>
        output().includes('stopping: draining the running builds'),
      );
      expect(child.exitCode).toBeNull();
      await writeFile(gate, '');

      expect(await exited).toBe(0);
      const finished = await waitFor('build.finished', () => events.find((e) => e.type === 'build.finished'));
      expect(finished).toMatchObject({ buildId: 'main-1', status: 'PASSED', attempt: 1 });
      expect(events.find((e) => e.type === 'build.started')).toMatchObject({ runner: 'process-runner' });
    });

    it('serves its metrics on KILN_METRICS_PORT, behind KILN_METRICS_TOKEN, and counts a build', async () => {
      const job: BuildJob = {
        kind: 'build',
        buildId: 'metrics-1',
        number: 2,
        queue: 'metered',
        driver: { type: 'os' },
        stages: [
          {
            name: 'main',
            canFail: false,
            jobs: [{ id: 'm1', name: 'count', commands: ['seq 1 50'], artifacts: [] }],
          },
        ],
        variables: [],
        timeoutMs: 60_000,
        submittedAt: new Date().toISOString(),
      };
      const { child, exited, output } = startRunnerProcess({
        KILN_AMQP_URL: AMQP_URL,
        KILN_BROKER_PREFIX: prefix,
        KILN_RUNNER_NAME: 'metered-runner',
        KILN_RUNNER_QUEUES: 'metered',
        KILN_LOG_LEVEL: 'info',
        KILN_METRICS_PORT: '0',
        KILN_METRICS_TOKEN: 'runner-metrics-token',
      });
      try {
        const port = await waitFor('the metrics port', () => {
          const line = output()
            .split('\n')
            .find((l) => l.includes('metrics at /metrics'));
          return line ? (JSON.parse(line) as { port: number }).port : null;
        });
        const url = `http://127.0.0.1:${port}/metrics`;
        expect((await fetch(url)).status).toBe(401);
        const scrape = async () => {
          const res = await fetch(url, { headers: { authorization: 'Bearer runner-metrics-token' } });
          expect(res.status).toBe(200);
          return res.text();
        };
        const metric = (text: string, name: string) =>
          Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
        const before = await scrape();
        expect(metric(before, 'kiln_runner_builds_started_total')).toBe(0);
        expect(metric(before, 'kiln_runner_broker_connected')).toBe(1);
        await broker.publish('build', [job]);
        await waitFor('the metered build to finish', () =>
          events.some((e) => e.type === 'build.finished' && e.buildId === 'metrics-1'),
        );
        const after = await waitFor('the build to be counted', async () => {
          const text = await scrape();
          return /^kiln_runner_builds_finished_total\{status="PASSED"\} 1$/m.test(text) ? text : null;
        });
        expect(metric(after, 'kiln_runner_builds_started_total')).toBe(1);
        expect(metric(after, 'kiln_runner_builds_running')).toBe(0);
        expect(metric(after, 'kiln_runner_log_lines_sent_total')).toBeGreaterThanOrEqual(50);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      await deleteTopology(AMQP_URL, prefix, ['metered']).catch(() => {});
    });
  });
});

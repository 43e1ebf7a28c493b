import { availableParallelism, tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadRunnerConfig } from './config.ts';

describe('loadRunnerConfig', () => {
  it('gives working defaults for the in-process runner', () => {
    const result = loadRunnerConfig({ PATH: '/bin', HOME: '/home/k' }, { inProcess: true });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config).toMatchObject({
      amqpUrl: '',
      queues: ['default'],
      concurrency: availableParallelism(),
      drainTimeoutMs: 30_000,
      drivers: ['os', 'docker'],
      brokerPrefix: 'kiln',
      logLevel: 'info',
      workspaceDir: tmpdir(),
      baseEnv: { PATH: '/bin', HOME: '/home/k', LANG: 'C.UTF-8' },
    });
    expect(result.config.name).toMatch(/-\d+$/);
  });

  it('parses lists and numbers', () => {
    const result = loadRunnerConfig({
      KILN_AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      KILN_RUNNER_NAME: 'r-1',
      KILN_RUNNER_QUEUES: 'default, gpu ,default',
      KILN_RUNNER_CONCURRENCY: '3',
      KILN_DRIVERS: 'os,docker',
      KILN_RUNNER_DRAIN_SECONDS: '1.5',
    });
    expect(result).toMatchObject({
      ok: true,
      config: {
        name: 'r-1',
        queues: ['default', 'gpu'],
        concurrency: 3,
        drivers: ['os', 'docker'],
        drainTimeoutMs: 1500,
      },
    });
  });

  it('requires KILN_AMQP_URL for the runner process and reports every problem', () => {
    const result = loadRunnerConfig({
      KILN_RUNNER_CONCURRENCY: 'zero',
      KILN_DRIVERS: 'os,vmware',
      KILN_RUNNER_QUEUES: 'a,,b',
      KILN_LOG_LEVEL: 'loud',
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const fields = result.problems.map((p) => p.split(':')[0]);
    expect(fields.sort()).toEqual(
      [
        'KILN_AMQP_URL',
        'KILN_DRIVERS',
        'KILN_LOG_LEVEL',
        'KILN_RUNNER_CONCURRENCY',
        'KILN_RUNNER_QUEUES',
      ].sort(),
    );
    expect(result.problems.find((p) => p.startsWith('KILN_AMQP_URL'))).toContain('required by `kiln runner`');
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning } from '../../../test/testkit/pids.ts';
import { waitFor } from '../../../test/testkit/wait.ts';
import type { DriverSession, JobResult } from '../driver.ts';
import { createOsDriver } from './os-driver.ts';

const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), LANG: 'C.UTF-8' };

describe('os driver', () => {
  let base: string;
  let session: DriverSession;
  const driver = () => createOsDriver({ baseEnv, workspaceDir: base });

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'kiln-os-driver-test-'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  async function run(
    script: string,
    env: Record<string, string> = {},
    signal = new AbortController().signal,
  ) {
    const chunks: Buffer[] = [];
    const result: JobResult = await session.run({
      name: 'test',
      script,
      env,
      signal,
      output: (data) => chunks.push(data),
    });
    return { ...result, output: Buffer.concat(chunks).toString() };
  }

  it('runs a script in the workspace with stdout and stderr interleaved and a minimal environment', async () => {
    // The runner's own environment must not reach jobs: only baseEnv does.
    process.env.KILN_OS_DRIVER_TEST_LEAK = 'leaked';
    session = await driver().create(
      { env: { BUILD_VAR: 'b', OVERRIDE: 'build' }, signal: new AbortController().signal },
      {},
    );
    try {
      const result = await run(
        [
          'echo out1',
          'echo err1 >&2',
          'echo out2',
          'echo "$BUILD_VAR $OVERRIDE $CI $KILN"',
          'test "$KILN_WORKSPACE" = "$(pwd)" && echo in-workspace',
          'echo "host=$KILN_OS_DRIVER_TEST_LEAK"',
        ].join('\n'),
        { OVERRIDE: 'job' },
      );
      expect(result).toMatchObject({ exitCode: 0, aborted: false });
      expect(result.output).toBe('out1\nerr1\nout2\nb job true true\nin-workspace\nhost=\n');
    } finally {
      await session.destroy();
    }
  });

  it('reports the exit code of a failing script and stops at the first failing command', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    try {
      const failed = await run('echo before\nsh -c "exit 3"\necho after');
      expect(failed).toMatchObject({ exitCode: 3, aborted: false, output: 'before\n' });
      const signalled = await run('kill -USR1 $$');
      expect(signalled.exitCode).toBe(128 + 10);
    } finally {
      await session.destroy();
    }
  });

  it('keeps files between jobs and removes the workspace on destroy', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const workspace = session.description;
    expect(workspace.startsWith(base)).toBe(true);
    await run('mkdir -p out && echo kept > out/file && chmod 500 out');
    const second = await run('cat out/file');
    expect(second.output).toBe('kept\n');
    await session.destroy();
    expect(existsSync(workspace)).toBe(false);
    expect(await readdir(base)).toEqual([]);
  });

  it('gives each build its own HOME next to the workspace, never the runner’s, and removes it on destroy', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const other = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const home = join(session.description, '..', 'home');
    try {
      const first = await run(
        'echo "$HOME" && mkdir -p ~/.ssh && echo mine > ~/.ssh/id && ls -ld ~ | cut -c1-10',
      );
      expect(first).toMatchObject({ exitCode: 0, output: `${home}\ndrwx------\n` });
      expect(readFileSync(join(home, '.ssh', 'id'), 'utf8')).toBe('mine\n');
      const chunks: Buffer[] = [];
      await other.run({
        name: 'other',
        script: 'test -e ~/.ssh/id && echo shared || echo separate',
        env: {},
        signal: new AbortController().signal,
        output: (data) => chunks.push(data),
      });
      expect(Buffer.concat(chunks).toString()).toBe('separate\n');
    } finally {
      await other.destroy();
      await session.destroy();
    }
    expect(existsSync(home)).toBe(false);
  });

  it('kills the whole process tree when aborted, background processes included', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const pidFile = join(session.description, 'pids');
    const controller = new AbortController();
    const running = run(
      [
        `sleep 1000 & echo $! >> ${pidFile}`,
        `sh -c 'trap "" TERM; echo $$ >> ${pidFile}; while :; do sleep 1; done' &`,
        `echo $$ >> ${pidFile}`,
        `sh -c 'echo $$ >> ${pidFile}; exec sleep 1000'`,
        'wait',
      ].join('\n'),
      {},
      controller.signal,
    );
    const pids = () =>
      existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim().split('\n').map(Number) : [];
    await waitFor('the job to start its four processes', () => pids().length === 4);
    expect(pids().every(isRunning)).toBe(true);
    controller.abort('killed');
    const result = await running;
    expect(result.aborted).toBe(true);
    expect(result.exitCode).toBeGreaterThan(128);
    await waitFor('every process of the job to end', () => !pids().some(isRunning));
    await session.destroy();
    expect(existsSync(pidFile)).toBe(false);
  });

  it('kills processes a job leaves in the background when its script exits', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const pidFile = join(session.description, 'pids');
    const result = await run(`sleep 1000 & echo $! > ${pidFile}\necho started`);
    expect(result).toMatchObject({ exitCode: 0, aborted: false, output: 'started\n' });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor('the background process to end', () => !isRunning(pid));
    await session.destroy();
  });

  it('refuses to place a file through a link an earlier job planted, and writes nothing outside', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'kiln-os-driver-outside-'));
    await writeFile(join(outside, 'existing.txt'), 'keep\n');
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    const put = (path: string) =>
      session.putFile!(
        path,
        (async function* () {
          yield Buffer.from('object\n');
        })(),
        7,
      );
    try {
      const planted = await run(
        [
          `ln -s ${outside} link`,
          `ln -s ${outside}/existing.txt file-link`,
          `ln -s ${outside}/new.txt dangling`,
          'mkdir real && ln -s real inside',
        ].join('\n'),
      );
      expect(planted.exitCode).toBe(0);
      await expect(put('link/new.txt')).rejects.toThrow('link/new.txt resolves outside the workspace');
      await expect(put('link/deeper/new.txt')).rejects.toThrow('resolves outside the workspace');
      await expect(put('/file-link')).rejects.toThrow('/file-link resolves outside the workspace');
      await expect(put('dangling')).rejects.toThrow('dangling is a link that leads nowhere');
      await put('inside/placed.txt');
      expect((await run('cat real/placed.txt')).output).toBe('object\n');
      expect(await readdir(outside)).toEqual(['existing.txt']);
      expect(await readFile(join(outside, 'existing.txt'), 'utf8')).toBe('keep\n');
    } finally {
      await session.destroy();
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('does not start a job whose signal is already aborted', async () => {
    session = await driver().create({ env: {}, signal: new AbortController().signal }, {});
    try {
      const controller = new AbortController();
      controller.abort('killed');
      const result = await run('echo should-not-run', {}, controller.signal);
      expect(result.aborted).toBe(true);
      expect(result.output).toBe('');
    } finally {
      await session.destroy();
    }
  });
});

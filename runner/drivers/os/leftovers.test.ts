import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { isRunning, stopsRunning } from '../../../test/testkit/pids.ts';
import { waitFor } from '../../../test/testkit/wait.ts';
import { cleanupOsLeftovers, rootPrefix } from './leftovers.ts';
import { createOsDriver } from './os-driver.ts';

const base = mkdtempSync(join(tmpdir(), 'kiln-leftovers-'));
const started: ChildProcess[] = [];
afterAll(() => {
  for (const child of started) child.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

/** A workspace root as the os driver makes it, owned by `owner`, with a job process sleeping in it. */
/** A workspace root as the os driver makes it (named after its runner), with a job sleeping in it. */
async function root(name: string): Promise<{ dir: string; pid: number }> {
  const dir = join(base, name);
  mkdirSync(join(dir, 'workspace'), { recursive: true });
  const child = spawn('/bin/sh', ['-c', 'sleep 60 & wait'], {
    cwd: join(dir, 'workspace'),
    detached: true,
    stdio: 'ignore',
  });
  started.push(child);
  await once(child, 'spawn');
  return { dir, pid: child.pid! };
}

describe('os driver leftovers', () => {
  it('kills the processes of workspaces whose runner died and removes them, and nothing else', async () => {
    // A runner that died: a pid that is not running, or one whose start time differs.
    const dead = await root('kiln-2147483646-1-abc123');
    const reused = await root(`kiln-${process.pid}-1-abc123`);
    const live = await root(`${rootPrefix()}abc123`);
    const unmarked = await root('kiln-abc123');
    const other = await root('not-kiln-2147483646-1-abc123');

    const result = await cleanupOsLeftovers(base);

    expect(result.workspaces).toBe(2);
    expect(result.processes).toBeGreaterThanOrEqual(2);
    for (const gone of [dead, reused]) {
      expect(await stopsRunning(gone.pid, 2000)).toBe(true);
      expect(existsSync(gone.dir)).toBe(false);
    }
    for (const kept of [live, unmarked, other]) {
      expect(isRunning(kept.pid)).toBe(true);
      expect(existsSync(kept.dir)).toBe(true);
    }
  });

  it('marks each workspace with its runner, and a new driver cleans what a killed runner left', async () => {
    const dir = mkdtempSync(join(base, 'runner-'));
    // A runner process that starts a job sleeping in its workspace, then is killed with SIGKILL.
    const code = `
      import { createOsDriver } from ${JSON.stringify(new URL('./os-driver.ts', import.meta.url).href)};
      const driver = createOsDriver({ baseEnv: { PATH: process.env.PATH }, workspaceDir: ${JSON.stringify(dir)} });
      const session = await driver.create({ env: {}, signal: new AbortController().signal }, {});
      await session.run({
        name: 'sleeper', script: 'echo "$$"; sleep 60', env: {}, signal: new AbortController().signal,
        output: (data) => process.stdout.write(data),
      });
    `;
    const runner = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', code],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    started.push(runner);
    const [line] = (await once(runner.stdout!, 'data')) as [Buffer];
    const job = Number(String(line).trim());
    expect(isRunning(job)).toBe(true);
    runner.kill('SIGKILL');
    await once(runner, 'exit');
    await delay(100);
    expect(isRunning(job)).toBe(true);

    let reported: unknown = null;
    createOsDriver({
      baseEnv: {},
      workspaceDir: dir,
      cleanupLeftovers: true,
      onCleanup: (result) => {
        reported = result;
      },
    });
    await waitFor('the cleanup to be reported', () => reported !== null);
    expect(reported).toMatchObject({ workspaces: 1 });
    expect((reported as { processes: number }).processes).toBeGreaterThanOrEqual(1);
    expect(isRunning(job)).toBe(false);
  });
});

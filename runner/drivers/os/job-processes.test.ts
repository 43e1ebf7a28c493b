import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { isRunning, stopsRunning } from '../../../test/testkit/pids.ts';
import { createJobProcesses, type JobProcesses, type StartedJob } from './job-processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-job-processes-'));
const workspace = mkdtempSync(join(dir, 'ws-'));
const env = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: dir,
  QUOTED: 'it\'s "quoted" $HOME `x`\nand a second line',
  EMPTY: '',
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, `exec 2>&1\n${text}`);
  return path;
}

async function output(job: StartedJob): Promise<{ text: string; code: number | null }> {
  let text = '';
  job.child.stdout.on('data', (data: Buffer) => {
    text += data;
  });
  job.child.stderr.on('data', (data: Buffer) => {
    text += data;
  });
  const [code] = (await once(job.child, 'close')) as [number | null];
  return { text, code };
}

/** An idle shell, started and given time to be up. */
async function withIdleShell(processes: JobProcesses): Promise<void> {
  processes.replenish();
  await delay(50);
}

describe('job processes', () => {
  it('gives a job started in the idle shell the environment and directory of a fresh spawn', async () => {
    const processes = createJobProcesses({ idleCwd: dir });
    const show = script('show.sh', 'pwd\nenv | sort\necho "stdin: $(cat)"\necho oops >&2\nexit 3\n');
    const cold = processes.start(show, env, workspace);
    expect(cold.warm).toBe(false);
    const coldRun = await output(cold);
    await withIdleShell(processes);
    const warm = processes.start(show, env, workspace);
    expect(warm.warm).toBe(true);
    const warmRun = await output(warm);
    expect(warmRun).toEqual(coldRun);
    expect(coldRun.code).toBe(3);
    expect(coldRun.text).toContain(`${workspace}\n`);
    expect(coldRun.text).toContain(`QUOTED=${env.QUOTED}\n`);
    expect(coldRun.text).toContain('stdin: \n');
    expect(coldRun.text).toContain('oops\n');
    processes.close();
  });

  it('runs a warm job as its own process group, so killing the group ends its children', async () => {
    const processes = createJobProcesses({ idleCwd: dir });
    await withIdleShell(processes);
    const job = processes.start(script('group.sh', 'sleep 30 &\necho "$!"\nwait\n'), env, workspace);
    expect(job.warm).toBe(true);
    const pid = job.child.pid!;
    const first = await new Promise<string>((resolve) =>
      job.child.stdout.once('data', (d) => resolve(`${d}`)),
    );
    const sleeper = Number(first.trim());
    expect(isRunning(sleeper)).toBe(true);
    process.kill(-pid, 'SIGKILL');
    await once(job.child, 'exit');
    expect(await stopsRunning(sleeper, 2000)).toBe(true);
    processes.close();
  });

  it('treats a variable whose name is not a shell name as a fresh spawn does', async () => {
    const processes = createJobProcesses({ idleCwd: dir });
    const odd = { ...env, 'odd.name': 'dropped by sh' };
    const show = script('odd.sh', 'env | sort\n');
    const cold = await output(processes.start(show, odd, workspace));
    await withIdleShell(processes);
    const job = processes.start(show, odd, workspace);
    expect(job.warm).toBe(true);
    expect(await output(job)).toEqual(cold);
    processes.close();
  });

  it('spawns afresh when the idle shell died, and never when warm shells are off', async () => {
    const processes = createJobProcesses({ idleCwd: dir });
    await withIdleShell(processes);
    const probe = spawn('pgrep', ['-P', String(process.pid), '-x', 'sh']);
    let pids = '';
    probe.stdout.on('data', (d) => {
      pids += d;
    });
    await once(probe, 'close');
    for (const pid of pids.trim().split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    await delay(50);
    const job = processes.start(script('after.sh', 'echo fine\n'), env, workspace);
    expect(job.warm).toBe(false);
    expect((await output(job)).text).toBe('fine\n');
    processes.close();

    const cold = createJobProcesses({ idleCwd: dir, warm: false });
    await withIdleShell(cold);
    expect(cold.start(script('cold.sh', 'true\n'), env, workspace).warm).toBe(false);
  });

  it('does not keep the runner alive, and its idle shell ends with the runner', async () => {
    const code = `
      import { createJobProcesses } from ${JSON.stringify(new URL('./job-processes.ts', import.meta.url).href)};
      const processes = createJobProcesses({ idleCwd: ${JSON.stringify(dir)} });
      processes.replenish();
      setTimeout(() => {
        const children = readFileSync('/proc/self/task/' + process.pid + '/children', 'utf8');
        console.log(children.trim());
      }, 100);
      import { readFileSync } from 'node:fs';
    `;
    const child = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', code],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let printed = '';
    child.stdout.on('data', (d) => {
      printed += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [exitCode] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    expect(exitCode).toBe(0);
    const idle = Number(printed.trim().split(/\s+/)[0]);
    expect(idle).toBeGreaterThan(0);
    expect(await stopsRunning(idle, 2000)).toBe(true);
  });
});

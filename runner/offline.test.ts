import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOffline } from './offline.ts';

describe('kiln run (offline runner)', () => {
  let dir: string;
  let workspaces: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-offline-test-'));
    workspaces = await mkdtemp(join(tmpdir(), 'kiln-offline-ws-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(workspaces, { recursive: true, force: true });
  });

  async function run(manifest: string, args: string[] = [], signal?: AbortSignal) {
    await writeFile(join(dir, '.kiln.yml'), manifest);
    let stdout = '';
    let stderr = '';
    const io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
    };
    const code = await runOffline(args, io, {
      cwd: dir,
      baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      workspaceDir: workspaces,
      handleSigint: false,
      signal,
    });
    return { code, stdout, stderr };
  }

  const twoStages = (secondCommand: string) => `
driver:
  type: os
env:
  - GREETING=hello
stages: [build, test]
jobs:
  - stage: build
    name: compile
    commands:
      - echo "$GREETING from build" > out.txt
      - cat out.txt
  - stage: test
    name: check
    commands:
      - ${secondCommand}
`;

  it('runs a passing manifest, prints its log with a header per job, and returns 0', async () => {
    const { code, stdout } = await run(twoStages('grep hello out.txt'));
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        '==> build / compile',
        '$ echo "$GREETING from build" > out.txt',
        '$ cat out.txt',
        'hello from build',
        '==> build / compile: PASSED (exit code 0)',
        '==> test / check',
        '$ grep hello out.txt',
        'hello from build',
        '==> test / check: PASSED (exit code 0)',
        '==> build PASSED',
        '',
      ].join('\n'),
    );
    expect(await readdir(workspaces)).toEqual([]);
  });

  it('returns 1 when a job fails, and skips the jobs after it', async () => {
    const { code, stdout } = await run(twoStages('exit 3').replace('cat out.txt', 'test -e missing.txt'));
    expect(code).toBe(1);
    expect(stdout).toContain('==> build / compile: FAILED (exit code 1)');
    expect(stdout).toContain('==> test / check: SKIPPED');
    expect(stdout).toContain('==> build FAILED');
  });

  it('runs only the chosen stage with --stage', async () => {
    const { code, stdout } = await run(twoStages('echo only the test stage'), ['--stage', 'test']);
    expect(code).toBe(0);
    expect(stdout).not.toContain('compile');
    expect(stdout).toContain('only the test stage');
  });

  it('refuses an unknown stage and an invalid manifest with exit status 2', async () => {
    const unknown = await run(twoStages('echo ok'), ['--stage', 'deploy']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown stage "deploy"');

    const invalid = await run('driver:\n  type: os\nstages: [a]\njobs:\n  - stage: a\n    commands: 42\n');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^\.kiln\.yml:6:\d+: jobs\[0\]\.commands: /);
    expect(invalid.stdout).toBe('');
  });

  it('kills the build when interrupted and returns 1', async () => {
    const controller = new AbortController();
    const manifest =
      'driver:\n  type: os\nstages: [a]\njobs:\n  - stage: a\n    commands:\n      - sleep 1000\n';
    const running = run(manifest, [], controller.signal);
    setTimeout(() => controller.abort(), 200);
    const { code, stdout } = await running;
    expect(code).toBe(1);
    expect(stdout).toContain('==> build KILLED');
  });
});

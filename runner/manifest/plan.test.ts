import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.ts';
import { jobScript, planBuild, shellQuote } from './plan.ts';
import type { Manifest } from './types.ts';

const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plan-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs a job script the way drivers do: written to a file and run with `sh -e`. */
function runScript(script: string, cwd: string, env: Record<string, string> = {}) {
  const file = join(cwd, 'job.sh');
  writeFileSync(file, script);
  return spawnSync('/bin/sh', ['-e', file], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
}

function manifest(overrides: Partial<Manifest>): Manifest {
  return {
    namespace: null,
    driver: { type: 'os', options: {} },
    env: [],
    objects: [],
    sources: [],
    stages: [],
    allowFailures: [],
    jobs: [],
    timeoutMs: 60_000,
    queue: 'default',
    ...overrides,
  };
}

describe('planBuild', () => {
  it('keeps the stage order and each stage’s jobs in manifest order, marking allowed failures', () => {
    const result = parseManifest(`driver: {type: os}
stages: [build, test]
allow_failures: [test]
jobs:
  - {stage: test, name: lint, commands: [make lint]}
  - {stage: build, commands: [make], artifacts: [out/app]}
  - {stage: test, name: unit, commands: [make test]}
`);
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(planBuild(result.manifest)).toEqual({
      stages: [
        {
          name: 'build',
          canFail: false,
          jobs: [{ name: 'build.1', commands: ['make'], artifacts: [{ src: 'out/app', name: 'app' }] }],
        },
        {
          name: 'test',
          canFail: true,
          jobs: [
            { name: 'lint', commands: ['make lint'], artifacts: [] },
            { name: 'unit', commands: ['make test'], artifacts: [] },
          ],
        },
      ],
    });
  });

  it('prepends a setup stage with one clone job per source', () => {
    const plan = planBuild(
      manifest({
        sources: [
          { url: 'https://github.com/acme/api.git', ref: 'v1.4.0', dir: 'api' },
          { url: 'git@github.com:acme/lib.git', ref: '', dir: 'lib' },
        ],
        stages: ['test'],
        jobs: [{ stage: 'test', name: 'test.1', commands: ['make'], artifacts: [] }],
      }),
    );
    expect(plan.stages.map((s) => s.name)).toEqual(['setup', 'test']);
    expect(plan.stages[0]).toEqual({
      name: 'setup',
      canFail: false,
      jobs: [
        {
          name: 'clone.1',
          commands: [
            'git clone -q -- https://github.com/acme/api.git api',
            'cd api && git checkout -q v1.4.0 --',
          ],
          artifacts: [],
        },
        { name: 'clone.2', commands: ['git clone -q -- git@github.com:acme/lib.git lib'], artifacts: [] },
      ],
    });
  });

  it('quotes hostile source values so the clone job passes them to git verbatim and runs nothing else', () => {
    const dir = tempDir();
    // A stand-in for git that prints each argument in brackets and makes the clone directory.
    writeFileSync(
      join(dir, 'git'),
      '#!/bin/sh\nfor a in "$@"; do printf "[%s]\\n" "$a"; last=$a; done\n[ "$1" = clone ] && mkdir -p -- "$last"\nexit 0\n',
    );
    chmodSync(join(dir, 'git'), 0o755);
    const url = "https://x/a.git'; touch pwned; echo '$(touch pwned2)`touch pwned3`";
    const ref = "v1'; touch pwned4 #";
    const cloneDir = "my dir's $HOME";
    const plan = planBuild(manifest({ sources: [{ url, ref, dir: cloneDir }], stages: [] }));
    const commands = plan.stages[0]?.jobs[0]?.commands ?? [];
    const run = runScript(jobScript(commands), dir, { PATH: `${dir}:${process.env.PATH ?? ''}` });
    expect(run.status).toBe(0);
    const gitOutput = run.stdout.split('\n').filter((line) => line.startsWith('['));
    expect(gitOutput).toEqual([
      '[clone]',
      '[-q]',
      '[--]',
      `[${url}]`,
      `[${cloneDir}]`,
      '[checkout]',
      '[-q]',
      `[${ref}]`,
      '[--]',
    ]);
    for (const marker of ['pwned', 'pwned2', 'pwned3', 'pwned4'])
      expect(existsSync(join(dir, marker))).toBe(false);
    expect(existsSync(join(dir, cloneDir))).toBe(true);
  });

  it('checks out the ref as a revision with real git, and fails on a ref that only names a file', () => {
    const dir = tempDir();
    const git = (...args: string[]) => {
      const run = spawnSync('git', ['-c', 'user.name=kiln', '-c', 'user.email=kiln@test', ...args], {
        cwd: join(dir, 'origin'),
        encoding: 'utf8',
      });
      if (run.status !== 0) throw new Error(run.stderr);
    };
    spawnSync('git', ['init', '-q', 'origin'], { cwd: dir });
    writeFileSync(join(dir, 'origin', 'version.txt'), 'one\n');
    git('add', '.');
    git('commit', '-q', '-m', 'one');
    git('tag', 'v1');
    writeFileSync(join(dir, 'origin', 'version.txt'), 'two\n');
    git('commit', '-q', '-am', 'two');
    const clone = (ref: string, into: string) => {
      const plan = planBuild(manifest({ sources: [{ url: join(dir, 'origin'), ref, dir: into }] }));
      return runScript(jobScript(plan.stages[0]?.jobs[0]?.commands ?? []), dir);
    };

    expect(clone('v1', 'tagged').status).toBe(0);
    expect(readFileSync(join(dir, 'tagged', 'version.txt'), 'utf8')).toBe('one\n');
    // Without `--`, git would restore the file and go on with the default branch as if it were the ref.
    const file = clone('version.txt', 'by-file');
    expect(file.status).not.toBe(0);
    expect(file.stderr).toContain('invalid reference: version.txt');
  });

  it('refuses to plan a ref that git would read as an option', () => {
    const source = { url: 'https://x/a.git', ref: '--upload-pack=touch pwned', dir: 'a' };
    expect(() => planBuild(manifest({ sources: [source] }))).toThrow('git would read it as an option');
  });
});

describe('shellQuote', () => {
  it.each([
    ['plain', 'https://github.com/acme/api.git'],
    ['empty', ''],
    ['quotes and separators', `it's "quoted"; rm -rf / && echo ok | cat`],
    ['expansions', '$HOME $(id) `id` $((1+1)) ~ * ? [a]'],
    ['newlines and tabs', 'one\ntwo\tthree\n'],
    ['backslashes', 'a\\b\\\\c\\'],
    ['a lone quote', "'"],
  ])('makes sh see %s text exactly as given', (_name, value) => {
    const run = spawnSync('/bin/sh', ['-c', `printf '%s\\n' ${shellQuote(value)}`], { encoding: 'utf8' });
    expect(run.stdout).toBe(`${value}\n`);
  });

  it('leaves words without special characters unquoted', () => {
    expect(shellQuote('v1.4.0')).toBe('v1.4.0');
    expect(shellQuote('a b')).toBe("'a b'");
  });
});

describe('jobScript', () => {
  it('prints each command before running it and stops at the first failing one', () => {
    const run = runScript(jobScript(['echo one', 'false', 'echo never']), tempDir());
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('$ echo one\none\n$ false\n');
  });

  it('shows only the first line of a multi-line command and prints variables unexpanded', () => {
    const commands = ['for i in 1 2; do\n  echo "n=$i"\ndone\n', 'echo "$GREETING"'];
    const run = runScript(jobScript(commands), tempDir(), { GREETING: 'hello' });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('$ for i in 1 2; do …\nn=1\nn=2\n$ echo "$GREETING"\nhello\n');
  });

  it('starts with set -e so the script stops on failure even when run without -e', () => {
    const script = jobScript(['exit_code() { return 3; }', 'exit_code', 'echo never']);
    expect(script.startsWith('set -e\n')).toBe(true);
    const run = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(3);
    expect(run.stdout).toBe('$ exit_code() { return 3; }\n$ exit_code\n');
  });
});

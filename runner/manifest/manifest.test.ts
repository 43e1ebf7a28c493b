import { describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.ts';
import { planBuild } from './plan.ts';
import { MAX_MANIFEST_BYTES, type Manifest, type ManifestProblem, type ParseResult } from './types.ts';
import { MAX_NESTING, MAX_PROBLEMS } from './yaml.ts';

function manifestOf(result: ParseResult): Manifest {
  if (!result.ok)
    throw new Error(`expected a valid manifest, got ${JSON.stringify(result.problems, null, 2)}`);
  return result.manifest;
}

function problemsOf(result: ParseResult): ManifestProblem[] {
  if (result.ok) throw new Error('expected problems, got a valid manifest');
  return result.problems;
}

/** Problems as `path@line:column`, compact enough to compare whole lists. */
function where(result: ParseResult): string[] {
  return problemsOf(result).map((p) => `${p.path}@${p.line}:${p.column}`);
}

function messageAt(result: ParseResult, path: string): string {
  const problem = problemsOf(result).find((p) => p.path === path);
  if (!problem) throw new Error(`no problem at ${path}: ${JSON.stringify(problemsOf(result))}`);
  return problem.message;
}

// Three lines; tests append a fourth to check one top-level field.
const MINIMAL = `driver: {type: os}
stages: [test]
jobs: [{stage: test, commands: [make]}]
`;

describe('parseManifest on valid manifests', () => {
  it('parses a full manifest and fills in every default', () => {
    const text = `namespace: acme/api            # created private if missing
driver:
  type: docker
  image: golang:1.21
  workspace: /go
env:
  - CGO_ENABLED=0
  - GOFLAGS=-mod=vendor -tags=a=b
objects:
  - prod.env => /go/prod.env
  - ca.pem
sources:
  - https://github.com/acme/api.git v1.4.0 => api
  - git@github.com:acme/lib.git
stages: [test, build]
allow_failures: [test]
jobs:
  - stage: test
    name: Unit Tests
    commands:
      - cd api
      - go test ./...
  - stage: build
    commands:
      - cd api
      - go build -o bin/api ./cmd/api
    artifacts:
      - api/bin/api => api-linux-amd64
      - api/coverage.out
  - stage: build
    commands: [make docs]
`;
    const expected: Manifest = {
      namespace: 'acme/api',
      driver: { type: 'docker', options: { image: 'golang:1.21', workspace: '/go' } },
      env: [
        { key: 'CGO_ENABLED', value: '0' },
        { key: 'GOFLAGS', value: '-mod=vendor -tags=a=b' },
      ],
      objects: [
        { name: 'prod.env', dest: '/go/prod.env' },
        { name: 'ca.pem', dest: 'ca.pem' },
      ],
      sources: [
        { url: 'https://github.com/acme/api.git', ref: 'v1.4.0', dir: 'api' },
        { url: 'git@github.com:acme/lib.git', ref: '', dir: 'lib' },
      ],
      stages: ['test', 'build'],
      allowFailures: ['test'],
      jobs: [
        { stage: 'test', name: 'unit-tests', commands: ['cd api', 'go test ./...'], artifacts: [] },
        {
          stage: 'build',
          name: 'build.1',
          commands: ['cd api', 'go build -o bin/api ./cmd/api'],
          artifacts: [
            { src: 'api/bin/api', name: 'api-linux-amd64' },
            { src: 'api/coverage.out', name: 'coverage.out' },
          ],
        },
        { stage: 'build', name: 'build.2', commands: ['make docs'], artifacts: [] },
      ],
      timeoutMs: 60 * 60 * 1000,
      queue: 'default',
    };
    expect(manifestOf(parseManifest(text))).toEqual(expected);
  });

  it('reads timeout, queue and an owner-prefixed namespace when given', () => {
    const text = `namespace: me@acme/api\n${MINIMAL}timeout: 1h30m\nqueue: gpu.large-1\n`;
    const manifest = manifestOf(parseManifest(text));
    expect(manifest.namespace).toBe('me@acme/api');
    expect(manifest.timeoutMs).toBe(90 * 60 * 1000);
    expect(manifest.queue).toBe('gpu.large-1');
    expect(manifestOf(parseManifest(`${MINIMAL}timeout: 90s\n`)).timeoutMs).toBe(90_000);
    expect(manifestOf(parseManifest(`${MINIMAL}timeout: 24h\n`)).timeoutMs).toBe(24 * 60 * 60 * 1000);
  });

  it('slugifies default job names built from the stage name', () => {
    const text = `driver: {type: os}
stages: [Unit Tests]
jobs:
  - {stage: Unit Tests, commands: [a]}
  - {stage: Unit Tests, name: "Lint & Vet", commands: [b]}
`;
    expect(manifestOf(parseManifest(text)).jobs.map((j) => j.name)).toEqual(['unit-tests.1', 'lint---vet']);
  });

  it('fills arch x86_64 for qemu and treats empty optional keys as their defaults', () => {
    const text = `driver: {type: qemu, image: centos/7}\nstages: [test]\njobs: [{stage: test, commands: [make]}]\nenv:\nqueue:\n`;
    const manifest = manifestOf(parseManifest(text));
    expect(manifest.driver).toEqual({ type: 'qemu', options: { image: 'centos/7', arch: 'x86_64' } });
    expect(manifest.env).toEqual([]);
    expect(manifest.queue).toBe('default');
  });

  it('follows YAML aliases so commands can be shared between jobs', () => {
    const text = `driver: {type: os}
stages: [test]
jobs:
  - {stage: test, commands: &setup [make deps, make]}
  - {stage: test, commands: *setup}
`;
    expect(manifestOf(parseManifest(text)).jobs[1]?.commands).toEqual(['make deps', 'make']);
  });

  it('accepts a stage named setup when there are no sources', () => {
    const text = `driver: {type: os}\nstages: [setup]\njobs: [{stage: setup, commands: [make]}]\n`;
    expect(manifestOf(parseManifest(text)).stages).toEqual(['setup']);
  });
});

describe('parseManifest on invalid manifests', () => {
  it('reports an unknown top-level key with a suggestion, and the required key it misspelt', () => {
    const text = `driver:
  type: os
stages: [test]
job:
  - stage: test
    commands: [make]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual(['jobs@1:1', 'job@4:1']);
    expect(messageAt(result, 'job')).toBe(
      'unknown key "job"; expected one of: allow_failures, driver, env, jobs, namespace, objects, queue, sources, stages, timeout (did you mean "jobs"?)',
    );
    expect(messageAt(result, 'jobs')).toBe('missing required key "jobs" (a list of jobs)');
  });

  it('reports unknown job keys, missing commands and non-string commands all at once, in line order', () => {
    const text = `driver: {type: os}
stages: [test]
jobs:
  - stage: test
    comands: [make]
  - stage: test
    commands:
      - make
      - 42
      - true
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual([
      'jobs[0].commands@4:5',
      'jobs[0].comands@5:5',
      'jobs[1].commands[1]@9:9',
      'jobs[1].commands[2]@10:9',
    ]);
    expect(messageAt(result, 'jobs[0].comands')).toContain('did you mean "commands"?');
    expect(messageAt(result, 'jobs[1].commands[1]')).toBe('must be a string, got the number 42');
    expect(messageAt(result, 'jobs[1].commands[2]')).toBe('must be a string, got the boolean true');
  });

  it('reports a job in an unlisted stage, a duplicate stage and an unknown allowed failure', () => {
    const text = `driver: {type: os}
stages: [test, build, test]
allow_failures: [deploy]
jobs:
  - stage: test
    commands: [make test]
  - stage: deploy
    commands: [make deploy]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual(['stages[2]@2:23', 'allow_failures[0]@3:18', 'jobs[1].stage@7:12']);
    expect(messageAt(result, 'stages[2]')).toBe('duplicate stage "test"');
    expect(messageAt(result, 'jobs[1].stage')).toBe(
      'stage "deploy" is not in stages; expected one of: test, build',
    );
  });

  it('reports duplicate job names after slugifying and defaulting', () => {
    const text = `driver: {type: os}
stages: [test]
jobs:
  - stage: test
    name: Unit Tests
    commands: [a]
  - stage: test
    name: unit_tests
    commands: [b]
  - stage: test
    name: test.4
    commands: [c]
  - stage: test
    commands: [d]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual(['jobs[1].name@8:11', 'jobs[3]@13:5']);
    expect(messageAt(result, 'jobs[1].name')).toBe('duplicate job name "unit-tests"; jobs[0] has it too');
    expect(messageAt(result, 'jobs[3]')).toBe(
      'duplicate job name "test.4" (its default name); jobs[2] has it too',
    );
  });

  it('reports missing and invalid docker options', () => {
    const text = `driver:
  type: docker
  workspace: go
  imgae: golang
stages: [test]
jobs: [{stage: test, commands: [make]}]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual(['driver.image@2:3', 'driver.workspace@3:14', 'driver.imgae@4:3']);
    expect(messageAt(result, 'driver.image')).toBe(
      'missing required key "image" (the docker driver needs image and workspace)',
    );
    expect(messageAt(result, 'driver.imgae')).toContain('did you mean "image"?');
  });

  it('reports an unknown driver, a driver not enabled on the server and an unsupported qemu arch', () => {
    const rest = 'stages: [test]\njobs: [{stage: test, commands: [make]}]\n';
    const unknown = parseManifest(`driver: {type: ssh, address: host:22}\n${rest}`);
    expect(where(unknown)).toEqual(['driver.type@1:16']);
    expect(messageAt(unknown, 'driver.type')).toBe('unknown driver "ssh"; expected one of: os, docker, qemu');

    const disabled = parseManifest(`driver: {type: qemu, image: centos/7}\n${rest}`, {
      drivers: ['os', 'docker'],
    });
    expect(where(disabled)).toEqual(['driver.type@1:16']);
    expect(messageAt(disabled, 'driver.type')).toBe(
      'driver "qemu" is not enabled on this server; enabled: os, docker',
    );

    const arch = parseManifest(`driver: {type: qemu, image: centos/7, arch: aarch64}\n${rest}`);
    expect(where(arch)).toEqual(['driver.arch@1:45']);

    const untyped = parseManifest(`driver: {image: x}\n${rest}`);
    expect(where(untyped)).toEqual(['driver.type@1:9']);
  });

  it('reports malformed env, objects, sources and artifacts at each item', () => {
    const text = `driver: {type: os}
env:
  - NOEQUALS
  - 1BAD=x
objects:
  - " => /dest"
sources:
  - https://x/a.git main extra
  - --upload-pack=evil
  - https://x/b.git => ../escape
  - https://x/c.git
  - https://y/c.git
stages: [test]
jobs:
  - stage: test
    commands: [make]
    artifacts: ["out => "]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual([
      'env[0]@3:5',
      'env[1]@4:5',
      'objects[0]@6:5',
      'sources[0]@8:5',
      'sources[1]@9:5',
      'sources[2]@10:5',
      'sources[4]@12:5',
      'jobs[0].artifacts[0]@17:17',
    ]);
    expect(messageAt(result, 'env[1]')).toContain('invalid variable name "1BAD"');
    expect(messageAt(result, 'sources[1]')).toBe(
      'url "--upload-pack=evil" must not start with "-": git would read it as an option',
    );
    expect(messageAt(result, 'sources[4]')).toBe('directory "c" is already used by sources[3]');
  });

  it.each(['-b', '--upload-pack=/tmp/evil.sh', '--'])(
    'refuses the source ref %s, which git would read as an option',
    (ref) => {
      const text = `driver: {type: os}
sources: ["https://x/a.git ${ref}"]
stages: [build]
jobs: [{stage: build, commands: [make]}]
`;
      const result = parseManifest(text);
      expect(where(result)).toEqual(['sources[0]@2:11']);
      expect(messageAt(result, 'sources[0]')).toBe(
        `ref "${ref}" must not start with "-": git would read it as an option`,
      );
    },
  );

  it('reports a stage named setup when sources are given, because the clone stage uses that name', () => {
    const text = `driver: {type: os}
sources: [https://x/a.git]
stages: [build, setup]
jobs: [{stage: setup, commands: [make]}]
`;
    const result = parseManifest(text);
    expect(where(result)).toEqual(['stages[1]@3:17']);
    expect(messageAt(result, 'stages[1]')).toBe('stage name "setup" is reserved for cloning sources');
  });

  it('reports a stage named setup in a build of a repository, whose checkout job that stage runs', () => {
    const text = `driver: {type: os}
stages: [setup]
jobs: [{stage: setup, commands: [make]}]
`;
    expect(parseManifest(text).ok).toBe(true);
    const result = parseManifest(text, { checkout: true });
    expect(messageAt(result, 'stages[0]')).toBe('stage name "setup" is reserved for checking out the commit');
    const plan = planBuild(
      (parseManifest(text.replaceAll('setup', 'build')) as { manifest: Manifest }).manifest,
      { checkout: { url: 'file:///srv/git/app.git', ref: 'refs/heads/main', sha: 'a'.repeat(40) } },
    );
    expect(plan.stages.map((s) => s.name)).toEqual(['setup', 'build']);
    expect(plan.stages[0]!.jobs[0]!.name).toBe('checkout');
    expect(plan.stages[0]!.jobs[0]!.commands.join('\n')).toContain(`checkout -q ${'a'.repeat(40)} --`);
    expect(() =>
      planBuild((parseManifest(text.replaceAll('setup', 'build')) as { manifest: Manifest }).manifest, {
        checkout: { url: 'file:///x', ref: 'main', sha: 'main' },
      }),
    ).toThrow(/not a full commit id/);
  });

  it.each([
    ['namespace: acme//api', 'namespace@4:12', 'invalid namespace segment ""'],
    ['namespace: "acme/my api"', 'namespace@4:12', 'invalid namespace segment "my api"'],
    [`namespace: ${Array.from({ length: 21 }, () => 'a').join('/')}`, 'namespace@4:12', '21 levels deep'],
    ['namespace: 42', 'namespace@4:12', 'must be a string, got the number 42'],
    ['timeout: 30', 'timeout@4:10', 'must be a duration string like "30m" or "1h30m", got the number 30'],
    ['timeout: 30 minutes', 'timeout@4:10', 'invalid duration "30 minutes"'],
    ['timeout: 0s', 'timeout@4:10', 'must be longer than 0s'],
    ['timeout: 24h1s', 'timeout@4:10', 'must be at most 24h'],
    ['queue: "no spaces"', 'queue@4:8', 'invalid queue name "no spaces"'],
    ['queue: true', 'queue@4:8', 'must be a string, got the boolean true'],
    ['objects: prod.env', 'objects@4:10', 'must be a list of objects, got a string'],
  ])('reports %s with its position and reason', (line, expectedWhere, message) => {
    const result = parseManifest(`${MINIMAL}${line}\n`);
    expect(where(result)).toEqual([expectedWhere]);
    expect(problemsOf(result)[0]?.message).toContain(message);
  });

  it('reports empty stages and jobs lists and a required key left empty', () => {
    const result = parseManifest('driver: {type: os}\nstages: []\njobs:\n');
    expect(where(result)).toEqual(['stages@2:9', 'jobs@3:1']);
    expect(messageAt(result, 'jobs')).toBe('must not be empty; expected a list of jobs');
  });

  it('explains that an unquoted colon turned a command into a map', () => {
    const result = parseManifest(
      `driver: {type: os}\nstages: [test]\njobs:\n  - stage: test\n    commands:\n      - echo a: b\n`,
    );
    expect(where(result)).toEqual(['jobs[0].commands[0]@6:9']);
    expect(messageAt(result, 'jobs[0].commands[0]')).toBe(
      'must be a string, got a map (quote the text if it contains ": ")',
    );
  });

  it.each([
    ['empty text', ''],
    ['only comments', '# nothing here\n\n# still nothing\n'],
  ])('reports an empty manifest for %s', (_name, text) => {
    expect(problemsOf(parseManifest(text))).toEqual([
      {
        path: '',
        line: null,
        column: null,
        message: 'the manifest is empty; expected a map with driver, stages and jobs',
      },
    ]);
  });

  it('reports a manifest that is not a map at its position', () => {
    const result = parseManifest('\n- driver\n- stages\n');
    expect(where(result)).toEqual(['@2:1']);
    expect(messageAt(result, '')).toBe('the manifest must be a map with driver, stages and jobs, got a list');
  });

  it('reports one size problem, without parsing, for a manifest over the limit in UTF-8 bytes', () => {
    const big = `${MINIMAL}${'# filler\n'.repeat(Math.ceil((300 * 1024) / 9))}`;
    expect(problemsOf(parseManifest(big))).toEqual([
      {
        path: '',
        line: null,
        column: null,
        message: `the manifest is ${Buffer.byteLength(big)} bytes; the limit is 262144 bytes (256 KiB)`,
      },
    ]);
    // Fewer characters than the limit, but two bytes each: the limit is on bytes.
    const wide = `${MINIMAL}# ${'é'.repeat(MAX_MANIFEST_BYTES / 2)}\n`;
    expect(wide.length).toBeLessThan(MAX_MANIFEST_BYTES);
    expect(where(parseManifest(wide))).toEqual(['@null:null']);
  });

  it('reports YAML syntax errors with their line and column instead of throwing', () => {
    const result = parseManifest('driver:\n  type: os\nstages: [test\njobs:\n  - stage: test\n');
    expect(where(result)).toEqual(['@4:1']);
    expect(messageAt(result, '')).toMatch(/^invalid YAML: flow sequence/);
    expect(where(parseManifest('driver: {type: os}\n\tstages: [test]\n'))).toEqual(['@2:1']);
  });

  it('reports a duplicate top-level key as a YAML problem at the second key', () => {
    const result = parseManifest(`${MINIMAL}stages: [build]\n`);
    expect(where(result)).toEqual(['@4:1']);
    expect(messageAt(result, '')).toBe('invalid YAML: map keys must be unique');
  });

  it('refuses an alias bomb instead of expanding it', () => {
    const commands = `[${Array.from({ length: 20_000 }, () => 'a').join(',')}]`;
    const jobs = ['&j {stage: s, commands: *x}', ...Array.from({ length: 30 }, () => '*j')].join(', ');
    const text = `driver: {type: os}\nstages: &x ${commands}\njobs: [${jobs}]\n`;
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_MANIFEST_BYTES);
    // At the alias that was being expanded when the budget ran out: `*x` inside the anchored job.
    expect(problemsOf(parseManifest(text))).toEqual([
      {
        path: '',
        line: 3,
        column: 32,
        message: 'the manifest expands to more than 200000 values through aliases',
      },
    ]);
  });

  it('reads a billion laughs only as deep as a manifest goes, so its aliases expand to nothing', () => {
    const levels = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 10; i++)
      levels.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const text = `${levels.join('\n')}\ndriver: {type: os}\nstages: [test]\njobs: [{stage: test, commands: *a9}]\n`;
    expect(Buffer.byteLength(text)).toBeLessThan(1024);
    const result = parseManifest(text);
    expect(messageAt(result, 'jobs[0].commands[0]')).toBe('must be a string, got a list');
    expect(messageAt(result, 'a9')).toMatch(/^unknown key "a9"/);
  });
});

describe('parseManifest on hostile manifests', () => {
  const nested = (open: string, close: string, depth: number) => open.repeat(depth) + close.repeat(depth);
  const tooDeep = `the manifest is nested deeper than ${MAX_NESTING} levels of lists and maps`;

  it('refuses 10,000 levels of [[[…]]] at the list that passes the limit, without overflowing the stack', () => {
    expect(problemsOf(parseManifest(nested('[', ']', 10_000)))).toEqual([
      { path: '', line: 1, column: MAX_NESTING + 1, message: tooDeep },
    ]);
    expect(where(parseManifest(nested('{a: ', '}', 10_000)))).toEqual([`@1:${4 * MAX_NESTING + 1}`]);
    // Unclosed, and mixed with block lists: refused all the same.
    expect(where(parseManifest('['.repeat(100_000)))).toEqual([`@1:${MAX_NESTING + 1}`]);
    expect(problemsOf(parseManifest('- ['.repeat(50_000))).map((p) => p.message)).toEqual([tooDeep]);
  });

  it('refuses deep block nesting: indented maps, and compact lists of lists two bytes a level', () => {
    const indented = Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}a:`).join('\n');
    expect(where(parseManifest(indented))).toEqual([`@${MAX_NESTING + 1}:${MAX_NESTING + 1}`]);
    expect(where(parseManifest(`${'- '.repeat(100_000)}x`))).toEqual([`@1:${2 * MAX_NESTING + 1}`]);
    expect(where(parseManifest(`${'? '.repeat(100_000)}x`))).toEqual([`@1:${2 * MAX_NESTING + 1}`]);
  });

  it('accepts nesting up to the limit, so the limit is on depth and not on brackets', () => {
    // The root map, jobs, a job, and its commands are four levels; 60 more lists is 64.
    const commands = nested('[', ']', MAX_NESTING - 3);
    const text = `driver: {type: os}\nstages: [test]\njobs: [{stage: test, commands: ${commands}}]\n`;
    expect(messageAt(parseManifest(text), 'jobs[0].commands[0]')).toBe('must be a string, got a list');
    const deeper = text.replace(commands, nested('[', ']', MAX_NESTING - 2));
    expect(problemsOf(parseManifest(deeper))).toEqual([{ path: '', line: 3, column: 93, message: tooDeep }]);
    expect(manifestOf(parseManifest(`${MINIMAL}\nenv: ["A=${'['.repeat(1000)}"]\n`)).env).toHaveLength(1);
  });

  it('finds duplicate keys among 20,000 in one pass, at each repeated key', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `  k${i % 10_000}: 1`).join('\n');
    const result = parseManifest(`${MINIMAL}\nextra:\n${keys}\n`);
    const problems = problemsOf(result);
    expect(problems[0]).toEqual({
      path: '',
      line: 10_006,
      column: 3,
      message: 'invalid YAML: map keys must be unique',
    });
    expect(problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(problems[MAX_PROBLEMS]).toEqual({
      path: '',
      line: null,
      column: null,
      message: `${10_000 - MAX_PROBLEMS} more problems not shown`,
    });
  });

  it('returns at most MAX_PROBLEMS problems and says how many more there are', () => {
    const jobs = Array.from({ length: 300 }, () => '  - {stage: nope, commands: [make]}').join('\n');
    const problems = problemsOf(parseManifest(`driver: {type: os}\nstages: [test]\njobs:\n${jobs}\n`));
    expect(problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(problems.at(-1)?.message).toBe('200 more problems not shown');
    expect(problems[0]?.line).toBe(4);
  });

  it('refuses a second YAML document at its start', () => {
    expect(problemsOf(parseManifest(`${MINIMAL}\n---\n${MINIMAL}\n`))).toEqual([
      {
        path: '',
        line: 5,
        column: 1,
        message: 'invalid YAML: a manifest is one document; found a second one',
      },
    ]);
  });
});

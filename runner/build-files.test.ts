import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available, ensureTestImage } from '../test/testkit/services.ts';
import { runnerBaseEnv } from './config.ts';
import type { EnvironmentFile, SkippedFile } from './drivers/driver.ts';
import { createOsDriver } from './drivers/os/os-driver.ts';
import { runOffline } from './offline.ts';

async function collect(files: AsyncIterable<EnvironmentFile | SkippedFile>) {
  const out: Record<string, string> = {};
  for await (const file of files) {
    if ('skipped' in file) {
      out[file.path] = `skipped, ${file.skipped}`;
      continue;
    }
    let text = '';
    for await (const chunk of file.content) text += chunk.toString();
    out[file.path] = text;
  }
  return out;
}

async function* bytes(text: string) {
  yield Buffer.from(text);
}

describe('files of the os driver', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-os-files-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('puts files under the workspace, finds them by glob, and never follows a link out of it', async () => {
    const driver = createOsDriver({ baseEnv: runnerBaseEnv(), workspaceDir: dir });
    const session = await driver.create({ env: {}, signal: new AbortController().signal }, {});
    try {
      await session.putFile!('conf/app.env', bytes('A=1\n'), 4);
      // An absolute path stands for the same path under the workspace.
      await session.putFile!('/etc/placed.txt', bytes('abs\n'), 4);
      await expect(session.putFile!('../outside.txt', bytes('x'), 1)).rejects.toThrow(
        '../outside.txt resolves outside the workspace',
      );
      const run = await session.run({
        name: 'make',
        script:
          'ln -s /etc/hostname link.txt\nmkdir -p out/deep\necho a > out/a.txt\necho b > out/deep/b.txt\n',
        env: {},
        signal: new AbortController().signal,
        output: () => {},
      });
      expect(run.exitCode).toBe(0);
      expect(await collect(session.files!('**/*.txt'))).toEqual({
        'etc/placed.txt': 'abs\n',
        'link.txt': 'skipped, it resolves outside the workspace',
        'out/a.txt': 'a\n',
        'out/deep/b.txt': 'b\n',
      });
      expect(await collect(session.files!('conf/app.env'))).toEqual({ 'conf/app.env': 'A=1\n' });
      expect(await collect(session.files!('link.txt'))).toEqual({
        'link.txt': 'skipped, it resolves outside the workspace',
      });
      expect(await collect(session.files!('nothing/*'))).toEqual({});
    } finally {
      await session.destroy();
    }
  });
});

/** Runs `kiln run` in `dir` with these arguments; returns its exit code and output. */
async function offline(dir: string, argv: string[]) {
  let out = '';
  const write = (text: string) => {
    out += text;
  };
  const code = await runOffline(
    argv,
    { stdout: { write }, stderr: { write } },
    { cwd: dir, handleSigint: false },
  );
  return { code, out };
}

describe('the offline runner with objects and artifacts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-offline-files-'));
    await mkdir(join(dir, 'objs'));
    await writeFile(join(dir, 'objs', 'secret.env'), 'TOKEN=abc\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads objects from --objects and writes artifacts to --artifacts', async () => {
    await writeFile(
      join(dir, 'os.yml'),
      [
        'driver: {type: os}',
        'objects: [secret.env => cfg/secret.env, absent.env]',
        'stages: [make, fail]',
        'allow_failures: [fail]',
        'jobs:',
        '  - {stage: make, commands: [cat cfg/secret.env, mkdir -p bin, echo tool > bin/tool, printf no-newline], artifacts: ["bin/* => linux-*"]}',
        '  - {stage: fail, commands: [echo partial > partial.log, exit 1], artifacts: [partial.log]}',
        '',
      ].join('\n'),
    );
    const { code, out } = await offline(dir, ['os.yml', '--objects', 'objs', '--artifacts', 'out']);
    expect(out).toContain('TOKEN=abc');
    expect(out).toContain('kiln: object "absent.env" not found, skipped');
    expect(out).toContain('\nno-newline\nkiln: artifact "linux-tool" collected from bin/tool (5 bytes)\n');
    expect(out).toContain('==> build PASSED_WITH_FAILURES');
    expect(code).toBe(0);
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(['linux-tool', 'partial.log']);
    expect(await readFile(join(dir, 'out', 'linux-tool'), 'utf8')).toBe('tool\n');
  });

  it('refuses an empty --artifacts', async () => {
    const { code, out } = await offline(dir, ['os.yml', '--artifacts', ' ']);
    expect(code).toBe(2);
    expect(out).toContain('--artifacts needs a directory');
  });

  describe.runIf(available('docker'))('with the docker driver', () => {
    it('places objects in the container and writes its artifacts', async () => {
      const image = await ensureTestImage();
      await writeFile(
        join(dir, 'docker.yml'),
        [
          `driver: {type: docker, image: "${image}", workspace: /src}`,
          'objects: [secret.env => /src/cfg/secret.env]',
          'stages: [make]',
          'jobs:',
          '  - {stage: make, commands: [cp cfg/secret.env copy.env, mkdir -p d/e, echo deep > d/e/f.txt], artifacts: [copy.env, "d/**/*.txt"]}',
          '',
        ].join('\n'),
      );
      const { code, out } = await offline(dir, ['docker.yml', '--objects', 'objs', '--artifacts', 'dout']);
      expect(out).toContain('==> build PASSED');
      expect(code).toBe(0);
      expect(await readFile(join(dir, 'dout', 'copy.env'), 'utf8')).toBe('TOKEN=abc\n');
      expect(await readFile(join(dir, 'dout', 'f.txt'), 'utf8')).toBe('deep\n');
    });
  });
});

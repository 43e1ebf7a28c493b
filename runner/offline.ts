/**
 * `kiln run [manifest] [--stage NAME] [--objects DIR] [--artifacts DIR]`: runs a manifest on this
 * machine with the same executor and drivers as a runner, without a server (Djinn's `djinn`). There
 * are no stored variables or keys offline: only the manifest's `env` applies. The manifest's objects
 * are read from `--objects DIR` (`DIR/<name>`) and the jobs' artifacts written to `--artifacts DIR`
 * (`DIR/<name>`); both default to the working directory, as Djinn's `-objects` and `-artifacts` do.
 *
 * The log is printed live, with `==> <stage> / <job>` before each job and its status after it.
 * `--stage NAME` runs only that stage (plus the `setup` stage that clones the sources). Ctrl-C
 * kills the build (KILLED).
 *
 * Exit status: 0 when the build PASSED or PASSED_WITH_FAILURES (the failures were allowed by the
 * manifest), 1 for any other outcome (FAILED, KILLED, TIMED_OUT), 2 when the manifest or the
 * arguments are invalid.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { directoryArtifactSink, directoryObjectSource } from './build-files.ts';
import { runnerBaseEnv, workspaceDirFrom } from './config.ts';
import type { RunnerEvent } from './contract/messages.ts';
import { AVAILABLE_DRIVERS, createDrivers, unavailableDriver } from './drivers/registry.ts';
import { executeBuild } from './executor.ts';
import { toBuildJob } from './manifest/build-job.ts';
import { parseManifest } from './manifest/manifest.ts';
import { planBuild, SETUP_STAGE } from './manifest/plan.ts';
import type { ManifestProblem } from './manifest/types.ts';

export interface OfflineIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export interface OfflineOptions {
  /** Where a relative manifest path is looked up; default: the process's working directory. */
  cwd?: string;
  /** Host variables jobs inherit; default: PATH, HOME and LANG of this process. */
  baseEnv?: Record<string, string>;
  workspaceDir?: string;
  /** Aborting it kills the build, as Ctrl-C does. */
  signal?: AbortSignal;
  /** Listen for SIGINT (Ctrl-C); default true. */
  handleSigint?: boolean;
}

export const DEFAULT_MANIFEST = '.kiln.yml';

const USAGE =
  'usage: kiln run [manifest] [--stage NAME] [--objects DIR] [--artifacts DIR]\n' +
  '  (default manifest: .kiln.yml; objects are read from and artifacts written to the working directory)\n';

export function formatProblem(file: string, problem: ManifestProblem): string {
  const where = problem.line === null ? file : `${file}:${problem.line}:${problem.column ?? 1}`;
  return problem.path === ''
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.path}: ${problem.message}`;
}

export async function runOffline(
  argv: string[],
  io: OfflineIo = { stdout: process.stdout, stderr: process.stderr },
  opts: OfflineOptions = {},
): Promise<number> {
  let args: ReturnType<typeof parseCli>;
  try {
    args = parseCli(argv);
  } catch (error) {
    io.stderr.write(`kiln run: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    io.stdout.write(USAGE);
    return 0;
  }

  const file = args.manifest ?? DEFAULT_MANIFEST;
  let text: string;
  try {
    text = await readFile(resolve(opts.cwd ?? process.cwd(), file), 'utf8');
  } catch (error) {
    io.stderr.write(`kiln run: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  const parsed = parseManifest(text, { drivers: AVAILABLE_DRIVERS });
  if (!parsed.ok) {
    for (const problem of parsed.problems) io.stderr.write(`${formatProblem(file, problem)}\n`);
    return 2;
  }
  const manifest = parsed.manifest;

  let stages = planBuild(manifest).stages;
  if (args.stage !== undefined) {
    const wanted = args.stage;
    if (!manifest.stages.includes(wanted)) {
      io.stderr.write(
        `kiln run: unknown stage "${wanted}"; the manifest's stages are: ${manifest.stages.join(', ')}\n`,
      );
      return 2;
    }
    const setup = manifest.sources.length > 0 ? SETUP_STAGE : null;
    stages = stages.filter((stage, i) => stage.name === wanted || (i === 0 && stage.name === setup));
  }

  const names = new Map<string, string>();
  const job = toBuildJob(
    manifest,
    { stages },
    {
      buildId: 'offline',
      number: 0,
      jobId: (stage, name, index) => {
        const id = `job-${index + 1}`;
        names.set(id, `${stage} / ${name}`);
        return id;
      },
      submittedAt: new Date(),
    },
  );

  let unavailable: string | undefined;
  const drivers = createDrivers([job.driver.type], {
    baseEnv: opts.baseEnv ?? runnerBaseEnv(),
    workspaceDir: opts.workspaceDir ?? workspaceDirFrom(),
    // No runnerName: containers get a name unique to this process, and no other run's are touched.
    onUnavailable: (_name, reason) => {
      unavailable = reason;
    },
  });
  const driver = drivers.get(job.driver.type) ?? unavailableDriver(job.driver.type, unavailable);

  const print = (event: RunnerEvent): void => {
    switch (event.type) {
      case 'job.started':
        io.stdout.write(`==> ${names.get(event.jobId)}\n`);
        break;
      case 'log.chunk':
        io.stdout.write(`${event.lines.join('\n')}\n`);
        break;
      case 'job.finished': {
        const exit = event.exitCode === null ? '' : ` (exit code ${event.exitCode})`;
        io.stdout.write(`==> ${names.get(event.jobId)}: ${event.status}${exit}\n`);
        break;
      }
      case 'build.finished':
        io.stdout.write(`==> build ${event.status}${event.reason ? `: ${event.reason}` : ''}\n`);
        break;
      default:
        break;
    }
  };

  const cwd = opts.cwd ?? process.cwd();
  const controller = new AbortController();
  const onInterrupt = () => controller.abort('killed');
  if (opts.signal?.aborted) onInterrupt();
  opts.signal?.addEventListener('abort', onInterrupt, { once: true });
  const handleSigint = opts.handleSigint ?? true;
  if (handleSigint) process.on('SIGINT', onInterrupt);
  try {
    const result = await executeBuild({
      job,
      attempt: 1,
      lease: 'offline',
      driver,
      emit: async (events) => events.forEach(print),
      signal: controller.signal,
      runnerName: 'offline',
      objects: directoryObjectSource(resolve(cwd, args.objects ?? '.'), manifest.objects),
      artifacts: directoryArtifactSink(resolve(cwd, args.artifacts ?? '.')),
    });
    return result.status === 'PASSED' || result.status === 'PASSED_WITH_FAILURES' ? 0 : 1;
  } finally {
    opts.signal?.removeEventListener('abort', onInterrupt);
    if (handleSigint) process.off('SIGINT', onInterrupt);
  }
}

function parseCli(argv: string[]): {
  manifest?: string;
  stage?: string;
  objects?: string;
  artifacts?: string;
  help: boolean;
} {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      stage: { type: 'string' },
      objects: { type: 'string' },
      artifacts: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 1) throw new Error(`expected at most one manifest, got ${positionals.join(' ')}`);
  if (values.stage !== undefined && values.stage.trim() === '') throw new Error('--stage needs a stage name');
  for (const flag of ['objects', 'artifacts'] as const) {
    if (values[flag] !== undefined && values[flag].trim() === '')
      throw new Error(`--${flag} needs a directory`);
  }
  return {
    manifest: positionals[0],
    stage: values.stage,
    objects: values.objects,
    artifacts: values.artifacts,
    help: values.help ?? false,
  };
}

/**
 * The runner's configuration, parsed once from the environment (nothing else in runner/ reads it).
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | KILN_AMQP_URL | empty: in-process broker | RabbitMQ URL; required by `kiln runner` (not `inProcess`) |
 * | KILN_RUNNER_NAME | `<hostname>-<pid>` | name in heartbeats and build.started |
 * | KILN_RUNNER_QUEUES | `default` | comma-separated queues to take builds from |
 * | KILN_RUNNER_CONCURRENCY | available parallelism | builds run at once |
 * | KILN_RUNNER_DRAIN_SECONDS | 30 | on SIGTERM, how long running builds may finish before they are handed back |
 * | KILN_DRIVERS | `os,docker` | driver types this runner offers (docker only when its engine answers) |
 * | KILN_WORKSPACE_DIR | the system's temporary directory | where the os driver makes workspaces |
 * | KILN_DOCKER_HOST | DOCKER_HOST, else `unix:///var/run/docker.sock` | the docker driver's engine: `unix:///path`, `/path` or `tcp://host:port` |
 * | KILN_DOCKER_MEMORY | `2g` | memory limit of each job container (`b`, `k`, `m`, `g` suffixes; 0: none) |
 * | KILN_DOCKER_CPUS | available parallelism | CPUs each job container may use, e.g. `1.5` (0: no limit) |
 * | KILN_DOCKER_PIDS | 1024 | processes each job container may have (0: no limit) |
 * | KILN_DOCKER_PULL_SECONDS | 240 | how long pulling a missing image may take before the build fails |
 * | KILN_METRICS_PORT | none | serve Prometheus `GET /metrics` on this port (runner/metrics.ts) |
 * | KILN_METRICS_HOST | `127.0.0.1` | the address that port listens on (`0.0.0.0` for a scraper elsewhere) |
 * | KILN_METRICS_TOKEN | none | the bearer token `/metrics` asks for |
 *
 * KILN_AMQP_URL, KILN_BROKER_PREFIX, KILN_DELIVERY_LIMIT and KILN_LOG_LEVEL are read as by `kiln serve`
 * (contract/settings.ts).
 *
 * Jobs of the os driver inherit only PATH and LANG from the runner's environment (`baseEnv`); each build
 * gets its own HOME next to its workspace.
 */
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { blankToUndefined, sharedSettings } from './contract/settings.ts';
import type { DockerSettings } from './drivers/docker/docker-driver.ts';
import { DRIVER_TYPES } from './manifest/types.ts';

export interface RunnerConfig {
  amqpUrl: string;
  name: string;
  queues: string[];
  concurrency: number;
  drainTimeoutMs: number;
  /** Where `GET /metrics` listens; null: nowhere. */
  metrics: { port: number; host: string; token: string | null } | null;
  drivers: string[];
  brokerPrefix: string;
  /** Must be the same on every process: RabbitMQ refuses a queue declared with another limit. */
  deliveryLimit: number;
  logLevel: string;
  workspaceDir: string;
  /** The variables os-driver jobs inherit from the runner. */
  baseEnv: Record<string, string>;
  /** The docker driver's engine and the resource limits of its job containers. */
  docker: DockerSettings;
}

export type RunnerConfigResult = { ok: true; config: RunnerConfig } | { ok: false; problems: string[] };

const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const list = (name: string, fallback: string) =>
  z.preprocess(
    blankToUndefined,
    z
      .string()
      .default(fallback)
      .transform((text) => [...new Set(text.split(',').map((s) => s.trim()))])
      .refine((items) => items.every((item) => item !== ''), `${name} has an empty entry`),
  );

const positiveInt = (fallback: number) =>
  z.preprocess(blankToUndefined, z.coerce.number().int().positive().default(fallback));

const DOCKER_HOST = /^(unix:\/\/\/|\/|tcp:\/\/[^/]+:\d+\/?$)/;
const SIZE = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i;
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

const dockerSchema = z.object({
  KILN_DOCKER_HOST: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(DOCKER_HOST, 'must be unix:///path/to/docker.sock, /path/to/docker.sock or tcp://host:port')
      .optional(),
  ),
  DOCKER_HOST: z.preprocess(blankToUndefined, z.string().optional()),
  KILN_DOCKER_MEMORY: z.preprocess(
    blankToUndefined,
    z
      .string()
      .default('2g')
      .transform((text, ctx) => {
        const match = SIZE.exec(text);
        if (!match) {
          ctx.addIssue({ code: 'custom', message: 'must be a size like 512m or 2g (0: no limit)' });
          return z.NEVER;
        }
        return Math.round(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!);
      })
      // Docker refuses limits under 6 MiB; a smaller value is a typo (a missing unit).
      .refine((bytes) => bytes === 0 || bytes >= 6 * 1024 ** 2, 'must be 0 or at least 6m'),
  ),
  KILN_DOCKER_CPUS: z.preprocess(blankToUndefined, z.coerce.number().min(0).default(availableParallelism())),
  KILN_DOCKER_PIDS: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).default(1024)),
  KILN_DOCKER_PULL_SECONDS: z.preprocess(blankToUndefined, z.coerce.number().positive().default(240)),
});

const schema = dockerSchema.extend({
  ...sharedSettings,
  KILN_RUNNER_NAME: z.preprocess(
    blankToUndefined,
    z.string().max(200).default(`${hostname()}-${process.pid}`),
  ),
  KILN_RUNNER_QUEUES: list('KILN_RUNNER_QUEUES', 'default').refine(
    (queues) => queues.every((q) => q === '' || QUEUE_NAME.test(q)),
    'queue names are letters, digits, `_`, `.` and `-`',
  ),
  KILN_RUNNER_CONCURRENCY: positiveInt(availableParallelism()),
  KILN_RUNNER_DRAIN_SECONDS: z.preprocess(blankToUndefined, z.coerce.number().min(0).default(30)),
  KILN_DRIVERS: list('KILN_DRIVERS', 'os,docker').refine(
    (drivers) => drivers.every((d) => d === '' || (DRIVER_TYPES as readonly string[]).includes(d)),
    `driver types are ${DRIVER_TYPES.join(', ')}`,
  ),
  KILN_WORKSPACE_DIR: z.preprocess(blankToUndefined, z.string().default(tmpdir())),
  KILN_METRICS_PORT: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).max(65535).optional()),
  KILN_METRICS_HOST: z.preprocess(blankToUndefined, z.string().default('127.0.0.1')),
  KILN_METRICS_TOKEN: z.preprocess(blankToUndefined, z.string().optional()),
});

/** The host variables a job inherits: a minimal, predictable environment. */
export function runnerBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    PATH: env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: env.HOME || tmpdir(),
    LANG: env.LANG || 'C.UTF-8',
  };
}

function dockerSettings(data: z.infer<typeof dockerSchema>): DockerSettings {
  // DOCKER_HOST is the Docker CLI's own variable: honour it unless kiln's is set, but only in a form
  // the driver understands (ssh:// and friends are not).
  const fromCli = data.DOCKER_HOST && DOCKER_HOST.test(data.DOCKER_HOST) ? data.DOCKER_HOST : undefined;
  return {
    host: data.KILN_DOCKER_HOST ?? fromCli ?? 'unix:///var/run/docker.sock',
    memoryBytes: data.KILN_DOCKER_MEMORY,
    nanoCpus: Math.round(data.KILN_DOCKER_CPUS * 1e9),
    pidsLimit: data.KILN_DOCKER_PIDS,
    pullTimeoutMs: Math.round(data.KILN_DOCKER_PULL_SECONDS * 1000),
  };
}

/** The docker driver's settings alone, for the offline runner. */
export function dockerSettingsFrom(
  env: NodeJS.ProcessEnv = process.env,
): { ok: true; settings: DockerSettings } | { ok: false; problems: string[] } {
  const parsed = dockerSchema.safeParse(env);
  if (parsed.success) return { ok: true, settings: dockerSettings(parsed.data) };
  return {
    ok: false,
    problems: parsed.error.issues.map(
      (issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`,
    ),
  };
}

/** KILN_WORKSPACE_DIR for the offline runner, which needs nothing else of the runner's config. */
export function workspaceDirFrom(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.KILN_WORKSPACE_DIR?.trim() || tmpdir());
}

export interface RunnerConfigOptions {
  /**
   * True for the runner inside `kiln start`, which may share the in-process broker. Otherwise (the
   * `kiln runner` process) KILN_AMQP_URL is required: an in-process broker would reach no api.
   */
  inProcess?: boolean;
}

export function loadRunnerConfig(
  env: NodeJS.ProcessEnv = process.env,
  opts: RunnerConfigOptions = {},
): RunnerConfigResult {
  const parsed = schema.safeParse(env);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`);
  if (
    !opts.inProcess &&
    !parsed.data?.KILN_AMQP_URL &&
    !problems.some((p) => p.startsWith('KILN_AMQP_URL'))
  ) {
    problems.push(
      'KILN_AMQP_URL: required by `kiln runner`, which reaches the api through RabbitMQ only ' +
        '(without it, run the in-process runner of `kiln start` / `npm start` instead)',
    );
  }
  if (!parsed.success || problems.length > 0) return { ok: false, problems };
  const data = parsed.data;
  return {
    ok: true,
    config: {
      amqpUrl: data.KILN_AMQP_URL ?? '',
      name: data.KILN_RUNNER_NAME,
      queues: data.KILN_RUNNER_QUEUES,
      concurrency: data.KILN_RUNNER_CONCURRENCY,
      drainTimeoutMs: Math.round(data.KILN_RUNNER_DRAIN_SECONDS * 1000),
      metrics:
        data.KILN_METRICS_PORT === undefined
          ? null
          : {
              port: data.KILN_METRICS_PORT,
              host: data.KILN_METRICS_HOST,
              token: data.KILN_METRICS_TOKEN ?? null,
            },
      drivers: data.KILN_DRIVERS,
      brokerPrefix: data.KILN_BROKER_PREFIX,
      deliveryLimit: data.KILN_DELIVERY_LIMIT,
      logLevel: data.KILN_LOG_LEVEL,
      workspaceDir: resolve(data.KILN_WORKSPACE_DIR),
      baseEnv: runnerBaseEnv(env),
      docker: dockerSettings(data),
    },
  };
}

/** For entry points: the config, or every problem printed to stderr and exit 1. */
export function runnerConfigOrExit(
  env: NodeJS.ProcessEnv = process.env,
  opts: RunnerConfigOptions = {},
): RunnerConfig {
  const result = loadRunnerConfig(env, opts);
  if (result.ok) return result.config;
  process.stderr.write(formatConfigProblems(result.problems));
  process.exit(1);
}

export function formatConfigProblems(problems: string[]): string {
  return `kiln runner: invalid configuration\n${problems.map((problem) => `  ${problem}\n`).join('')}`;
}

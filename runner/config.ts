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
 * | KILN_DRIVERS | `os` | comma-separated driver types this runner offers |
 * | KILN_BROKER_PREFIX | `kiln` | prefix of every exchange and queue |
 * | KILN_DELIVERY_LIMIT | 5 | deliveries of a build before it is dead-lettered; the same on every process |
 * | KILN_LOG_LEVEL | `info` | pino level |
 * | KILN_WORKSPACE_DIR | the system's temporary directory | where the os driver makes workspaces |
 *
 * Jobs of the os driver inherit only PATH, HOME and LANG from the runner's environment (`baseEnv`).
 */
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { DRIVER_TYPES } from './manifest/types.ts';

export interface RunnerConfig {
  amqpUrl: string;
  name: string;
  queues: string[];
  concurrency: number;
  drainTimeoutMs: number;
  drivers: string[];
  brokerPrefix: string;
  /** Must be the same on every process: RabbitMQ refuses a queue declared with another limit. */
  deliveryLimit: number;
  logLevel: string;
  workspaceDir: string;
  /** The variables os-driver jobs inherit from the runner. */
  baseEnv: Record<string, string>;
}

export type RunnerConfigResult = { ok: true; config: RunnerConfig } | { ok: false; problems: string[] };

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const blankToUndefined = (value: unknown) =>
  typeof value === 'string' && value.trim() === ''
    ? undefined
    : typeof value === 'string'
      ? value.trim()
      : value;

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

const schema = z.object({
  KILN_AMQP_URL: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^amqps?:\/\//, 'must start with amqp:// or amqps://')
      .optional(),
  ),
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
  KILN_DRIVERS: list('KILN_DRIVERS', 'os').refine(
    (drivers) => drivers.every((d) => d === '' || (DRIVER_TYPES as readonly string[]).includes(d)),
    `driver types are ${DRIVER_TYPES.join(', ')}`,
  ),
  KILN_BROKER_PREFIX: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, `_`, `.` and `-` only')
      .default('kiln'),
  ),
  KILN_LOG_LEVEL: z.preprocess(blankToUndefined, z.enum(LOG_LEVELS).default('info')),
  KILN_DELIVERY_LIMIT: z.preprocess(blankToUndefined, z.coerce.number().int().min(1).max(100).default(5)),
  KILN_WORKSPACE_DIR: z.preprocess(blankToUndefined, z.string().default(tmpdir())),
});

/** The host variables a job inherits: a minimal, predictable environment. */
export function runnerBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    PATH: env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: env.HOME || tmpdir(),
    LANG: env.LANG || 'C.UTF-8',
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
      drivers: data.KILN_DRIVERS,
      brokerPrefix: data.KILN_BROKER_PREFIX,
      deliveryLimit: data.KILN_DELIVERY_LIMIT,
      logLevel: data.KILN_LOG_LEVEL,
      workspaceDir: resolve(data.KILN_WORKSPACE_DIR),
      baseEnv: runnerBaseEnv(env),
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

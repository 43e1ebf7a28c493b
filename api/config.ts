/**
 * The `serve` process's configuration: the environment, parsed once with zod. Nothing else in api/
 * reads process.env. Every variable has a default that works on one machine. The broker's settings and
 * the log level are read as by the runner (runner/contract/settings.ts).
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { sharedSettings } from '../runner/contract/settings.ts';

const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const ApiConfigSchema = z.object({
  ...sharedSettings,
  KILN_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  KILN_HOST: z.string().default('127.0.0.1'),
  KILN_DATA_DIR: z.string().default('./.kiln'),
  KILN_DATABASE_URL: z.string().default(''),
  KILN_BOOTSTRAP_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  KILN_PUBLIC_URL: z.string().url().optional(),
  KILN_DRIVERS: csv.default(['os', 'docker']),
  KILN_SECRET_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  KILN_SIGNUP: z.enum(['true', 'false']).default('true'),
  KILN_RATE_LIMIT: z.coerce.number().int().min(0).default(1200),
  KILN_SESSION_TTL_HOURS: z.coerce.number().positive().default(168),
  KILN_FILES_DIR: z.string().optional(),
  KILN_OBJECT_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(5 * 1024 * 1024),
  KILN_ARTIFACT_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(50 * 1024 * 1024),
  KILN_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  KILN_POLL_MIN_SECONDS: z.coerce.number().int().positive().default(10),
  KILN_SCHEDULE_MIN_SECONDS: z.coerce.number().int().positive().default(60),
  KILN_ALLOW_PRIVATE_URLS: z.enum(['true', 'false']).default('false'),
  KILN_SMTP_URL: z
    .string()
    .default('')
    .refine((v) => v === '' || /^smtps?:\/\//.test(v), 'smtp://user:pass@host:port or smtps://…'),
  KILN_MAIL_FROM: z.string().default('Kiln <kiln@localhost>'),
  KILN_METRICS_TOKEN: z.string().default(''),
  KILN_POLL_TIMEOUT_SECONDS: z.coerce.number().int().positive().default(60),
});

export interface ApiConfig {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  amqpUrl: string;
  brokerPrefix: string;
  bootstrapToken: string | undefined;
  publicUrl: string | undefined;
  drivers: string[];
  logLevel: string;
  deliveryLimit: number;
  /** Encrypts secrets at rest; empty: a key file generated in dataDir. */
  secretKey: string | undefined;
  signup: boolean;
  /** Requests per minute per token (or anonymous address); 0: unlimited. */
  rateLimit: number;
  sessionTtlMs: number;
  /** Where objects and artifacts are stored (content-addressed); default `<dataDir>/files`. */
  filesDir: string;
  /** Largest object upload. */
  objectMaxBytes: number;
  /** Largest artifact; runners truncate larger files to it. */
  artifactMaxBytes: number;
  /** Largest GraphQL request body (multipart uploads have objectMaxBytes instead). */
  maxBodyBytes: number;
  /** The smallest poll interval a repository may have, in seconds. */
  pollMinSeconds: number;
  /** KILN_SCHEDULE_MIN_SECONDS: the shortest interval a cron schedule may fire at. */
  scheduleMinSeconds: number;
  /** KILN_ALLOW_PRIVATE_URLS: outgoing webhooks may reach loopback and private addresses. */
  allowPrivateUrls: boolean;
  /** KILN_SMTP_URL: where mail goes out; empty: no mail. */
  smtpUrl: string;
  /** KILN_MAIL_FROM: the From of every mail. */
  mailFrom: string;
  /** KILN_METRICS_TOKEN: the bearer token /metrics asks for; empty: none. */
  metricsToken: string | null;
  /** How long one check of a repository's remote may take before it is stopped, in ms. */
  pollTimeoutMs: number;
}

export type ConfigResult = { ok: true; config: ApiConfig } | { ok: false; problems: string[] };

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ConfigResult {
  // An empty variable (`KILN_DATABASE_URL=` in an env file) means "use the default".
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''),
  );
  const parsed = ApiConfigSchema.safeParse(present);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    };
  }
  const e = parsed.data;
  return {
    ok: true,
    config: {
      port: e.KILN_PORT,
      host: e.KILN_HOST,
      dataDir: path.resolve(e.KILN_DATA_DIR),
      databaseUrl: e.KILN_DATABASE_URL,
      amqpUrl: e.KILN_AMQP_URL ?? '',
      brokerPrefix: e.KILN_BROKER_PREFIX,
      bootstrapToken: e.KILN_BOOTSTRAP_TOKEN,
      publicUrl: e.KILN_PUBLIC_URL,
      drivers: e.KILN_DRIVERS,
      logLevel: e.KILN_LOG_LEVEL,
      deliveryLimit: e.KILN_DELIVERY_LIMIT,
      secretKey: e.KILN_SECRET_KEY,
      signup: e.KILN_SIGNUP === 'true',
      rateLimit: e.KILN_RATE_LIMIT,
      sessionTtlMs: Math.round(e.KILN_SESSION_TTL_HOURS * 3_600_000),
      filesDir: path.resolve(e.KILN_FILES_DIR ?? path.join(e.KILN_DATA_DIR, 'files')),
      objectMaxBytes: e.KILN_OBJECT_MAX_BYTES,
      artifactMaxBytes: e.KILN_ARTIFACT_MAX_BYTES,
      maxBodyBytes: e.KILN_MAX_BODY_BYTES,
      pollMinSeconds: e.KILN_POLL_MIN_SECONDS,
      scheduleMinSeconds: e.KILN_SCHEDULE_MIN_SECONDS,
      allowPrivateUrls: e.KILN_ALLOW_PRIVATE_URLS === 'true',
      smtpUrl: e.KILN_SMTP_URL,
      mailFrom: e.KILN_MAIL_FROM,
      metricsToken: e.KILN_METRICS_TOKEN || null,
      pollTimeoutMs: e.KILN_POLL_TIMEOUT_SECONDS * 1000,
    },
  };
}

/** For entry points: the config, or every problem printed and exit 1. */
export function apiConfigOrExit(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const result = loadApiConfig(env);
  if (result.ok) return result.config;
  console.error(`kiln: invalid configuration:\n${result.problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}

/**
 * The environment of the git commands serve runs for repositories: a path and a home from its own,
 * no terminal prompt (a remote asking for a password fails at once instead of hanging), and ssh in
 * batch mode, trusting a host's key on first use.
 */
export function gitEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    PATH: env.PATH || '/usr/local/bin:/usr/bin:/bin',
    HOME: env.HOME || os.tmpdir(),
    LANG: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
  };
}

/**
 * The settings both processes read alike: `kiln serve` (api/config.ts) and `kiln runner`
 * (runner/config.ts) meet on the same broker, so these variables must mean the same on both, with
 * the same defaults and the same words for a bad value. Each config.ts spreads this fragment into
 * its own zod schema of the environment; only those files read `process.env`.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | KILN_AMQP_URL | empty: in-process broker | RabbitMQ URL, `amqp://` or `amqps://` |
 * | KILN_BROKER_PREFIX | `kiln` | prefix of every exchange and queue |
 * | KILN_DELIVERY_LIMIT | 5 | deliveries of a build before it is dead-lettered; RabbitMQ refuses a queue declared again with another limit |
 * | KILN_LOG_LEVEL | `info` | pino level |
 */
import { z } from 'zod';
import { DEFAULT_DELIVERY_LIMIT } from './broker.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A blank variable (`KILN_AMQP_URL=` in an env file) is unset: it takes the default. Others are trimmed. */
export const blankToUndefined = (value: unknown) =>
  typeof value === 'string' && value.trim() === ''
    ? undefined
    : typeof value === 'string'
      ? value.trim()
      : value;

export const sharedSettings = {
  KILN_AMQP_URL: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^amqps?:\/\//, 'must start with amqp:// or amqps://')
      .optional(),
  ),
  KILN_BROKER_PREFIX: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, `_`, `.` and `-` only')
      .default('kiln'),
  ),
  KILN_DELIVERY_LIMIT: z.preprocess(
    blankToUndefined,
    z.coerce.number().int().min(1).max(100).default(DEFAULT_DELIVERY_LIMIT),
  ),
  KILN_LOG_LEVEL: z.preprocess(blankToUndefined, z.enum(LOG_LEVELS).default('info')),
};

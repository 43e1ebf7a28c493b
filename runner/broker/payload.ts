/**
 * What both brokers do with a payload: encode it, and decode and validate it against its kind's
 * schema before any handler sees it. A payload that fails is reported by kind, size and the paths
 * that failed, never by content: build jobs carry masked variables and keys in clear text.
 */
import type { BrokerLogger } from '../contract/broker.ts';
import { MESSAGE_KINDS, type MessageKind, type MessageOf } from '../contract/catalog.ts';

export const silentLogger: BrokerLogger = { warn() {}, error() {} };

export function encode(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/** The message, or undefined (reported to `logger`) when the body is not JSON or fails the schema. */
export function decode<K extends MessageKind>(
  kind: K,
  body: Buffer | string,
  logger: BrokerLogger,
): MessageOf<K> | undefined {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    logger.warn({ kind, bytes }, `${kind} message is not JSON`);
    return undefined;
  }
  const result = MESSAGE_KINDS[kind].schema.safeParse(value);
  if (result.success) return result.data as MessageOf<K>;
  const problems = result.error.issues.slice(0, 10).map((issue) => ({
    path: issue.path.map(String).join('.'),
    code: issue.code,
  }));
  logger.warn({ kind, bytes, problems }, `${kind} message fails its schema`);
  return undefined;
}

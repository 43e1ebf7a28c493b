/**
 * Sending one delivery: signed as the Standard Webhooks specification says (standardwebhooks.com),
 * to a URL whose every address is checked as it is connected to, so that neither the URL nor a DNS
 * answer that changes after the check (rebinding) can point Kiln at its own network.
 *
 * - The secret is `whsec_<base64 of 24 random bytes>`; the HMAC key is the decoded bytes.
 * - Headers: `webhook-id` (the delivery's id, the same on every attempt), `webhook-timestamp` (this
 *   attempt's, in seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export function newSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** Addresses a webhook may never reach unless private URLs are allowed. */
const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv6');
}

/** Whether `address` is loopback, link-local, private, reserved or multicast. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is judged as the IPv4 one.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class UnsafeUrlError extends Error {
  override name = 'UnsafeUrlError';
}

/** Why `url` is not one a webhook may be sent to (before any DNS), or null. */
export function checkWebhookUrl(url: string): string | null {
  if (url.length > 2048) return 'a webhook URL is at most 2048 characters';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url.slice(0, 200)}" is not a URL`;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    return 'a webhook URL is http:// or https://';
  if (parsed.username || parsed.password)
    return 'put no credentials in a webhook URL: the signature authenticates';
  return null;
}

/** The host's addresses; throws UnsafeUrlError when one is private and private URLs are not allowed. */
export async function resolveSafely(host: string, allowPrivate: boolean): Promise<LookupAddress[]> {
  const bare = host.replace(/^\[|\]$/g, '');
  const addresses: LookupAddress[] = isIP(bare)
    ? [{ address: bare, family: isIP(bare) }]
    : await new Promise((resolve, reject) =>
        dnsLookup(bare, { all: true }, (err, found) => (err ? reject(err) : resolve(found))),
      );
  if (!allowPrivate) {
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) {
      throw new UnsafeUrlError(
        `${bare} resolves to ${bad.address}, a loopback, link-local or private address (KILN_ALLOW_PRIVATE_URLS=true allows it)`,
      );
    }
  }
  return addresses;
}

/** A `lookup` for http(s).request that refuses private addresses at connection time. */
function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolveSafely(hostname, allowPrivate).then(
      (addresses) => {
        if ((options as { all?: boolean }).all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

export interface SendResult {
  status: number | null;
  error: string | null;
}

/** POSTs `body` to `url` with `headers`; a receiver slower than `timeoutMs` is a failure. */
export function post(
  url: string,
  headers: Record<string, string>,
  body: string,
  opts: { timeoutMs: number; allowPrivate: boolean },
): Promise<SendResult> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  // An address in the URL is never looked up: it is checked here.
  const literal = target.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) && !opts.allowPrivate && isPrivateAddress(literal)) {
    return Promise.resolve({
      status: null,
      error: `${literal} is a loopback, link-local or private address (KILN_ALLOW_PRIVATE_URLS=true allows it)`,
    });
  }
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const request = client.request(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        lookup: guardedLookup(opts.allowPrivate),
        agent: false,
      },
      (response) => {
        response.resume();
        response.on('end', () => done({ status: response.statusCode ?? null, error: null }));
        response.on('error', (err) => done({ status: response.statusCode ?? null, error: err.message }));
      },
    );
    const timer = setTimeout(() => {
      request.destroy();
      done({ status: null, error: `no answer within ${Math.round(opts.timeoutMs / 1000)} s` });
    }, opts.timeoutMs);
    request.on('error', (err) => done({ status: null, error: err.message }));
    request.end(body);
  });
}

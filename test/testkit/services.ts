/**
 * Which real services the tests can use. On a laptop a missing service skips the tests that need it,
 * with the reason printed; CI sets KILN_REQUIRE=postgres,rabbitmq,… so a missing service fails the run.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

export const POSTGRES_URL =
  process.env.KILN_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const AMQP_URL = process.env.KILN_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** The Docker engine the docker driver's tests use: unix:///path or tcp://host:port. */
export const DOCKER_HOST =
  process.env.KILN_DOCKER_HOST || process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
/** The image docker tests run in, built by infra/test-images/busybox.sh (never pulled). */
export { ensureTestImage, TEST_IMAGE } from '../../infra/test-images/test-image.ts';

/**
 * Every service a test may need; KILN_REQUIRE names some of these (qemu: the VM driver's tests; sshd:
 * a private OpenSSH server serving git over ssh).
 */
export const SERVICES = ['postgres', 'rabbitmq', 'docker', 'qemu', 'chromium', 'sshd'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * The services a comma-separated KILN_REQUIRE names. A name that is not a service is an error: a
 * typo (`postgress`) would otherwise require nothing, and a missing service would skip silently.
 */
export function parseRequired(value: string | undefined): Set<ServiceName> {
  const names = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(SERVICES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `KILN_REQUIRE names unknown services: ${unknown.join(', ')} (known: ${SERVICES.join(', ')})`,
    );
  }
  return new Set(names as ServiceName[]);
}

export const required = (): Set<ServiceName> => parseRequired(process.env.KILN_REQUIRE);

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname || '127.0.0.1', port: Number(port) || defaultPort });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** True when the Docker engine answers GET /_ping with OK. */
export function dockerAnswers(host = DOCKER_HOST): Promise<boolean> {
  const url = new URL(host.replace(/^tcp:/, 'http:').replace(/^\//, 'unix:///'));
  const target =
    url.protocol === 'unix:' ? { socketPath: url.pathname } : { host: url.hostname, port: url.port };
  return new Promise((resolve) => {
    const request = http.get({ ...target, path: '/_ping', timeout: 2_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve(response.statusCode === 200 && body.trim() === 'OK'));
      response.on('error', () => resolve(false));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

/** Debian's Chromium, which the console's browser tests drive (infra/install-chromium.sh installs it). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Debian's OpenSSH server, which the tests of ssh clone URLs start privately (infra/install-sshd.sh). */
export const SSHD_PATH = '/usr/sbin/sshd';

export async function probe(): Promise<
  Record<'postgres' | 'rabbitmq' | 'docker' | 'chromium' | 'sshd', boolean>
> {
  const [postgres, rabbitmq, docker] = await Promise.all([
    reachable(POSTGRES_URL, 5432),
    reachable(AMQP_URL, 5672),
    dockerAnswers(),
  ]);
  return { postgres, rabbitmq, docker, chromium: existsSync(CHROMIUM_PATH), sshd: existsSync(SSHD_PATH) };
}

/** True when the service is there; false (with the reason printed) when the tests should skip. */
export function available(name: ServiceName): boolean {
  const flag = process.env[`KILN_TEST_HAS_${name.toUpperCase()}`];
  if (flag === '1') return true;
  if (required().has(name)) throw new Error(`${name} is required (KILN_REQUIRE) but is not available`);
  console.warn(`skipping: ${name} is not available on this machine`);
  return false;
}

/**
 * Which real services the tests can use. On a laptop a missing service skips the tests that need it,
 * with the reason printed; CI sets KILN_REQUIRE=postgres,rabbitmq,… so a missing service fails the run.
 */
import net from 'node:net';

export const POSTGRES_URL =
  process.env.KILN_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const AMQP_URL = process.env.KILN_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export type ServiceName = 'postgres' | 'rabbitmq' | 'docker' | 'qemu' | 'chromium';

export const required = (): Set<string> =>
  new Set(
    (process.env.KILN_REQUIRE ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

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

export async function probe(): Promise<Record<'postgres' | 'rabbitmq', boolean>> {
  const [postgres, rabbitmq] = await Promise.all([reachable(POSTGRES_URL, 5432), reachable(AMQP_URL, 5672)]);
  return { postgres, rabbitmq };
}

/** True when the service is there; false (with the reason printed) when the tests should skip. */
export function available(name: ServiceName): boolean {
  const flag = process.env[`KILN_TEST_HAS_${name.toUpperCase()}`];
  if (flag === '1') return true;
  if (required().has(name)) throw new Error(`${name} is required (KILN_REQUIRE) but is not available`);
  console.warn(`skipping: ${name} is not available on this machine`);
  return false;
}

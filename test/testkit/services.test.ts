import { describe, expect, it } from 'vitest';
import { parseRequired, SERVICES } from './services.ts';

describe('KILN_REQUIRE', () => {
  it('names the services a run must have, in any order, with blanks and spaces ignored', () => {
    expect(parseRequired(' postgres,rabbitmq ,, docker,qemu,chromium,sshd,')).toEqual(new Set(SERVICES));
    expect(parseRequired(undefined)).toEqual(new Set());
    expect(parseRequired('')).toEqual(new Set());
  });

  it('refuses a name that is not a service, saying which ones are', () => {
    expect(() => parseRequired('postgres,postgress,redis')).toThrow(
      'KILN_REQUIRE names unknown services: postgress, redis (known: postgres, rabbitmq, docker, qemu, chromium, sshd)',
    );
    expect(() => parseRequired('Postgres')).toThrow('unknown services: Postgres');
  });
});

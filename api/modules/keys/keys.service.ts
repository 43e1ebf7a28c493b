/**
 * SSH keys of a user (namespace null) or of a namespace, as in Djinn: created and deleted, never
 * updated or read back. The private key is stored only sealed (AES-256-GCM); the API shows names and
 * ssh_config snippets. Every key available to a build is placed at `~/.ssh/<name>` by the runner,
 * with a generated `~/.ssh/config`. Stored, listed, found and deleted as variables and objects are
 * (variables/scoped-resource.service.ts).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../../auth/secret-box.ts';
import { type Outcome, ScopedStore, type SecretScope } from '../variables/scoped-resource.service.ts';
import { type SshKey, SshKeySchema } from './keys.entity.ts';

export const MAX_NAME_LENGTH = 128;
export const MAX_KEY_LENGTH = 16 * 1024;
export const MAX_CONFIG_LENGTH = 4 * 1024;
/** Files of ~/.ssh that a key must not replace. */
const RESERVED_NAMES = new Set(['config', 'known_hosts', 'authorized_keys', 'environment', 'rc']);

/** Djinn's normalisation: anything but letters, digits, `_`, `.` and `-` becomes `_`. */
export const normaliseKeyName = (name: string): string => name.trim().replace(/[^a-zA-Z0-9_.-]/g, '_');

export interface CreateKeyInput {
  name: string;
  privateKey: string;
  config?: string | null;
}

/** The input as it will be stored (normalised), or the problem with it. */
function checkKey(input: CreateKeyInput): Outcome<{ name: string; privateKey: string; config: string }> {
  const name = normaliseKeyName(input.name);
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    return { ok: false, path: 'name', reason: `a name is 1 to ${MAX_NAME_LENGTH} characters` };
  }
  if (/^\.+$/.test(name) || RESERVED_NAMES.has(name)) {
    return { ok: false, path: 'name', reason: `"${name}" cannot be the name of a file in ~/.ssh` };
  }
  // OpenSSH refuses a key without its final newline or with CRLF line ends (pasted from elsewhere).
  const privateKey = `${input.privateKey.replace(/\r\n?/g, '\n').trim()}\n`;
  if (privateKey.length === 1) return { ok: false, path: 'privateKey', reason: 'the private key is empty' };
  if (privateKey.length > MAX_KEY_LENGTH) {
    return { ok: false, path: 'privateKey', reason: `a private key is at most ${MAX_KEY_LENGTH} characters` };
  }
  if (
    !/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n$/.test(
      privateKey,
    )
  ) {
    return {
      ok: false,
      path: 'privateKey',
      reason: 'not a private key: expected -----BEGIN … PRIVATE KEY----- … -----END … PRIVATE KEY-----',
    };
  }
  const config = (input.config ?? '').replace(/\r\n?/g, '\n').trim();
  if (config.length > MAX_CONFIG_LENGTH) {
    return { ok: false, path: 'config', reason: `a config is at most ${MAX_CONFIG_LENGTH} characters` };
  }
  return { ok: true, value: { name, privateKey, config } };
}

/** SSH keys, unique by name in their scope, listed oldest first. */
export const keyStore = new ScopedStore({
  schema: SshKeySchema,
  plural: 'keys',
  unique: 'name',
  named: (name) => `a key named ${name}`,
  orderBy: { createdAt: 'asc', id: 'asc' },
});

export function createKey(
  em: EntityManager,
  secrets: SecretBox,
  scope: SecretScope,
  input: CreateKeyInput,
): Promise<Outcome<SshKey>> {
  const checked = checkKey(input);
  if (!checked.ok) return Promise.resolve(checked);
  const { name, privateKey, config } = checked.value;
  return keyStore.create(em, scope, { name, encryptedKey: secrets.seal(privateKey), config });
}

/**
 * The secrets a build gets at submit (Djinn's build_variables / build_keys snapshot): the owner's
 * variables and keys that have no namespace, then those of the build's namespace, decrypted. Later
 * ones win (a variable of the namespace overrides the owner's of the same key; a key of the same name
 * replaces the owner's); the caller appends the manifest's `env`. The result is plain text: the
 * caller must seal it at rest (the outbox) and the runner masks masked values and key material.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../../auth/secret-box.ts';
import { listKeys } from '../keys/keys.service.ts';
import type { Variable } from './variables.entity.ts';
import { listVariables } from './variables.service.ts';

export interface BuildSecrets {
  variables: { key: string; value: string; masked: boolean }[];
  keys: { name: string; privateKey: string; config: string }[];
}

export async function buildSecrets(
  em: EntityManager,
  secrets: SecretBox,
  ownerId: string,
  namespaceId: string | null,
): Promise<BuildSecrets> {
  const scopes = [{ ownerId, namespaceId: null }, ...(namespaceId ? [{ ownerId, namespaceId }] : [])];
  const variables: BuildSecrets['variables'] = [];
  const keys = new Map<string, BuildSecrets['keys'][number]>();
  for (const scope of scopes) {
    for (const v of await listVariables(em, scope)) {
      variables.push({ key: v.key, value: plainValue(secrets, v), masked: v.masked });
    }
    for (const k of await listKeys(em, scope)) {
      keys.delete(k.name);
      keys.set(k.name, { name: k.name, privateKey: secrets.open(k.encryptedKey), config: k.config });
    }
  }
  return { variables, keys: [...keys.values()] };
}

function plainValue(secrets: SecretBox, v: Variable): string {
  if (!v.masked) return v.value ?? '';
  if (v.encryptedValue === null) throw new Error(`masked variable ${v.id} has no encrypted value`);
  return secrets.open(v.encryptedValue);
}

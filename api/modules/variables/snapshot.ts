/**
 * The secrets a build gets at submit (Djinn's build_variables / build_keys snapshot): the owner's
 * variables and keys that have no namespace, then those of the build's namespace, decrypted. Later
 * ones win (a variable of the namespace overrides the owner's of the same key; a key of the same name
 * replaces the owner's); the caller appends the manifest's `env`. The result is plain text: the
 * caller must seal it at rest (the outbox) and the runner masks masked values and key material.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../../auth/secret-box.ts';

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
  // One query for both kinds and both scopes, the owner's first: every submit waits for it.
  const rows = await em.execute<SecretRow[]>(
    `select * from (
       select 'variable' as kind, namespace_id, key as name, value, encrypted_value as sealed, masked,
         null as config, created_at, id
       from variables where (owner_id = ? and namespace_id is null) or namespace_id = ?
       union all
       select 'key', namespace_id, name, null, encrypted_key, null, config, created_at, id
       from ssh_keys where (owner_id = ? and namespace_id is null) or namespace_id = ?
     ) s order by namespace_id is not null, created_at, id`,
    [ownerId, namespaceId, ownerId, namespaceId],
  );
  const variables: BuildSecrets['variables'] = [];
  const keys = new Map<string, BuildSecrets['keys'][number]>();
  for (const row of rows) {
    if (row.kind === 'variable') {
      variables.push({ key: row.name, value: plainValue(secrets, row), masked: row.masked === true });
    } else {
      keys.delete(row.name);
      keys.set(row.name, { name: row.name, privateKey: secrets.open(row.sealed!), config: row.config ?? '' });
    }
  }
  return { variables, keys: [...keys.values()] };
}

interface SecretRow {
  kind: 'variable' | 'key';
  id: string;
  name: string;
  value: string | null;
  sealed: string | null;
  masked: boolean | null;
  config: string | null;
}

function plainValue(secrets: SecretBox, v: SecretRow): string {
  if (!v.masked) return v.value ?? '';
  if (v.sealed === null) throw new Error(`masked variable ${v.id} has no encrypted value`);
  return secrets.open(v.sealed);
}

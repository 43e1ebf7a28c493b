import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

/**
 * An SSH private key of a user (namespace null) or of a namespace, stored only encrypted and never
 * returned. Every key available to a build is placed at `~/.ssh/<name>`, with a generated config.
 */
export interface SshKey {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  name: string;
  encryptedKey: string;
  /** Extra ssh_config lines for this key (e.g. `Host github.com`), appended to the generated config. */
  config: string;
  createdAt: Date;
}

export const SshKeySchema = new EntitySchema<SshKey>({
  name: 'SshKey',
  tableName: 'ssh_keys',
  indexes: [{ properties: ['owner'] }, { properties: ['namespace'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    owner: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    namespace: {
      kind: 'm:1',
      entity: () => NamespaceSchema,
      ref: true,
      nullable: true,
      deleteRule: 'cascade',
    },
    name: { type: 'string', length: 128 },
    encryptedKey: { type: 'text' },
    config: { type: 'text', default: '' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

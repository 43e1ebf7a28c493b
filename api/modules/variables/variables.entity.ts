import { EntitySchema, type Ref } from '@mikro-orm/core';
import type { Namespace } from '../namespaces/namespaces.entity.ts';
import { NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

/**
 * A build variable of a user (namespace null) or of a namespace. A masked value is stored only
 * encrypted (AES-256-GCM, `value` null) and never returned; an unmasked one is stored as is.
 */
export interface Variable {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  key: string;
  value: string | null;
  encryptedValue: string | null;
  masked: boolean;
  createdAt: Date;
}

export const VariableSchema = new EntitySchema<Variable>({
  name: 'Variable',
  tableName: 'variables',
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
    key: { type: 'string', length: 128 },
    value: { type: 'text', nullable: true },
    encryptedValue: { type: 'text', nullable: true },
    masked: { type: 'boolean' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

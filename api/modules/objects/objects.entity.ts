import { BigIntType, EntitySchema, type Ref } from '@mikro-orm/core';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

/**
 * A file uploaded to a user (namespace null) or to a namespace, placed into builds whose manifest
 * names it (`objects: [name => /dest]`). The bytes are the file store's blob `sha256`; a name is
 * unique within its scope.
 */
export interface StoredObject {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  name: string;
  contentType: string;
  size: number;
  md5: string;
  sha256: string;
  createdAt: Date;
}

export const ObjectSchema = new EntitySchema<StoredObject>({
  name: 'StoredObject',
  tableName: 'objects',
  indexes: [{ properties: ['owner'] }, { properties: ['namespace'] }, { properties: ['sha256'] }],
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
    name: { type: 'string', length: 255 },
    contentType: { type: 'string', length: 255 },
    size: { type: new BigIntType('number') },
    md5: { type: 'string', length: 32 },
    sha256: { type: 'string', length: 64 },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

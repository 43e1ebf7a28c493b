import { EntitySchema } from '@mikro-orm/core';

/** A person (or the bootstrap admin). Accounts, passwords and sessions arrive with issue "Accounts". */
export interface User {
  id: string;
  username: string;
  isAdmin: boolean;
  createdAt: Date;
}

export const UserSchema = new EntitySchema<User>({
  name: 'User',
  tableName: 'users',
  properties: {
    id: { type: 'uuid', primary: true },
    username: { type: 'string', length: 64, unique: true },
    isAdmin: { type: 'boolean', default: false },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

import { builder } from '../../builder.ts';
import { type User, UserSchema } from './users.entity.ts';

export const UserRef = builder.loadableNodeRef<User>('User', {
  id: { resolve: (user) => user.id },
  sort: (user) => user.id,
  load: (ids: string[], ctx) => ctx.em.find(UserSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

UserRef.implement({
  fields: (t) => ({
    username: t.exposeString('username'),
    isAdmin: t.exposeBoolean('isAdmin'),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({
    type: UserRef,
    nullable: true,
    description: 'The user the request is authenticated as.',
    resolve: (_root, _args, ctx): User | null => ctx.viewer,
  }),
);

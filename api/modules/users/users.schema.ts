import { builder, InputError } from '../../builder.ts';
import { type User, UserSchema } from './users.entity.ts';

export const UserRef = builder.loadableNodeRef<User>('User', {
  id: { resolve: (user) => user.id },
  sort: (user) => user.id,
  load: (ids: string[], ctx) => ctx.em.find(UserSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

UserRef.implement({
  // Usernames are public (they appear as namespace owners and collaborators).
  authScopes: { public: true },
  fields: (t) => ({
    username: t.exposeString('username'),
    isAdmin: t.exposeBoolean('isAdmin'),
  }),
});

builder.queryField('bootstrapTokenFile', (t) =>
  t.string({
    nullable: true,
    description:
      "Where the first start saved the admin's token (KILN_DATA_DIR/bootstrap-token; relative to the server's working directory when inside it), for the sign-in page to name; null when not known.",
    authScopes: { public: true },
    resolve: (_root, _args, ctx) => ctx.services.users.bootstrapTokenFile,
  }),
);

builder.queryField('viewer', (t) =>
  t.field({
    type: UserRef,
    nullable: true,
    description: 'The user the request is authenticated as; null without a token.',
    authScopes: { public: true },
    resolve: (_root, _args, ctx): User | null => ctx.auth.viewer,
  }),
);

const SignUpInput = builder.inputType('SignUpInput', {
  fields: (t) => ({ username: t.string({ required: true }), password: t.string({ required: true }) }),
});
const LogInInput = builder.inputType('LogInInput', {
  fields: (t) => ({ username: t.string({ required: true }), password: t.string({ required: true }) }),
});
const ChangePasswordInput = builder.inputType('ChangePasswordInput', {
  fields: (t) => ({
    currentPassword: t.string({ description: 'Not needed while the account has no password yet.' }),
    newPassword: t.string({ required: true }),
  }),
});

const LogInSuccess = builder.objectRef<{ user: User; token: string }>('LogInSuccess').implement({
  fields: (t) => ({
    user: t.field({ type: UserRef, resolve: (r) => r.user }),
    token: t.exposeString('token', {
      description:
        'A session token, also set as an httpOnly cookie; usable as a Bearer token until it expires or is revoked.',
    }),
  }),
});

builder.mutationFields((t) => ({
  signUp: t.field({
    type: UserRef,
    description:
      'Creates an account (the first one is an admin). Sign-up can be turned off with KILN_SIGNUP=false.',
    authScopes: { public: true },
    args: { input: t.arg({ type: SignUpInput, required: true }) },
    errors: { types: [InputError], dataField: { name: 'user' } },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.users.signUp(ctx.em, input.username, input.password);
      if (!result.ok) throw new InputError(result.reason, result.field ?? null);
      return result.value;
    },
  }),
  logIn: t.field({
    type: LogInSuccess,
    authScopes: { public: true },
    args: { input: t.arg({ type: LogInInput, required: true }) },
    errors: { types: [InputError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const result = await ctx.services.users.logIn(ctx.em, input.username, input.password);
      if (!result.ok) throw new InputError(result.reason, null);
      ctx.setCookies.push(
        ...ctx.services.users.sessionCookies(result.value.secret, result.value.expiresAt, ctx.secure),
      );
      return { user: result.value.user, token: result.value.secret };
    },
  }),
  logOut: t.boolean({
    description: 'Ends the session of this request (its token is revoked and its cookies cleared).',
    authScopes: { signedIn: true },
    resolve: async (_root, _args, ctx) => {
      if (ctx.auth.kind === 'SESSION' && ctx.auth.tokenId) {
        await ctx.em.execute('update access_tokens set revoked_at = now() where id = ?', [ctx.auth.tokenId]);
      }
      ctx.setCookies.push(...ctx.services.users.clearCookies());
      return true;
    },
  }),
  changePassword: t.field({
    type: UserRef,
    authScopes: { signedIn: true },
    args: { input: t.arg({ type: ChangePasswordInput, required: true }) },
    errors: { types: [InputError], dataField: { name: 'user' } },
    resolve: async (_root, { input }, ctx) => {
      if (ctx.auth.kind !== 'SESSION' && !ctx.auth.scopes.has('*')) {
        throw new InputError('sign in with your password (or the bootstrap token) to change it', null);
      }
      const result = await ctx.services.users.changePassword(
        ctx.em,
        ctx.auth.viewer!,
        input.currentPassword ?? '',
        input.newPassword,
      );
      if (!result.ok) throw new InputError(result.reason, result.field ?? null);
      return result.value;
    },
  }),
}));

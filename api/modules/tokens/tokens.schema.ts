import { ALL_SCOPES, isScope, SCOPE_DESCRIPTIONS, type Scope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import { localId } from '../../global-id.ts';
import { UserRef } from '../users/users.schema.ts';
import { type AccessToken, AccessTokenSchema, TOKEN_KINDS } from './tokens.entity.ts';
import { issueToken } from './tokens.service.ts';

const TokenKindEnum = builder.enumType('TokenKind', { values: TOKEN_KINDS });

export const AccessTokenRef = builder.loadableNodeRef<AccessToken>('AccessToken', {
  id: { resolve: (token) => token.id },
  sort: (token) => token.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(AccessTokenSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

AccessTokenRef.implement({
  // A token is seen only by its user (and admins); its secret never, after creation.
  authScopes: (token, ctx) => ctx.auth.viewer?.isAdmin === true || token.user.id === ctx.auth.viewer?.id,
  fields: (t) => ({
    name: t.exposeString('name'),
    kind: t.field({ type: TokenKindEnum, resolve: (token) => token.kind }),
    scopes: t.exposeStringList('scopes', {
      description: 'resource:perm strings, e.g. build:read, build:write, variable:delete; * for everything',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.objectField(UserRef, 'tokens', (t) =>
  t.field({
    type: [AccessTokenRef],
    description: "The user's tokens that are not revoked, newest first (its own user only).",
    authScopes: (user, _args, ctx) => ctx.auth.viewer?.id === user.id || ctx.auth.viewer?.isAdmin === true,
    resolve: (user, _args, ctx) =>
      ctx.em.find(
        AccessTokenSchema,
        { user: user.id, revokedAt: null, kind: { $ne: 'SESSION' } },
        { orderBy: { createdAt: 'desc' }, disableIdentityMap: true },
      ),
  }),
);

builder.objectField(UserRef, 'sessions', (t) =>
  t.field({
    type: [AccessTokenRef],
    description:
      "The user's signed-in sessions that have not expired or been revoked, newest first (its own user only); revoke one with revokeToken.",
    authScopes: (user, _args, ctx) => ctx.auth.viewer?.id === user.id || ctx.auth.viewer?.isAdmin === true,
    resolve: (user, _args, ctx) =>
      ctx.em.find(
        AccessTokenSchema,
        { user: user.id, kind: 'SESSION', revokedAt: null, expiresAt: { $gt: new Date() } },
        { orderBy: { createdAt: 'desc' }, disableIdentityMap: true },
      ),
  }),
);

const ScopeRef = builder.objectRef<Scope>('Scope').implement({
  description: 'A permission a personal access token may hold: `resource:permission`.',
  fields: (t) => ({
    name: t.string({ description: 'What createToken takes, e.g. build:read.', resolve: (scope) => scope }),
    resource: t.string({ description: 'e.g. build', resolve: (scope) => scope.split(':')[0]! }),
    permission: t.string({ description: 'read, write or delete', resolve: (scope) => scope.split(':')[1]! }),
    description: t.string({
      description: 'What it lets a token do.',
      resolve: (scope) => SCOPE_DESCRIPTIONS[scope],
    }),
  }),
});

builder.queryField('scopes', (t) =>
  t.field({
    type: [ScopeRef],
    description: 'Every scope a personal access token may hold, resource by resource.',
    authScopes: { public: true },
    resolve: () => ALL_SCOPES,
  }),
);

const CreateTokenInput = builder.inputType('CreateTokenInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    scopes: t.stringList({ required: true, description: `Any of: ${ALL_SCOPES.join(', ')}` }),
  }),
});

const CreateRunnerTokenInput = builder.inputType('CreateRunnerTokenInput', {
  fields: (t) => ({ name: t.string({ required: true }) }),
});

type Created = { token: string; accessToken: AccessToken };
const createdFields = (name: string) =>
  builder.objectRef<Created>(name).implement({
    fields: (t) => ({
      token: t.exposeString('token', { description: 'The secret, shown this once.' }),
      accessToken: t.field({ type: AccessTokenRef, resolve: (r) => r.accessToken }),
    }),
  });
const CreateTokenSuccess = createdFields('CreateTokenSuccess');
const CreateRunnerTokenSuccess = createdFields('CreateRunnerTokenSuccess');

const RevokeTokenInput = builder.inputType('RevokeTokenInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

builder.mutationFields((t) => ({
  createToken: t.field({
    type: CreateTokenSuccess,
    description: 'A personal access token with the given scopes, no more than the caller holds.',
    authScopes: { signedIn: true },
    args: { input: t.arg({ type: CreateTokenInput, required: true }) },
    errors: { types: [InputError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const name = input.name.trim();
      if (!name || name.length > 128) throw new InputError('a token name is 1 to 128 characters', 'name');
      const scopes = [...new Set(input.scopes)];
      const unknown = scopes.filter((s) => !isScope(s));
      if (unknown.length) throw new InputError(`unknown scopes: ${unknown.join(', ')}`, 'scopes');
      // A token cannot mint a token stronger than itself.
      const beyond = scopes.filter((s) => !ctx.auth.scopes.has('*') && !ctx.auth.scopes.has(s));
      if (beyond.length) throw new InputError(`this token does not hold: ${beyond.join(', ')}`, 'scopes');
      const { secret, token } = issueToken(ctx.em, ctx.auth.viewer!, { kind: 'PERSONAL', name, scopes });
      await ctx.em.flush();
      return { token: secret, accessToken: token };
    },
  }),
  createRunnerToken: t.field({
    type: CreateRunnerTokenSuccess,
    description: "A runner's token: good only for the runner endpoints (admins only).",
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateRunnerTokenInput, required: true }) },
    errors: { types: [InputError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const name = input.name.trim();
      if (!name || name.length > 128) throw new InputError('a token name is 1 to 128 characters', 'name');
      const { secret, token } = issueToken(ctx.em, ctx.auth.viewer!, {
        kind: 'RUNNER',
        name,
        scopes: ['runner:write'],
      });
      await ctx.em.flush();
      return { token: secret, accessToken: token };
    },
  }),
  revokeToken: t.field({
    type: AccessTokenRef,
    authScopes: { signedIn: true },
    args: { input: t.arg({ type: RevokeTokenInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'accessToken' } },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(input.id, 'AccessToken');
      const viewer = ctx.auth.viewer!;
      const token = id ? await ctx.em.findOne(AccessTokenSchema, { id }) : null;
      if (!token || (token.user.id !== viewer.id && !viewer.isAdmin))
        throw new NotFoundError('no such token');
      token.revokedAt ??= new Date();
      await ctx.em.flush();
      return token;
    },
  }),
}));

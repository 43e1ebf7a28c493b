/**
 * Mail in the schema: a user's address (its own user only), whether it is confirmed, which builds
 * mail them; setting them; and resetting a forgotten password through a mailed link.
 */

import { builder, InputError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';

const NotifyPreferenceEnum = builder.enumType('NotifyPreference', {
  values: {
    NEVER: { description: 'No build mail.' },
    FAILURES: { description: 'Failed, killed and timed-out builds (the default).' },
    FAILURES_AND_FIXES: { description: 'Those, and a build that passes after a failure.' },
  },
});

const isSelf = (ctx: Context, user: User) =>
  ctx.auth.viewer?.id === user.id || ctx.auth.viewer?.isAdmin === true;

builder.objectFields(UserRef, (t) => ({
  email: t.string({
    nullable: true,
    description: 'Its own user only; null until set.',
    resolve: (user, _args, ctx) => (isSelf(ctx, user) ? (user.email ?? null) : null),
  }),
  emailVerified: t.boolean({
    description: 'The address was confirmed through the link mailed to it.',
    resolve: (user, _args, ctx) => isSelf(ctx, user) && user.emailVerified === true,
  }),
  notify: t.field({
    type: NotifyPreferenceEnum,
    description: 'Which builds of theirs mail them; FAILURES by default.',
    resolve: (user) => user.notify ?? 'FAILURES',
  }),
}));

builder.queryField('mailEnabled', (t) =>
  t.boolean({
    description: 'This Kiln sends mail (KILN_SMTP_URL is set): confirmations, password resets, build mail.',
    authScopes: { public: true },
    resolve: (_root, _args, ctx) => ctx.services.mail.enabled,
  }),
);

const SetEmailInput = builder.inputType('SetEmailInput', {
  fields: (t) => ({ email: t.string({ required: true }) }),
});
const SetNotifyInput = builder.inputType('SetNotifyInput', {
  fields: (t) => ({ notify: t.field({ type: NotifyPreferenceEnum, required: true }) }),
});
const RequestPasswordResetInput = builder.inputType('RequestPasswordResetInput', {
  fields: (t) => ({
    login: t.string({ required: true, description: 'A username, or a confirmed address.' }),
  }),
});
const ResetPasswordInput = builder.inputType('ResetPasswordInput', {
  fields: (t) => ({
    token: t.string({ required: true, description: 'The token of the mailed link.' }),
    password: t.string({ required: true }),
  }),
});

const userResult = (name: string) =>
  builder.objectRef<{ user: User }>(name).implement({
    fields: (t) => ({ user: t.field({ type: UserRef, resolve: (r) => r.user }) }),
  });
const SetEmailSuccess = userResult('SetEmailSuccess');
const SetNotifySuccess = userResult('SetNotifySuccess');
const ResetPasswordSuccess = userResult('ResetPasswordSuccess');

builder.mutationFields((t) => ({
  setEmail: t.field({
    type: SetEmailSuccess,
    description: 'Mails a confirmation link to the address.',
    authScopes: { signedIn: true },
    args: { input: t.arg({ type: SetEmailInput, required: true }) },
    errors: { types: [InputError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const set = await ctx.services.mail.setEmail(ctx.em, ctx.auth.viewer!, input.email);
      if (!set.ok) throw new InputError(set.reason, set.path);
      return { user: set.value };
    },
  }),
  setNotify: t.field({
    type: SetNotifySuccess,
    authScopes: { signedIn: true },
    args: { input: t.arg({ type: SetNotifyInput, required: true }) },
    errors: { types: [], directResult: true },
    resolve: async (_root, { input }, ctx) => ({
      user: await ctx.services.mail.setNotify(ctx.em, ctx.auth.viewer!, input.notify),
    }),
  }),
  requestPasswordReset: t.boolean({
    description:
      'Mails a link that sets a new password to the confirmed address of the user `login` names; true whether or not there is one (it says nothing of who has an account).',
    authScopes: { public: true },
    args: { input: t.arg({ type: RequestPasswordResetInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      await ctx.services.mail.requestPasswordReset(ctx.em, input.login);
      return true;
    },
  }),
  resetPassword: t.field({
    type: ResetPasswordSuccess,
    description: 'Sets a new password with the token of a mailed link (once, within the hour).',
    authScopes: { public: true },
    args: { input: t.arg({ type: ResetPasswordInput, required: true }) },
    errors: { types: [InputError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      const reset = await ctx.services.mail.resetPassword(ctx.em, input.token, input.password);
      if (!reset.ok) throw new InputError(reset.reason, reset.path);
      return { user: reset.value };
    },
  }),
}));

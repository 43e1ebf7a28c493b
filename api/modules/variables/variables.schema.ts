import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import { type Variable, VariableSchema } from './variables.entity.ts';
import {
  createVariable,
  deleteVariable,
  findVariable,
  listVariables,
  type Outcome,
  resolveSecretScope,
  secretAccess,
} from './variables.service.ts';

/** An expected failure of a variables or keys mutation, as the error its outcome calls for. */
export function outcomeError(outcome: Extract<Outcome<unknown>, { ok: false }>): Error {
  if (outcome.notFound) return new NotFoundError(outcome.reason);
  if (outcome.forbidden) return forbidden(outcome.reason);
  return new InputError(outcome.reason, outcome.path ?? null);
}

/** Seen through any of the resource's scopes: a token that may create one may see what it created. */
export const holdsAnyScope = (ctx: Context, resource: 'variable' | 'key' | 'object'): boolean =>
  hasScope(ctx.auth.scopes, `${resource}:read`) ||
  hasScope(ctx.auth.scopes, `${resource}:write`) ||
  hasScope(ctx.auth.scopes, `${resource}:delete`);

/** A user's own variables and keys are theirs alone (and an admin's). */
export const isSelf = (ctx: Context, user: User): boolean =>
  ctx.auth.viewer !== null && (ctx.auth.viewer.isAdmin || ctx.auth.viewer.id === user.id);

export const VariableRef = builder.loadableNodeRef<Variable>('Variable', {
  id: { resolve: (v) => v.id },
  sort: (v) => v.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(VariableSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

VariableRef.implement({
  description:
    'A build variable of a user (namespace null) or of a namespace; builds get them as environment variables.',
  authScopes: async (v, ctx) =>
    holdsAnyScope(ctx, 'variable') && (await secretAccess(ctx.em, ctx.access, v)) !== null,
  fields: (t) => ({
    key: t.exposeString('key'),
    value: t.string({
      nullable: true,
      description: 'Null when masked: a masked value is never returned.',
      resolve: (v) => (v.masked ? null : v.value),
    }),
    masked: t.exposeBoolean('masked', {
      description: 'Stored encrypted, never returned, and replaced by xxxxxx in build logs.',
    }),
    namespace: t.field({
      type: NamespaceRef,
      nullable: true,
      description: "Null for a user's own variable.",
      resolve: (v) => v.namespace?.id ?? null,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(NamespaceRef, 'variables', (t) =>
  t.field({
    type: [VariableRef],
    description:
      "The namespace's variables, oldest first: every build in the namespace gets them (owner and collaborators only).",
    authScopes: async (ns, _args, ctx) =>
      hasScope(ctx.auth.scopes, 'variable:read') && ctx.access.canWrite(ns),
    resolve: (ns, _args, ctx) => listVariables(ctx.em, { ownerId: ns.owner.id, namespaceId: ns.id }),
  }),
);

builder.objectField(UserRef, 'variables', (t) =>
  t.field({
    type: [VariableRef],
    description:
      "The user's own variables, oldest first: every build the user submits gets them (its own user only).",
    authScopes: (user: User, _args, ctx) => isSelf(ctx, user) && { scope: 'variable:read' },
    resolve: (user, _args, ctx) => listVariables(ctx.em, { ownerId: user.id, namespaceId: null }),
  }),
);

const CreateVariableInput = builder.inputType('CreateVariableInput', {
  fields: (t) => ({
    namespace: t.string({ description: "Namespace path; the viewer's own variable when null." }),
    key: t.string({ required: true, description: 'Letters, digits and _, not starting with a digit.' }),
    value: t.string({ required: true }),
    masked: t.boolean({
      description: 'Encrypt it, never return it and mask it in logs; at least 6 characters.',
    }),
  }),
});

const DeleteVariableInput = builder.inputType('DeleteVariableInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

builder.mutationFields((t) => ({
  createVariable: t.field({
    type: VariableRef,
    description: 'Adds a variable to a namespace (owner or collaborator) or to your own; there is no update.',
    authScopes: { scope: 'variable:write' },
    args: { input: t.arg({ type: CreateVariableInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'variable' } },
    resolve: async (_root, { input }, ctx) => {
      const scope = await resolveSecretScope(
        ctx.em,
        ctx.access,
        ctx.services.namespaces,
        input.namespace,
        'write',
      );
      if (!scope.ok) throw outcomeError(scope);
      const created = await createVariable(ctx.em, ctx.secrets, scope.value, {
        key: input.key,
        value: input.value,
        masked: input.masked ?? false,
      });
      if (!created.ok) throw outcomeError(created);
      return created.value;
    },
  }),
  deleteVariable: t.field({
    type: 'ID',
    description: 'Deletes a variable; builds already submitted keep their snapshot.',
    authScopes: { scope: 'variable:delete' },
    args: { input: t.arg({ type: DeleteVariableInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(input.id, 'Variable');
      const variable = id ? await findVariable(ctx.em, id) : null;
      const may = variable ? await secretAccess(ctx.em, ctx.access, variable) : null;
      if (!variable || may === null) throw new NotFoundError(`no variable with id ${input.id}`);
      if (may !== 'write') throw forbidden('you may not change the variables of this namespace');
      await deleteVariable(ctx.em, variable);
      return input.id;
    },
  }),
}));

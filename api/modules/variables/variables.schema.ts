import { builder, InputError, NotFoundError } from '../../builder.ts';
import {
  addScopedListFields,
  createInScope,
  deleteResolver,
  namespaceField,
  scopedNodeAuthScopes,
} from './scoped-resource.ts';
import { type Variable, VariableSchema } from './variables.entity.ts';
import { createVariable, variableStore } from './variables.service.ts';

export const VariableRef = builder.loadableNodeRef<Variable>('Variable', {
  id: { resolve: (v) => v.id },
  sort: (v) => v.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(VariableSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

VariableRef.implement({
  description:
    'A build variable of a user (namespace null) or of a namespace; builds get them as environment variables.',
  authScopes: scopedNodeAuthScopes('variable'),
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
    namespace: namespaceField(t, "Null for a user's own variable."),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

addScopedListFields({
  field: 'variables',
  type: VariableRef,
  resource: 'variable',
  namespaceDescription:
    "The namespace's variables, oldest first: every build in the namespace gets them (owner and collaborators only).",
  userDescription:
    "The user's own variables, oldest first: every build the user submits gets them (its own user only).",
  list: (ctx, scope) => variableStore.list(ctx.em, scope),
});

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
    resolve: (_root, { input }, ctx) =>
      createInScope(ctx, input.namespace, (scope) =>
        createVariable(ctx.em, ctx.secrets, scope, {
          key: input.key,
          value: input.value,
          masked: input.masked ?? false,
        }),
      ),
  }),
  deleteVariable: t.field({
    type: 'ID',
    description: 'Deletes a variable; builds already submitted keep their snapshot.',
    authScopes: { scope: 'variable:delete' },
    args: { input: t.arg({ type: DeleteVariableInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: deleteResolver({
      resource: 'variable',
      typename: 'Variable',
      find: (ctx, id) => variableStore.find(ctx.em, id),
      remove: (ctx, variable) => variableStore.delete(ctx.em, variable),
    }),
  }),
}));

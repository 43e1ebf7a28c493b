import { builder, InputError, NotFoundError } from '../../builder.ts';
import {
  addScopedListFields,
  createInScope,
  deleteResolver,
  namespaceField,
  scopedNodeAuthScopes,
} from '../variables/scoped-resource.ts';
import { type SshKey, SshKeySchema } from './keys.entity.ts';
import { createKey, keyStore } from './keys.service.ts';

export const SshKeyRef = builder.loadableNodeRef<SshKey>('SshKey', {
  id: { resolve: (k) => k.id },
  sort: (k) => k.id,
  load: (ids: string[], ctx) => ctx.em.find(SshKeySchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

SshKeyRef.implement({
  description:
    'An SSH private key of a user (namespace null) or of a namespace, placed in builds at ~/.ssh/<name>. The key itself is never returned.',
  authScopes: scopedNodeAuthScopes('key'),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The file name in ~/.ssh.' }),
    config: t.exposeString('config', { description: 'Lines added to the generated ~/.ssh/config.' }),
    namespace: namespaceField(t, "Null for a user's own key."),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

addScopedListFields({
  field: 'sshKeys',
  type: SshKeyRef,
  resource: 'key',
  namespaceDescription:
    "The namespace's SSH keys, oldest first: every build in the namespace gets them (owner and collaborators only).",
  userDescription:
    "The user's own SSH keys, oldest first: every build the user submits gets them (its own user only).",
  list: (ctx, scope) => keyStore.list(ctx.em, scope),
});

const CreateKeyInput = builder.inputType('CreateKeyInput', {
  fields: (t) => ({
    namespace: t.string({ description: "Namespace path; the viewer's own key when null." }),
    name: t.string({
      required: true,
      description: 'The file name in ~/.ssh; characters other than letters, digits, _ . - become _.',
    }),
    privateKey: t.string({
      required: true,
      description: 'PEM or OpenSSH format; stored encrypted, never returned.',
    }),
    config: t.string({ description: 'ssh_config lines for this key, e.g. `Host github.com`.' }),
  }),
});

const DeleteKeyInput = builder.inputType('DeleteKeyInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

builder.mutationFields((t) => ({
  createKey: t.field({
    type: SshKeyRef,
    description: 'Adds an SSH key to a namespace (owner or collaborator) or to your own; there is no update.',
    authScopes: { scope: 'key:write' },
    args: { input: t.arg({ type: CreateKeyInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'key' } },
    resolve: (_root, { input }, ctx) =>
      createInScope(ctx, input.namespace, (scope) =>
        createKey(ctx.em, ctx.secrets, scope, {
          name: input.name,
          privateKey: input.privateKey,
          config: input.config,
        }),
      ),
  }),
  deleteKey: t.field({
    type: 'ID',
    description: 'Deletes an SSH key; builds already submitted keep their snapshot.',
    authScopes: { scope: 'key:delete' },
    args: { input: t.arg({ type: DeleteKeyInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: deleteResolver({
      resource: 'key',
      typename: 'SshKey',
      find: (ctx, id) => keyStore.find(ctx.em, id),
      remove: (ctx, key) => keyStore.delete(ctx.em, key),
    }),
  }),
}));

import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import { localId } from '../../global-id.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import { holdsAnyScope, isSelf, outcomeError } from '../variables/variables.schema.ts';
import { resolveSecretScope, secretAccess } from '../variables/variables.service.ts';
import { type SshKey, SshKeySchema } from './keys.entity.ts';
import { createKey, deleteKey, findKey, listKeys } from './keys.service.ts';

export const SshKeyRef = builder.loadableNodeRef<SshKey>('SshKey', {
  id: { resolve: (k) => k.id },
  sort: (k) => k.id,
  load: (ids: string[], ctx) => ctx.em.find(SshKeySchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

SshKeyRef.implement({
  description:
    'An SSH private key of a user (namespace null) or of a namespace, placed in builds at ~/.ssh/<name>. The key itself is never returned.',
  authScopes: async (k, ctx) =>
    holdsAnyScope(ctx, 'key') && (await secretAccess(ctx.em, ctx.access, k)) !== null,
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The file name in ~/.ssh.' }),
    config: t.exposeString('config', { description: 'Lines added to the generated ~/.ssh/config.' }),
    namespace: t.field({
      type: NamespaceRef,
      nullable: true,
      description: "Null for a user's own key.",
      resolve: (k) => k.namespace?.id ?? null,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(NamespaceRef, 'sshKeys', (t) =>
  t.field({
    type: [SshKeyRef],
    description:
      "The namespace's SSH keys, oldest first: every build in the namespace gets them (owner and collaborators only).",
    authScopes: async (ns, _args, ctx) => hasScope(ctx.auth.scopes, 'key:read') && ctx.access.canWrite(ns),
    resolve: (ns, _args, ctx) => listKeys(ctx.em, { ownerId: ns.owner.id, namespaceId: ns.id }),
  }),
);

builder.objectField(UserRef, 'sshKeys', (t) =>
  t.field({
    type: [SshKeyRef],
    description:
      "The user's own SSH keys, oldest first: every build the user submits gets them (its own user only).",
    authScopes: (user: User, _args, ctx) => isSelf(ctx, user) && { scope: 'key:read' },
    resolve: (user, _args, ctx) => listKeys(ctx.em, { ownerId: user.id, namespaceId: null }),
  }),
);

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
    resolve: async (_root, { input }, ctx) => {
      const scope = await resolveSecretScope(
        ctx.em,
        ctx.access,
        ctx.services.namespaces,
        input.namespace,
        'write',
      );
      if (!scope.ok) throw outcomeError(scope);
      const created = await createKey(ctx.em, ctx.secrets, scope.value, {
        name: input.name,
        privateKey: input.privateKey,
        config: input.config,
      });
      if (!created.ok) throw outcomeError(created);
      return created.value;
    },
  }),
  deleteKey: t.field({
    type: 'ID',
    description: 'Deletes an SSH key; builds already submitted keep their snapshot.',
    authScopes: { scope: 'key:delete' },
    args: { input: t.arg({ type: DeleteKeyInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(input.id, 'SshKey');
      const key = id ? await findKey(ctx.em, id) : null;
      const may = key ? await secretAccess(ctx.em, ctx.access, key) : null;
      if (!key || may === null) throw new NotFoundError(`no key with id ${input.id}`);
      if (may !== 'write') throw forbidden('you may not change the keys of this namespace');
      await deleteKey(ctx.em, key);
      return input.id;
    },
  }),
}));

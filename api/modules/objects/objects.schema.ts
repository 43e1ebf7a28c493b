import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError, uploadChunks } from '../../builder.ts';
import { localId } from '../../global-id.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import { holdsAnyScope, isSelf, outcomeError } from '../variables/variables.schema.ts';
import { resolveSecretScope, secretAccess } from '../variables/variables.service.ts';
import { ObjectSchema, type StoredObject } from './objects.entity.ts';

export const ObjectRef = builder.loadableNodeRef<StoredObject>('Object', {
  id: { resolve: (o) => o.id },
  sort: (o) => o.id,
  load: (ids: string[], ctx) => ctx.em.find(ObjectSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

ObjectRef.implement({
  description:
    'A file uploaded to a user (namespace null) or to a namespace; builds whose manifest names it (`objects: [name => /dest]`) find it there.',
  authScopes: async (o, ctx) =>
    holdsAnyScope(ctx, 'object') && (await secretAccess(ctx.em, ctx.access, o)) !== null,
  fields: (t) => ({
    name: t.exposeString('name'),
    size: t.exposeFloat('size', { description: 'In bytes.' }),
    contentType: t.exposeString('contentType', {
      description: 'Sniffed from its first bytes, else as uploaded.',
    }),
    md5: t.exposeString('md5', { description: 'Hex.' }),
    sha256: t.exposeString('sha256', { description: 'Hex.' }),
    namespace: t.field({
      type: NamespaceRef,
      nullable: true,
      description: "Null for a user's own object.",
      resolve: (o) => o.namespace?.id ?? null,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(NamespaceRef, 'objects', (t) =>
  t.field({
    type: [ObjectRef],
    description:
      "The namespace's objects by name: builds in the namespace may place them (owner and collaborators only).",
    authScopes: async (ns, _args, ctx) => hasScope(ctx.auth.scopes, 'object:read') && ctx.access.canWrite(ns),
    resolve: (ns, _args, ctx) =>
      ctx.services.objects.list(ctx.em, { ownerId: ns.owner.id, namespaceId: ns.id }),
  }),
);

builder.objectField(UserRef, 'objects', (t) =>
  t.field({
    type: [ObjectRef],
    description:
      "The user's own objects by name: every build the user submits may place them (its own user only).",
    authScopes: (user: User, _args, ctx) => isSelf(ctx, user) && { scope: 'object:read' },
    resolve: (user, _args, ctx) => ctx.services.objects.list(ctx.em, { ownerId: user.id, namespaceId: null }),
  }),
);

const UploadObjectInput = builder.inputType('UploadObjectInput', {
  fields: (t) => ({
    namespace: t.string({ description: "Namespace path; the viewer's own object when null." }),
    name: t.string({
      required: true,
      description:
        'Letters, digits, dots, dashes and underscores; unique in its namespace (or among your own).',
    }),
    file: t.field({ type: 'File', required: true }),
  }),
});

const DeleteObjectInput = builder.inputType('DeleteObjectInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

builder.mutationFields((t) => ({
  uploadObject: t.field({
    type: ObjectRef,
    description:
      'Uploads a file (a GraphQL multipart request) to a namespace (owner or collaborator) or to your own objects; at most KILN_OBJECT_MAX_BYTES (5 MiB by default). There is no update: delete and upload again.',
    authScopes: { scope: 'object:write' },
    args: { input: t.arg({ type: UploadObjectInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'object' } },
    resolve: async (_root, { input }, ctx) => {
      const scope = await resolveSecretScope(
        ctx.em,
        ctx.access,
        ctx.services.namespaces,
        input.namespace,
        'write',
        'objects',
      );
      if (!scope.ok) throw outcomeError(scope);
      const file = input.file;
      const uploaded = await ctx.services.objects.upload(ctx.em, scope.value, input.name, {
        name: file.name,
        type: file.type,
        size: file.size,
        stream: () => uploadChunks(file),
      });
      if (!uploaded.ok) throw outcomeError(uploaded);
      return uploaded.value;
    },
  }),
  deleteObject: t.field({
    type: 'ID',
    description: 'Deletes an object; builds that have not placed it yet log it as missing.',
    authScopes: { scope: 'object:delete' },
    args: { input: t.arg({ type: DeleteObjectInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(input.id, 'Object');
      const object = id ? await ctx.services.objects.find(ctx.em, id) : null;
      const may = object ? await secretAccess(ctx.em, ctx.access, object) : null;
      if (!object || may === null) throw new NotFoundError(`no object with id ${input.id}`);
      if (may !== 'write') throw forbidden('you may not change the objects of this namespace');
      await ctx.services.objects.delete(ctx.em, object);
      return input.id;
    },
  }),
}));

import { builder, InputError, NotFoundError, uploadChunks } from '../../builder.ts';
import {
  addScopedListFields,
  createInScope,
  deleteResolver,
  namespaceField,
  scopedNodeAuthScopes,
} from '../variables/scoped-resource.ts';
import { ObjectSchema, type StoredObject } from './objects.entity.ts';

export const ObjectRef = builder.loadableNodeRef<StoredObject>('Object', {
  id: { resolve: (o) => o.id },
  sort: (o) => o.id,
  load: (ids: string[], ctx) => ctx.em.find(ObjectSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

ObjectRef.implement({
  description:
    'A file uploaded to a user (namespace null) or to a namespace; builds whose manifest names it (`objects: [name => /dest]`) find it there.',
  authScopes: scopedNodeAuthScopes('object'),
  fields: (t) => ({
    name: t.exposeString('name'),
    size: t.exposeFloat('size', { description: 'In bytes.' }),
    contentType: t.exposeString('contentType', {
      description: 'Sniffed from its first bytes, else as uploaded.',
    }),
    md5: t.exposeString('md5', { description: 'Hex.' }),
    sha256: t.exposeString('sha256', { description: 'Hex.' }),
    downloadUrl: t.string({
      description:
        'Server-relative URL; GET with the same Authorization (and the object:read scope) returns the bytes (Range supported).',
      resolve: (o) => `/objects/${o.id}`,
    }),
    namespace: namespaceField(t, "Null for a user's own object."),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

addScopedListFields({
  field: 'objects',
  type: ObjectRef,
  resource: 'object',
  namespaceDescription:
    "The namespace's objects by name: builds in the namespace may place them (owner and collaborators only).",
  userDescription:
    "The user's own objects by name: every build the user submits may place them (its own user only).",
  list: (ctx, scope) => ctx.services.objects.list(ctx.em, scope),
});

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
    resolve: (_root, { input }, ctx) => {
      const file = input.file;
      return createInScope(
        ctx,
        input.namespace,
        (scope) =>
          ctx.services.objects.upload(ctx.em, scope, input.name, {
            name: file.name,
            type: file.type,
            size: file.size,
            stream: () => uploadChunks(file),
          }),
        'objects',
      );
    },
  }),
  deleteObject: t.field({
    type: 'ID',
    description: 'Deletes an object; builds that have not placed it yet log it as missing.',
    authScopes: { scope: 'object:delete' },
    args: { input: t.arg({ type: DeleteObjectInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: deleteResolver({
      resource: 'object',
      typename: 'Object',
      find: (ctx, id) => ctx.services.objects.find(ctx.em, id),
      remove: (ctx, object) => ctx.services.objects.delete(ctx.em, object),
    }),
  }),
}));

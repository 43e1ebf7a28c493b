import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError } from '../../builder.ts';
import { BuildSchema } from '../builds/builds.entity.ts';
import { BuildRef, JobRef } from '../builds/builds.schema.ts';
import type { User } from '../users/users.entity.ts';
import { UserRef } from '../users/users.schema.ts';
import { type Artifact, ArtifactSchema } from './artifacts.entity.ts';
import { MAX_CLEANUP_BYTES, setCleanupBytes } from './artifacts.service.ts';

/** A subscription keeps its context: its loaders must read the rows as they are at each event. */
const FRESH = { cache: false };

export const ArtifactRef = builder.loadableNodeRef<Artifact>('Artifact', {
  id: { resolve: (a) => a.id },
  sort: (a) => a.id,
  loaderOptions: FRESH,
  load: (ids: string[], ctx) =>
    ctx.em.find(ArtifactSchema, { id: { $in: ids }, deletedAt: null }, { disableIdentityMap: true }),
});

ArtifactRef.implement({
  description: "A file a job's `artifacts` collected; visible exactly when its build is.",
  authScopes: async (a, ctx) => {
    if (!hasScope(ctx.auth.scopes, 'artifact:read')) return false;
    const build = await ctx.em.findOne(BuildSchema, { id: a.build.id }, { disableIdentityMap: true });
    return build ? ctx.access.canReadBuild(build) : false;
  },
  fields: (t) => ({
    name: t.exposeString('name', {
      description: "The name it was collected as (the manifest's `src => name`, or the file's base name).",
    }),
    job: t.field({ type: JobRef, resolve: (a) => a.job.id }),
    size: t.exposeFloat('size', { description: 'In bytes (after truncation to the limit, if any).' }),
    sha256: t.exposeString('sha256', { description: 'Hex.' }),
    md5: t.exposeString('md5', { description: 'Hex.' }),
    downloadUrl: t.string({
      description:
        'Absolute or server-relative URL; GET with the same Authorization returns the bytes (Range supported).',
      resolve: (a) => `/artifacts/${a.id}`,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(BuildRef, 'artifacts', (t) =>
  t.loadableList({
    type: ArtifactRef,
    description: 'What its jobs collected, by name.',
    authScopes: { scope: 'artifact:read' },
    loaderOptions: FRESH,
    load: async (ids: string[], ctx) => {
      const artifacts = await ctx.services.artifacts.ofBuilds(ctx.em, ids);
      return ids.map((id) => artifacts.filter((a) => a.build.id === id));
    },
    resolve: (b) => b.id,
  }),
);

builder.objectField(JobRef, 'artifacts', (t) =>
  t.loadableList({
    type: ArtifactRef,
    description: 'What this job collected, by name.',
    authScopes: { scope: 'artifact:read' },
    loaderOptions: FRESH,
    load: async (ids: string[], ctx) => {
      const artifacts = await ctx.services.artifacts.ofJobs(ctx.em, ids);
      return ids.map((id) => artifacts.filter((a) => a.job.id === id));
    },
    resolve: (j) => j.id,
  }),
);

builder.objectField(UserRef, 'artifactCleanupBytes', (t) =>
  t.float({
    description:
      "How many bytes of the user's newest artifacts the curator keeps; older ones are deleted (pinned builds keep theirs). 0: no limit. 1 GiB until set. Its own user (or an admin) only.",
    authScopes: (user: User, _args, ctx) =>
      ctx.auth.viewer !== null &&
      (ctx.auth.viewer.isAdmin || ctx.auth.viewer.id === user.id) && { scope: 'artifact:read' },
    resolve: (user) => user.cleanupBytes,
  }),
);

const SetArtifactCleanupInput = builder.inputType('SetArtifactCleanupInput', {
  fields: (t) => ({
    bytes: t.float({ required: true, description: 'A whole number of bytes; 0 turns the cleanup off.' }),
  }),
});

builder.mutationField('setArtifactCleanup', (t) =>
  t.field({
    type: UserRef,
    description:
      "Sets how many bytes of your newest artifacts the curator keeps (User.artifactCleanupBytes); it applies from the curator's next round.",
    authScopes: { $all: { signedIn: true, scope: 'artifact:write' } },
    args: { input: t.arg({ type: SetArtifactCleanupInput, required: true }) },
    errors: { types: [InputError], dataField: { name: 'user' } },
    resolve: async (_root, { input }, ctx) => {
      const { bytes } = input;
      if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_CLEANUP_BYTES) {
        throw new InputError(`a whole number of bytes from 0 to ${MAX_CLEANUP_BYTES}`, 'bytes');
      }
      return setCleanupBytes(ctx.em, ctx.auth.viewer!, bytes);
    },
  }),
);

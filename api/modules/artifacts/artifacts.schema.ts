import { hasScope } from '../../auth/scopes.ts';
import { builder } from '../../builder.ts';
import { BuildSchema } from '../builds/builds.entity.ts';
import { BuildRef, JobRef } from '../builds/builds.schema.ts';
import { type Artifact, ArtifactSchema } from './artifacts.entity.ts';

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

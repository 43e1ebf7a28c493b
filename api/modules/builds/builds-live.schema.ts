import { Access } from '../../auth/access.ts';
import { builder } from '../../builder.ts';
import { BuildSchema } from './builds.entity.ts';
import { BuildRef, BuildStatusEnum, type BuildView, viewAt } from './builds.schema.ts';

builder.subscriptionFields((t) => ({
  buildsUpdated: t.field({
    type: BuildRef,
    description:
      'Every build you may see, when it is created and on every change of its status or of one of its jobs’ status; filtered like `builds`.',
    authScopes: { scope: 'build:read' },
    args: {
      status: t.arg({
        type: BuildStatusEnum,
        description: 'Only changes that leave a build in this status.',
      }),
      tag: t.arg.string(),
      namespace: t.arg.string({
        description: 'Only builds of this namespace path (`team/app` or `owner@team/app`).',
      }),
    },
    subscribe: async function* (_root, args, ctx) {
      let namespaceId: string | null = null;
      if (args.namespace) {
        const ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, args.namespace);
        // An unknown namespace sends nothing, like the empty list `builds` answers.
        if (!ns) return;
        namespaceId = ns.id;
      }
      for await (const event of ctx.pubsub.subscribe(['builds'])) {
        if (event.topic !== 'build') continue;
        const update = event.update;
        if (args.status && update.status !== args.status) continue;
        // A fresh view per event: a subscription outlives collaborations and visibility changes.
        const em = ctx.orm.em.fork();
        const build = await em.findOne(BuildSchema, { id: update.buildId }, { disableIdentityMap: true });
        if (!build) continue;
        if (namespaceId && build.namespace?.id !== namespaceId) continue;
        if (args.tag) {
          const tags = await ctx.services.builds.tagsOf(em, [build.id]);
          if (!tags.get(build.id)?.includes(args.tag)) continue;
        }
        if (!(await new Access(em, ctx.auth).canReadBuild(build))) continue;
        const view: BuildView = viewAt(build, update);
        yield view;
      }
    },
    resolve: (build: BuildView) => build,
  }),
}));

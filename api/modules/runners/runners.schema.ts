import { builder } from '../../builder.ts';
import type { Context } from '../../context.ts';
import type { RunnerHeartbeat } from '../../events/pubsub.ts';
import { type Runner, RunnerSchema } from './runners.entity.ts';

/** A runner is online when it was heard from this recently (the watchdog's limit, too). */
export const ONLINE_MS = 30_000;
/** runnersUpdated sends the list at most this often, however many runners beat. */
export const RUNNERS_THROTTLE_MS = 1_000;

/** Admins, or a signed-in token holding runner:read (sessions hold every scope). */
const canSeeRunners = { $all: { signedIn: true, $any: { admin: true, scope: 'runner:read' as const } } };

type RunnerView = Runner & { online: boolean };

const RunnerRef = builder.objectRef<RunnerView>('Runner').implement({
  description: 'A runner process, as last heard of through its heartbeats (every 5 s).',
  // Reached only through runners and runnersUpdated, which check.
  authScopes: { public: true },
  fields: (t) => ({
    name: t.exposeString('name'),
    queues: t.exposeStringList('queues', { description: 'The queues it takes builds from.' }),
    concurrency: t.exposeInt('concurrency', { description: 'How many builds it runs at once, at most.' }),
    running: t.int({
      description: 'How many builds it was running at its last heartbeat.',
      resolve: (r) => r.running.length,
    }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime' }),
    online: t.exposeBoolean('online', {
      description: `Heard from within the last ${ONLINE_MS / 1000} s.`,
    }),
  }),
});

/**
 * The runners as stored, with the heartbeats this replica has just received laid over them: the
 * fan-out can deliver a heartbeat before the ingester has stored it.
 */
async function listRunners(ctx: Context, beats: ReadonlyMap<string, RunnerHeartbeat>): Promise<RunnerView[]> {
  const rows = await ctx.orm.em.fork().find(RunnerSchema, {}, { orderBy: { name: 'asc' } });
  const byName = new Map<string, Runner>(rows.map((r) => [r.name, r]));
  for (const beat of beats.values()) {
    const at = new Date(beat.at);
    const known = byName.get(beat.runner);
    if (known && known.lastSeenAt >= at) continue;
    byName.set(beat.runner, {
      name: beat.runner,
      queues: beat.queues,
      concurrency: beat.concurrency,
      running: beat.running,
      firstSeenAt: known?.firstSeenAt ?? at,
      lastSeenAt: at,
    });
  }
  const now = Date.now();
  return [...byName.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => ({ ...r, online: now - r.lastSeenAt.getTime() < ONLINE_MS }));
}

builder.queryFields((t) => ({
  runners: t.field({
    type: [RunnerRef],
    description: 'Every runner ever heard of, by name (admins, or a token with runner:read).',
    authScopes: canSeeRunners,
    resolve: (_root, _args, ctx) => listRunners(ctx, new Map()),
  }),
}));

builder.subscriptionFields((t) => ({
  runnersUpdated: t.field({
    type: [RunnerRef],
    description: `The runners at once, then again whenever a heartbeat arrives (at most once every ${RUNNERS_THROTTLE_MS / 1000} s).`,
    authScopes: canSeeRunners,
    subscribe: async function* (_root, _args, ctx) {
      const controller = new AbortController();
      const events = ctx.pubsub.subscribeRunners(controller.signal);
      const beats = new Map<string, RunnerHeartbeat>();
      let dirty = false;
      let wake = (): void => {};
      // Drains the heartbeats as they come, so a burst yields one list, not one list per beat.
      const pump = (async () => {
        for await (const beat of events) {
          beats.set(beat.runner, beat);
          dirty = true;
          wake();
        }
        wake();
      })();
      try {
        yield await listRunners(ctx, beats);
        let last = performance.now();
        while (!controller.signal.aborted) {
          while (!dirty && !controller.signal.aborted) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
          const wait = last + RUNNERS_THROTTLE_MS - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          dirty = false;
          last = performance.now();
          yield await listRunners(ctx, beats);
        }
      } finally {
        controller.abort();
        await pump;
      }
    },
    resolve: (runners: RunnerView[]) => runners,
  }),
}));

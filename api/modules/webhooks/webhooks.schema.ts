/**
 * Outgoing webhooks in the schema: a namespace's are seen and managed by those who may write it
 * (their payloads can hold what the creator may read), a user's own (no namespace) by that user.
 * Scopes `webhook:read|write|delete`.
 */
import { type ResolveCursorConnectionArgs, resolveCursorConnection } from '@pothos/plugin-relay';
import { forbidden } from '../../auth/principal.ts';
import { hasScope } from '../../auth/scopes.ts';
import { builder, InputError, NotFoundError } from '../../builder.ts';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { NamespaceRef } from '../namespaces/namespaces.schema.ts';
import { UserRef } from '../users/users.schema.ts';
import {
  type Webhook,
  type WebhookDelivery,
  WebhookDeliverySchema,
  WebhookSchema,
} from './webhooks.entity.ts';

async function mayManage(ctx: Context, w: Webhook): Promise<boolean> {
  if (!w.namespace) return ctx.auth.viewer?.id === w.owner.id || ctx.auth.viewer?.isAdmin === true;
  const ns = (await ctx.em.findOne(NamespaceSchema, { id: w.namespace.id })) as Namespace | null;
  return ns !== null && (await ctx.access.canWrite(ns));
}

export const WebhookRef = builder.loadableNodeRef<Webhook>('Webhook', {
  id: { resolve: (w) => w.id },
  sort: (w) => w.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(WebhookSchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

export const WebhookDeliveryRef = builder.loadableNodeRef<WebhookDelivery>('WebhookDelivery', {
  id: { resolve: (d) => d.id },
  sort: (d) => d.id,
  load: (ids: string[], ctx) =>
    ctx.em.find(WebhookDeliverySchema, { id: { $in: ids } }, { disableIdentityMap: true }),
});

const WebhookDeliveryConnection = builder.connectionObject(
  { type: WebhookDeliveryRef, name: 'WebhookDeliveryConnection' },
  { name: 'WebhookDeliveryEdge' },
);

const encodeCursor = (d: WebhookDelivery) =>
  Buffer.from(`delivery:${d.createdAt.toISOString()}|${d.id}`).toString('base64url');
function decodeCursor(cursor: string | null | undefined): { createdAt: Date; id: string } | null {
  if (!cursor) return null;
  const m = /^delivery:([^|]+)\|([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
  const at = m ? new Date(m[1]!) : null;
  if (!m || !at || Number.isNaN(at.getTime())) throw new InputError('not a cursor of this list', 'after');
  return { createdAt: at, id: m[2]! };
}

WebhookRef.implement({
  description:
    'A stored GraphQL subscription whose every result is POSTed, signed as Standard Webhooks sign.',
  authScopes: async (w, ctx) => hasScope(ctx.auth.scopes, 'webhook:read') && (await mayManage(ctx, w)),
  fields: (t) => ({
    namespace: t.field({ type: NamespaceRef, nullable: true, resolve: (w) => w.namespace?.id ?? null }),
    owner: t.field({
      type: UserRef,
      description: 'Whose rights its subscription runs with.',
      resolve: (w) => w.owner.id,
    }),
    url: t.exposeString('url'),
    subscription: t.exposeString('subscription', {
      description: "A subscription document, run with the creator's rights; each result is one signed POST.",
    }),
    active: t.exposeBoolean('active', { description: 'False while paused, or once stopped (see problem).' }),
    problem: t.exposeString('problem', {
      nullable: true,
      description: 'Why it stopped (its creator lost access, its subscription fails); null when all is well.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    deliveries: t.field({
      type: WebhookDeliveryConnection,
      description: 'What it sent or is sending, newest first.',
      args: { first: t.arg.int({ description: 'At most 100; default 20.' }), after: t.arg.string() },
      resolve: (w, args, ctx) => {
        const after = decodeCursor(args.after);
        return resolveCursorConnection(
          { args, defaultSize: 20, maxSize: 100, toCursor: encodeCursor },
          ({ limit }: ResolveCursorConnectionArgs) =>
            ctx.services.webhooks.deliveries(ctx.em, w.id, { limit, after }),
        );
      },
    }),
  }),
});

WebhookDeliveryRef.implement({
  description: "One result of a webhook's subscription: stored, then sent until the receiver takes it.",
  authScopes: async (d, ctx) => {
    const w = await ctx.em.findOne(WebhookSchema, { id: d.webhook.id });
    return w !== null && hasScope(ctx.auth.scopes, 'webhook:read') && (await mayManage(ctx, w));
  },
  fields: (t) => ({
    webhook: t.field({ type: WebhookRef, resolve: (d) => d.webhook.id }),
    payload: t.exposeString('payload', { description: 'The JSON body sent.' }),
    state: t.exposeString('state', {
      description: 'pending (to be sent, or retried), delivered or failed (gave up).',
    }),
    responseStatus: t.exposeInt('responseStatus', {
      nullable: true,
      description: "The receiver's HTTP status; null when it could not be reached.",
    }),
    attempts: t.exposeInt('attempts'),
    lastError: t.exposeString('lastError', { nullable: true, description: 'Why the last attempt failed.' }),
    nextAttemptAt: t.expose('nextAttemptAt', { type: 'DateTime', nullable: true }),
    deliveredAt: t.expose('deliveredAt', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.objectField(NamespaceRef, 'webhooks', (t) =>
  t.field({
    type: [WebhookRef],
    description: "The namespace's outgoing webhooks (those who may write it).",
    authScopes: async (ns, _args, ctx) =>
      hasScope(ctx.auth.scopes, 'webhook:read') && ctx.access.canWrite(ns),
    resolve: (ns, _args, ctx) => ctx.services.webhooks.listOfNamespace(ctx.em, ns.id),
  }),
);

builder.objectField(UserRef, 'webhooks', (t) =>
  t.field({
    type: [WebhookRef],
    description: 'The webhooks of the user that belong to no namespace (its own user only).',
    authScopes: (user, _args, ctx) =>
      (ctx.auth.viewer?.id === user.id || ctx.auth.viewer?.isAdmin === true) && { scope: 'webhook:read' },
    resolve: (user, _args, ctx) => ctx.services.webhooks.listOfUser(ctx.em, user.id),
  }),
);

const CreateWebhookInput = builder.inputType('CreateWebhookInput', {
  fields: (t) => ({
    namespace: t.string({ description: "The viewer's own webhook when null." }),
    url: t.string({ required: true }),
    subscription: t.string({
      required: true,
      description:
        'One subscription operation without variables, e.g. `subscription { buildsUpdated { number status } }`.',
    }),
  }),
});

const UpdateWebhookInput = builder.inputType('UpdateWebhookInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    url: t.string(),
    subscription: t.string(),
    active: t.boolean({ description: 'False pauses it (nothing is stored while paused); true resumes it.' }),
  }),
});

const IdInput = (name: string) =>
  builder.inputType(name, { fields: (t) => ({ id: t.id({ required: true }) }) });
const DeleteWebhookInput = IdInput('DeleteWebhookInput');
const RedeliverWebhookDeliveryInput = IdInput('RedeliverWebhookDeliveryInput');

const CreateWebhookSuccess = builder
  .objectRef<{ webhook: Webhook; secret: string }>('CreateWebhookSuccess')
  .implement({
    fields: (t) => ({
      webhook: t.field({ type: WebhookRef, resolve: (c) => c.webhook }),
      secret: t.exposeString('secret', {
        description:
          'The signing secret (`whsec_…`, as Standard Webhooks libraries take it), shown this once.',
      }),
    }),
  });

/** The webhook, once the viewer may manage it; not found otherwise (others learn nothing of it). */
async function manageable(ctx: Context, id: string | null, shownId: string): Promise<Webhook> {
  const w = id ? await ctx.services.webhooks.find(ctx.em, id) : null;
  if (!w || !(await mayManage(ctx, w))) throw new NotFoundError(`no webhook with id ${shownId}`);
  return w;
}

const orInputError = <T>(
  outcome: { ok: true; value: T } | { ok: false; path: string; reason: string },
): T => {
  if (outcome.ok) return outcome.value;
  throw new InputError(outcome.reason, outcome.path);
};

builder.queryField('webhookSubscriptionProblem', (t) =>
  t.string({
    nullable: true,
    description:
      "Why createWebhook would refuse this subscription document (the same check), or null when it would take it: an editor's check as you type.",
    args: { subscription: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => {
      const checked = ctx.services.webhooks.checkSubscription(args.subscription);
      return 'reason' in checked ? checked.reason : null;
    },
  }),
);

builder.mutationFields((t) => ({
  createWebhook: t.field({
    type: CreateWebhookSuccess,
    description: 'An outgoing webhook of a namespace you may write, or your own (namespace null).',
    authScopes: { scope: 'webhook:write' },
    args: { input: t.arg({ type: CreateWebhookInput, required: true }) },
    errors: { types: [InputError, NotFoundError], directResult: true },
    resolve: async (_root, { input }, ctx) => {
      let ns: Namespace | null = null;
      if (input.namespace) {
        ns = await ctx.services.namespaces.find(ctx.em, ctx.auth.viewer, input.namespace);
        if (!ns || !(await ctx.access.canRead(ns)))
          throw new NotFoundError(`no namespace ${input.namespace}`);
        if (!(await ctx.access.canWrite(ns)))
          throw forbidden('only those who may write the namespace add its webhooks');
      }
      return orInputError(
        await ctx.services.webhooks.create(ctx.em, ctx.auth.viewer!, ns, {
          url: input.url,
          subscription: input.subscription,
        }),
      );
    },
  }),
  updateWebhook: t.field({
    type: WebhookRef,
    description: 'Changes a webhook; absent fields stay as they are. active: false pauses it.',
    authScopes: { scope: 'webhook:write' },
    args: { input: t.arg({ type: UpdateWebhookInput, required: true }) },
    errors: { types: [InputError, NotFoundError], dataField: { name: 'webhook' } },
    resolve: async (_root, { input }, ctx) => {
      const w = await manageable(ctx, localId(String(input.id), 'Webhook'), String(input.id));
      return orInputError(
        await ctx.services.webhooks.update(ctx.em, w, {
          url: input.url,
          subscription: input.subscription,
          active: input.active,
        }),
      );
    },
  }),
  deleteWebhook: t.field({
    type: 'ID',
    description: 'Deletes a webhook and its deliveries.',
    authScopes: { scope: 'webhook:delete' },
    args: { input: t.arg({ type: DeleteWebhookInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'deletedId' } },
    resolve: async (_root, { input }, ctx) => {
      const w = await manageable(ctx, localId(String(input.id), 'Webhook'), String(input.id));
      await ctx.services.webhooks.delete(ctx.em, w);
      return String(input.id);
    },
  }),
  redeliverWebhookDelivery: t.field({
    type: WebhookDeliveryRef,
    description: 'Sends a stored delivery again now, with the same webhook-id.',
    authScopes: { scope: 'webhook:write' },
    args: { input: t.arg({ type: RedeliverWebhookDeliveryInput, required: true }) },
    errors: { types: [NotFoundError], dataField: { name: 'delivery' } },
    resolve: async (_root, { input }, ctx) => {
      const id = localId(String(input.id), 'WebhookDelivery');
      const d = id ? await ctx.em.findOne(WebhookDeliverySchema, { id }) : null;
      if (!d) throw new NotFoundError(`no delivery with id ${String(input.id)}`);
      await manageable(ctx, d.webhook.id, String(input.id));
      await ctx.services.webhooks.redeliver(ctx.em, d);
      return (await ctx.em.findOne(WebhookDeliverySchema, { id: d.id }, { disableIdentityMap: true }))!;
    },
  }),
}));

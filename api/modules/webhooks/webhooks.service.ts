/**
 * Outgoing webhooks: a stored GraphQL subscription whose every result is POSTed, signed.
 *
 * - **Checked when created**: one subscription operation, no variables, valid against the schema,
 *   within the nesting, depth, breadth and complexity limits every request has; the URL is http(s)
 *   and resolves to no private address (unless KILN_ALLOW_PRIVATE_URLS).
 * - **Run** (`WebhookRunner`, on the one serve that leads the `webhook-subscriptions` job): each
 *   active webhook's document is subscribed with its creator's rights, confined to its namespace's
 *   tree (`Auth.within`). Each result is stored as a pending delivery first; a creator who may no
 *   longer read the namespace stops the webhook with a reason.
 * - **Sent** (`sendDue`, on any serve): due deliveries are claimed with FOR UPDATE SKIP LOCKED (one
 *   replica sends each), POSTed with the Standard Webhooks headers, and retried after 5 s, doubling
 *   up to an hour, for a day after they were made. A receiver slower than 10 s is a failed attempt.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { complexityFromQuery } from '@pothos/plugin-complexity';
import {
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  parse,
  subscribe,
  validate,
} from 'graphql';
import type { Logger } from 'pino';
import { Access } from '../../auth/access.ts';
import type { Auth } from '../../auth/principal.ts';
import { ALL_SCOPES } from '../../auth/scopes.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { Context } from '../../context.ts';
import { deeperThan, MAX_DOCUMENT_NESTING, MAX_DOCUMENT_TOKENS } from '../../graphql-limits.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import type { Outcome } from '../repositories/repositories.service.ts';
import { type User, UserSchema } from '../users/users.entity.ts';
import { checkWebhookUrl, newSecret, post, resolveSafely, sign, UnsafeUrlError } from './send.ts';
import {
  type Webhook,
  type WebhookDelivery,
  WebhookDeliverySchema,
  WebhookSchema,
} from './webhooks.entity.ts';

/** The limits every request has (builder.ts's complexity plugin), applied to a stored document. */
const LIMITS = { complexity: 5000, depth: 12, breadth: 200 };
/** How long a receiver may take before the attempt counts as failed. */
export const RECEIVER_TIMEOUT_MS = 10_000;
/** Deliveries are retried for this long after they were made. */
const RETRY_FOR_MS = 24 * 3600_000;
const FIRST_RETRY_MS = 5_000;
const LONGEST_WAIT_MS = 3600_000;
/** How long a replica holds a claimed delivery while it sends it. */
const CLAIM_MS = 60_000;
const SEND_BATCH = 50;
const MAX_SUBSCRIPTION_LENGTH = 16 * 1024;

export interface WebhookServiceDeps {
  orm: MikroORM;
  secrets: SecretBox;
  logger: Logger;
  schema: () => GraphQLSchema;
  /** KILN_ALLOW_PRIVATE_URLS: let webhooks reach loopback and private addresses (tests, one-machine setups). */
  allowPrivateUrls: boolean;
  /** A delivery was stored: send soon. */
  onDelivery?: () => void;
  /** The webhooks changed: the runner reconciles its subscriptions. */
  onChange?: () => void;
  now?: () => Date;
}

export interface WebhookInput {
  url?: string | null;
  subscription?: string | null;
  active?: boolean | null;
}

export class WebhookService {
  private readonly now: () => Date;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  find(em: EntityManager, id: string): Promise<Webhook | null> {
    return em.findOne(WebhookSchema, { id });
  }

  listOfNamespace(em: EntityManager, namespaceId: string): Promise<Webhook[]> {
    return em.find(WebhookSchema, { namespace: namespaceId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  }

  listOfUser(em: EntityManager, userId: string): Promise<Webhook[]> {
    return em.find(
      WebhookSchema,
      { owner: userId, namespace: null },
      { orderBy: { createdAt: 'asc', id: 'asc' } },
    );
  }

  /** Why `text` is not a subscription a webhook may store, with the field it is about. */
  checkSubscription(text: string): { path: string; reason: string } | { document: DocumentNode } {
    const fail = (reason: string) => ({ path: 'input.subscription', reason });
    if (text.trim() === '')
      return fail('give a subscription document, e.g. subscription { buildsUpdated { number status } }');
    if (text.length > MAX_SUBSCRIPTION_LENGTH)
      return fail(`a subscription is at most ${MAX_SUBSCRIPTION_LENGTH} characters`);
    const deep = deeperThan(text, MAX_DOCUMENT_NESTING);
    if (deep !== null) return fail(`the document's nesting depth passes ${MAX_DOCUMENT_NESTING} levels`);
    let document: DocumentNode;
    try {
      document = parse(text, { maxTokens: MAX_DOCUMENT_TOKENS });
    } catch (error) {
      return fail(`not a GraphQL document: ${(error as Error).message}`);
    }
    const operations = document.definitions.filter(
      (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
    );
    if (operations.length !== 1) return fail(`give exactly one operation (this has ${operations.length})`);
    const [operation] = operations;
    if (operation!.operation !== 'subscription') {
      return fail(`the operation is a ${operation!.operation}: a webhook runs a subscription`);
    }
    if ((operation!.variableDefinitions?.length ?? 0) > 0) {
      return fail('a webhook has no one to give it variables: write the values in the document');
    }
    const schema = this.deps.schema();
    const errors = validate(schema, document);
    if (errors.length > 0) return fail(errors.map((e) => e.message).join('; '));
    const cost = complexityFromQuery(document, { schema });
    for (const key of ['depth', 'breadth', 'complexity'] as const) {
      if (cost[key] > LIMITS[key]) return fail(`its ${key} is ${cost[key]}, more than ${LIMITS[key]}`);
    }
    return { document };
  }

  /** Why `url` may not take webhooks (private addresses are looked up), or null. */
  private async checkUrl(url: string): Promise<string | null> {
    const problem = checkWebhookUrl(url);
    if (problem) return problem;
    try {
      await resolveSafely(new URL(url).hostname, this.deps.allowPrivateUrls);
      return null;
    } catch (error) {
      return error instanceof UnsafeUrlError
        ? error.message
        : `cannot resolve the URL's host: ${(error as Error).message}`;
    }
  }

  async create(
    em: EntityManager,
    owner: User,
    namespace: Namespace | null,
    input: { url: string; subscription: string },
  ): Promise<Outcome<{ webhook: Webhook; secret: string }>> {
    const url = input.url.trim();
    const urlProblem = await this.checkUrl(url);
    if (urlProblem) return { ok: false, path: 'input.url', reason: urlProblem };
    const checked = this.checkSubscription(input.subscription);
    if ('reason' in checked) return { ok: false, ...checked };
    const secret = newSecret();
    const webhook = em.create(WebhookSchema, {
      id: randomUUID(),
      owner: em.getReference(UserSchema, owner.id, { wrapped: true }),
      namespace: namespace ? em.getReference(NamespaceSchema, namespace.id, { wrapped: true }) : null,
      url,
      subscription: input.subscription,
      encryptedSecret: this.deps.secrets.seal(secret),
      active: true,
      problem: null,
      createdAt: new Date(),
    });
    await em.persistAndFlush(webhook);
    this.deps.onChange?.();
    return { ok: true, value: { webhook, secret } };
  }

  async update(em: EntityManager, webhook: Webhook, input: WebhookInput): Promise<Outcome<Webhook>> {
    if (input.url != null) {
      const url = input.url.trim();
      const problem = await this.checkUrl(url);
      if (problem) return { ok: false, path: 'input.url', reason: problem };
      webhook.url = url;
    }
    if (input.subscription != null) {
      const checked = this.checkSubscription(input.subscription);
      if ('reason' in checked) return { ok: false, ...checked };
      webhook.subscription = input.subscription;
    }
    if (input.active != null) {
      webhook.active = input.active;
      if (input.active) webhook.problem = null;
    }
    await em.flush();
    this.deps.onChange?.();
    return { ok: true, value: webhook };
  }

  async delete(em: EntityManager, webhook: Webhook): Promise<void> {
    await em.removeAndFlush(webhook);
    this.deps.onChange?.();
  }

  deliveries(
    em: EntityManager,
    webhookId: string,
    opts: { limit: number; after: { createdAt: Date; id: string } | null },
  ): Promise<WebhookDelivery[]> {
    return em.find(
      WebhookDeliverySchema,
      {
        webhook: webhookId,
        ...(opts.after
          ? {
              $or: [
                { createdAt: { $lt: opts.after.createdAt } },
                { createdAt: opts.after.createdAt, id: { $lt: opts.after.id } },
              ],
            }
          : {}),
      },
      { orderBy: { createdAt: 'desc', id: 'desc' }, limit: opts.limit, disableIdentityMap: true },
    );
  }

  /** Stores one result of `webhook`'s subscription, to be sent. */
  async store(webhookId: string, result: ExecutionResult): Promise<string> {
    const em = this.deps.orm.em.fork();
    const id = randomUUID();
    const now = this.now();
    await em.execute(
      `insert into webhook_deliveries (id, webhook_id, payload, state, attempts, next_attempt_at, created_at)
       values (?, ?, ?, 'pending', 0, ?, ?)`,
      [id, webhookId, JSON.stringify(result), now, now],
    );
    this.deps.onDelivery?.();
    return id;
  }

  /** `redeliverWebhookDelivery`: sends a stored delivery again, now (its attempts go on counting). */
  async redeliver(em: EntityManager, delivery: WebhookDelivery): Promise<void> {
    await em.execute(
      `update webhook_deliveries set state = 'pending', next_attempt_at = ?, claimed_until = null where id = ?`,
      [this.now(), delivery.id],
    );
    this.deps.onDelivery?.();
  }

  /**
   * Sends the deliveries that are due, claimed so that of several replicas one sends each. Returns
   * how many were delivered.
   */
  async sendDue(): Promise<number> {
    const em = this.deps.orm.em.fork();
    const now = this.now();
    const claimed = await em.execute<
      {
        id: string;
        payload: string;
        attempts: number;
        created_at: Date;
        url: string;
        encrypted_secret: string;
      }[]
    >(
      `with due as (
         select d.id from webhook_deliveries d join webhooks w on w.id = d.webhook_id
         where d.state = 'pending' and d.next_attempt_at <= ? and (d.claimed_until is null or d.claimed_until < ?)
         order by d.next_attempt_at
         limit ?
         for update of d skip locked
       )
       update webhook_deliveries d set claimed_until = ?
       from due, webhooks w
       where d.id = due.id and w.id = d.webhook_id
       returning d.id, d.payload, d.attempts, d.created_at, w.url, w.encrypted_secret`,
      [now, now, SEND_BATCH, new Date(now.getTime() + CLAIM_MS)],
    );
    let delivered = 0;
    await Promise.all(
      claimed.map(async (d) => {
        if (await this.attempt(em, d)) delivered++;
      }),
    );
    return delivered;
  }

  private async attempt(
    em: EntityManager,
    d: {
      id: string;
      payload: string;
      attempts: number;
      created_at: Date;
      url: string;
      encrypted_secret: string;
    },
  ): Promise<boolean> {
    const timestamp = Math.floor(this.now().getTime() / 1000);
    const secret = this.deps.secrets.open(d.encrypted_secret);
    const sent = await post(
      d.url,
      {
        'content-type': 'application/json',
        'user-agent': 'Kiln-Webhooks',
        'webhook-id': d.id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': sign(secret, d.id, timestamp, d.payload),
      },
      d.payload,
      { timeoutMs: RECEIVER_TIMEOUT_MS, allowPrivate: this.deps.allowPrivateUrls },
    );
    const attempts = d.attempts + 1;
    const ok = sent.status !== null && sent.status >= 200 && sent.status < 300;
    const at = this.now();
    if (ok) {
      await em.execute(
        `update webhook_deliveries set state = 'delivered', response_status = ?, attempts = ?, last_error = null,
           delivered_at = ?, next_attempt_at = null, claimed_until = null where id = ?`,
        [sent.status, attempts, at, d.id],
      );
      return true;
    }
    const wait = Math.min(FIRST_RETRY_MS * 2 ** (attempts - 1), LONGEST_WAIT_MS);
    const next = new Date(at.getTime() + wait);
    const gaveUp = next.getTime() > new Date(d.created_at).getTime() + RETRY_FOR_MS;
    const error = sent.error ?? `the receiver answered ${sent.status}`;
    await em.execute(
      `update webhook_deliveries set state = ?, response_status = ?, attempts = ?, last_error = ?,
         next_attempt_at = ?, claimed_until = null where id = ?`,
      [
        gaveUp ? 'failed' : 'pending',
        sent.status,
        attempts,
        error.slice(0, 1000),
        gaveUp ? null : next,
        d.id,
      ],
    );
    this.deps.logger.info(
      { delivery: d.id, attempts, error, retryAt: gaveUp ? null : next },
      'a webhook delivery failed',
    );
    return false;
  }

  /** When the soonest pending delivery is due (the sender sleeps until then). */
  async soonestDue(): Promise<Date | null> {
    const [row] = await this.deps.orm.em
      .fork()
      .execute<{ at: Date | null }[]>(
        `select min(next_attempt_at) as at from webhook_deliveries where state = 'pending'`,
      );
    return row?.at ? new Date(row.at) : null;
  }
}

/** What the runner needs to run a webhook's subscription as its creator. */
export interface WebhookRunnerDeps {
  orm: MikroORM;
  service: () => WebhookService;
  schema: () => GraphQLSchema;
  logger: Logger;
  /** A request context for `auth` (services, pubsub, a fresh entity manager). */
  contextFor: (auth: Auth) => Context;
}

/**
 * The subscriptions of the active webhooks, run in this process (the one leading the
 * `webhook-subscriptions` job). `reconcile` starts those that should run and stops the others;
 * `stopAll` when this process no longer leads.
 */
export class WebhookRunner {
  private readonly running = new Map<
    string,
    { signature: string; stop: () => void; allowed: () => Promise<boolean>; lost: () => Promise<void> }
  >();

  constructor(private readonly deps: WebhookRunnerDeps) {}

  get size(): number {
    return this.running.size;
  }

  async reconcile(): Promise<void> {
    const em = this.deps.orm.em.fork();
    const webhooks = await em.find(WebhookSchema, { active: true }, { disableIdentityMap: true });
    const wanted = new Map(webhooks.map((w) => [w.id, w]));
    for (const [id, run] of this.running) {
      const w = wanted.get(id);
      if (!w || run.signature !== signatureOf(w)) {
        run.stop();
        this.running.delete(id);
      }
    }
    for (const w of webhooks) {
      if (!this.running.has(w.id)) await this.start(em, w);
    }
    // A creator who lost access hears nothing more (the subscription filters it out): checked here.
    for (const run of [...this.running.values()]) {
      if (!(await run.allowed())) await run.lost();
    }
  }

  stopAll(): void {
    for (const run of this.running.values()) run.stop();
    this.running.clear();
  }

  private async start(em: EntityManager, webhook: Webhook): Promise<void> {
    const stopHook = async (problem: string) => {
      this.deps.logger.warn({ webhook: webhook.id, problem }, 'stopped a webhook');
      await this.deps.orm.em
        .fork()
        .execute('update webhooks set active = false, problem = ? where id = ?', [
          problem.slice(0, 2000),
          webhook.id,
        ]);
      this.running.get(webhook.id)?.stop();
      this.running.delete(webhook.id);
    };
    const owner = await em.findOne(UserSchema, { id: webhook.owner.id });
    if (!owner) return stopHook('stopped: its creator is gone');
    const namespace = webhook.namespace
      ? await em.findOne(NamespaceSchema, { id: webhook.namespace.id })
      : null;
    if (webhook.namespace && !namespace) return stopHook('stopped: its namespace is gone');
    const auth: Auth = {
      viewer: owner,
      tokenId: null,
      kind: 'PERSONAL',
      scopes: new Set(ALL_SCOPES.filter((s) => s.endsWith(':read'))),
      via: 'none',
      ...(namespace ? { within: { rootId: namespace.rootId, path: namespace.path } } : {}),
    };
    const stillAllowed = async () => {
      if (!namespace) return true;
      const fresh = this.deps.orm.em.fork();
      const ns = await fresh.findOne(NamespaceSchema, { id: namespace.id });
      const user = await fresh.findOne(UserSchema, { id: owner.id });
      return ns !== null && user !== null && (await new Access(fresh, { ...auth, viewer: user }).canRead(ns));
    };
    const lost = () => stopHook(`stopped: ${owner.username} may no longer read namespace ${namespace!.path}`);
    if (!(await stillAllowed())) return lost();
    const document = parse(webhook.subscription);
    const result = await subscribe({
      schema: this.deps.schema(),
      document,
      contextValue: this.deps.contextFor(auth),
    });
    if (!(Symbol.asyncIterator in result)) {
      return stopHook(`its subscription fails: ${(result.errors ?? []).map((e) => e.message).join('; ')}`);
    }
    const iterator = result[Symbol.asyncIterator]();
    let stopped = false;
    this.running.set(webhook.id, {
      signature: signatureOf(webhook),
      stop: () => {
        stopped = true;
        void iterator.return?.();
      },
      allowed: stillAllowed,
      lost,
    });
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done || stopped) break;
          if (!(await stillAllowed())) {
            await lost();
            break;
          }
          await this.deps.service().store(webhook.id, next.value);
        }
      } catch (error) {
        if (!stopped) await stopHook(`its subscription failed: ${(error as Error).message}`);
      }
      if (!stopped && this.running.get(webhook.id)?.signature === signatureOf(webhook)) {
        this.running.delete(webhook.id);
      }
    })();
  }
}

/** What a running subscription was started from: a change of it restarts the subscription. */
const signatureOf = (w: Webhook) => `${w.subscription}\u0000${w.url}\u0000${w.active}`;

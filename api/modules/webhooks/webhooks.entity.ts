import { EntitySchema, type Ref } from '@mikro-orm/core';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type User, UserSchema } from '../users/users.entity.ts';

/**
 * An outgoing webhook: a GraphQL subscription document of a namespace (or of its creator alone), run
 * with its creator's rights, each result POSTed to `url`, signed as Standard Webhooks sign (the
 * secret, sealed, was shown once).
 */
export interface Webhook {
  id: string;
  owner: Ref<User>;
  namespace: Ref<Namespace> | null;
  url: string;
  subscription: string;
  encryptedSecret: string;
  active: boolean;
  /** Why it stopped (its creator lost access) or why its subscription fails; null when all is well. */
  problem: string | null;
  createdAt: Date;
}

export const WebhookSchema = new EntitySchema<Webhook>({
  name: 'Webhook',
  tableName: 'webhooks',
  indexes: [{ properties: ['owner'] }, { properties: ['namespace'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    owner: { kind: 'm:1', entity: () => UserSchema, ref: true, deleteRule: 'cascade' },
    namespace: {
      kind: 'm:1',
      entity: () => NamespaceSchema,
      ref: true,
      nullable: true,
      deleteRule: 'cascade',
    },
    url: { type: 'text' },
    subscription: { type: 'text' },
    encryptedSecret: { type: 'text' },
    active: { type: 'boolean' },
    problem: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
  },
});

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/**
 * One result of a webhook's subscription, stored before it is sent (so a restart loses none), then
 * sent by whichever replica claims it; retried with backoff for a day. Its id is the Standard
 * Webhooks `webhook-id`, the same on every attempt.
 */
export interface WebhookDelivery {
  id: string;
  webhook: Ref<Webhook>;
  payload: string;
  state: DeliveryState;
  responseStatus: number | null;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: Date | null;
  claimedUntil: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

export const WebhookDeliverySchema = new EntitySchema<WebhookDelivery>({
  name: 'WebhookDelivery',
  tableName: 'webhook_deliveries',
  indexes: [
    { properties: ['webhook', 'createdAt'] },
    {
      name: 'webhook_deliveries_due_index',
      properties: ['nextAttemptAt'],
      expression: `create index "webhook_deliveries_due_index" on "webhook_deliveries" ("next_attempt_at") where "state" = 'pending'`,
    },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    webhook: { kind: 'm:1', entity: () => WebhookSchema, ref: true, deleteRule: 'cascade' },
    payload: { type: 'text' },
    state: { type: 'string', length: 16 },
    responseStatus: { type: 'integer', nullable: true },
    attempts: { type: 'integer', default: 0 },
    lastError: { type: 'text', nullable: true },
    nextAttemptAt: { type: 'datetime', nullable: true },
    claimedUntil: { type: 'datetime', nullable: true },
    deliveredAt: { type: 'datetime', nullable: true },
    createdAt: { type: 'datetime' },
  },
});

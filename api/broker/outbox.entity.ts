import { EntitySchema } from '@mikro-orm/core';

/**
 * A message written in the same transaction as the rows it announces, published after commit.
 * The sweeper republishes rows still unpublished a few seconds later (a crash between commit and
 * publish), so no submitted build is ever left without its job message.
 */
export interface OutboxMessage {
  id: string;
  kind: 'build';
  payload: unknown;
  createdAt: Date;
  publishedAt: Date | null;
}

export const OutboxMessageSchema = new EntitySchema<OutboxMessage>({
  name: 'OutboxMessage',
  tableName: 'outbox',
  properties: {
    id: { type: 'uuid', primary: true },
    kind: { type: 'string', length: 32 },
    payload: { type: 'json' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
    publishedAt: { type: 'datetime', nullable: true, index: true },
  },
});

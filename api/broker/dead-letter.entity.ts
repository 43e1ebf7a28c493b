import { EntitySchema } from '@mikro-orm/core';

/**
 * A message the broker dead-lettered that the api could not act on (an event storage refused, a
 * payload that failed its schema): kept here with its reason so nothing leaves the system unseen.
 * Build jobs are not kept (they carry secrets): their build is failed with the reason instead.
 */
export interface DeadLetterRow {
  id: string;
  kind: string | null;
  reason: string;
  body: string;
  createdAt: Date;
}

export const DeadLetterSchema = new EntitySchema<DeadLetterRow>({
  name: 'DeadLetter',
  tableName: 'dead_letters',
  properties: {
    id: { type: 'uuid', primary: true },
    kind: { type: 'string', length: 32, nullable: true },
    reason: { type: 'text' },
    body: { type: 'text' },
    createdAt: { type: 'datetime', index: true },
  },
});

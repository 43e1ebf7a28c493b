import { EntitySchema } from '@mikro-orm/core';

/** A runner process as last heard of through its heartbeats. */
export interface Runner {
  name: string;
  queues: string[];
  concurrency: number;
  running: { buildId: string; attempt: number }[];
  firstSeenAt: Date;
  lastSeenAt: Date;
}

export const RunnerSchema = new EntitySchema<Runner>({
  name: 'Runner',
  tableName: 'runners',
  properties: {
    name: { type: 'string', length: 255, primary: true },
    queues: { type: 'json' },
    concurrency: { type: 'integer' },
    running: { type: 'json' },
    firstSeenAt: { type: 'datetime' },
    lastSeenAt: { type: 'datetime', index: true },
  },
});

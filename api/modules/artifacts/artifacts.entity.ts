import { BigIntType, EntitySchema, type Ref } from '@mikro-orm/core';
import { type Build, BuildSchema, type Job, JobSchema } from '../builds/builds.entity.ts';

/**
 * A file a job's `artifacts` collected, stored in the file store as blob `sha256`. The curator
 * deletes old ones softly: `deletedAt` is set (size and hashes are kept for the record), the row
 * leaves the API, and the blob goes once no other row refers to it.
 */
export interface Artifact {
  id: string;
  build: Ref<Build>;
  job: Ref<Job>;
  name: string;
  size: number;
  md5: string;
  sha256: string;
  createdAt: Date;
  deletedAt: Date | null;
}

export const ArtifactSchema = new EntitySchema<Artifact>({
  name: 'Artifact',
  tableName: 'artifacts',
  indexes: [
    { properties: ['build'] },
    { properties: ['job'] },
    { properties: ['sha256'] },
    { properties: ['createdAt'] },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    build: { kind: 'm:1', entity: () => BuildSchema, ref: true, deleteRule: 'cascade' },
    job: { kind: 'm:1', entity: () => JobSchema, ref: true, deleteRule: 'cascade' },
    name: { type: 'string', length: 255 },
    size: { type: new BigIntType('number') },
    md5: { type: 'string', length: 32 },
    sha256: { type: 'string', length: 64 },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
    deletedAt: { type: 'datetime', nullable: true },
  },
});

import { DeadLetterSchema } from '../broker/dead-letter.entity.ts';
import { OutboxMessageSchema } from '../broker/outbox.entity.ts';
import { ArtifactSchema } from '../modules/artifacts/artifacts.entity.ts';
import {
  BuildCounterSchema,
  BuildSchema,
  BuildTagSchema,
  JobSchema,
  LogChunkSchema,
  StageSchema,
} from '../modules/builds/builds.entity.ts';
import { SshKeySchema } from '../modules/keys/keys.entity.ts';
import {
  CollaboratorSchema,
  InviteSchema,
  NamespaceSchema,
} from '../modules/namespaces/namespaces.entity.ts';
import { ObjectSchema } from '../modules/objects/objects.entity.ts';
import {
  ForgeEventSchema,
  RepositoryHeadSchema,
  RepositorySchema,
} from '../modules/repositories/repositories.entity.ts';
import { RunnerSchema } from '../modules/runners/runners.entity.ts';
import { ScheduleFiringSchema, ScheduleSchema } from '../modules/schedules/schedules.entity.ts';
import { AccessTokenSchema } from '../modules/tokens/tokens.entity.ts';
import { MailTokenSchema, UserSchema } from '../modules/users/users.entity.ts';
import { VariableSchema } from '../modules/variables/variables.entity.ts';
import { WebhookDeliverySchema, WebhookSchema } from '../modules/webhooks/webhooks.entity.ts';

/** Every entity, for MikroORM's discovery and the migration generator. */
export const entities = [
  UserSchema,
  AccessTokenSchema,
  NamespaceSchema,
  CollaboratorSchema,
  InviteSchema,
  VariableSchema,
  SshKeySchema,
  BuildSchema,
  BuildTagSchema,
  BuildCounterSchema,
  StageSchema,
  JobSchema,
  LogChunkSchema,
  ObjectSchema,
  ArtifactSchema,
  RunnerSchema,
  OutboxMessageSchema,
  DeadLetterSchema,
  RepositorySchema,
  ForgeEventSchema,
  RepositoryHeadSchema,
  ScheduleSchema,
  ScheduleFiringSchema,
  WebhookSchema,
  WebhookDeliverySchema,
  MailTokenSchema,
];

/**
 * What every resolver gets: a fresh EntityManager fork per operation, who is asking (`auth`, with
 * `access` to check what they may see), and the process's services.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Access } from './auth/access.ts';
import type { Auth } from './auth/principal.ts';
import type { SecretBox } from './auth/secret-box.ts';
import type { PubSub } from './events/pubsub.ts';
import type { ArtifactService } from './modules/artifacts/artifacts.service.ts';
import type { BuildService } from './modules/builds/builds.service.ts';
import type { MailService } from './modules/mail/mail.service.ts';
import type { NamespaceService } from './modules/namespaces/namespaces.service.ts';
import type { ObjectService } from './modules/objects/objects.service.ts';
import type { ForgeEventService } from './modules/repositories/forge-events.service.ts';
import type { RepositoryService } from './modules/repositories/repositories.service.ts';
import type { ScheduleService } from './modules/schedules/schedules.service.ts';
import type { UserService } from './modules/users/users.service.ts';
import type { WebhookService } from './modules/webhooks/webhooks.service.ts';

export interface Services {
  builds: BuildService;
  namespaces: NamespaceService;
  users: UserService;
  objects: ObjectService;
  artifacts: ArtifactService;
  repositories: RepositoryService;
  forgeEvents: ForgeEventService;
  schedules: ScheduleService;
  webhooks: WebhookService;
  mail: MailService;
}

export interface Context {
  em: EntityManager;
  orm: MikroORM;
  auth: Auth;
  access: Access;
  secrets: SecretBox;
  pubsub: PubSub;
  services: Services;
  logger: Logger;
  /** Set-Cookie header values to send with the HTTP response (logIn, logOut). */
  setCookies: string[];
  /** The request's URL is https (cookies get `Secure`). */
  secure: boolean;
}

/**
 * What every resolver gets: a fresh EntityManager fork per operation, the viewer (null when the
 * request carried no valid token), and the process's services.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { PubSub } from './events/pubsub.ts';
import type { BuildService } from './modules/builds/builds.service.ts';
import type { User } from './modules/users/users.entity.ts';

export interface Services {
  builds: BuildService;
}

export interface Context {
  em: EntityManager;
  orm: MikroORM;
  viewer: User | null;
  pubsub: PubSub;
  services: Services;
  logger: Logger;
}

/** The whole schema: every module's types, registered on import. */
import { builder } from './builder.ts';
import './modules/artifacts/artifacts.schema.ts';
import './modules/builds/builds.schema.ts';
import './modules/builds/builds-live.schema.ts';
import './modules/keys/keys.schema.ts';
import './modules/mail/mail.schema.ts';
import './modules/namespaces/namespaces.schema.ts';
import './modules/notifications/badges.schema.ts';
import './modules/objects/objects.schema.ts';
import './modules/repositories/forge-events.schema.ts';
import './modules/repositories/repositories.schema.ts';
import './modules/runners/runners.schema.ts';
import './modules/schedules/schedules.schema.ts';
import './modules/tokens/tokens.schema.ts';
import './modules/users/users.schema.ts';
import './modules/variables/variables.schema.ts';
import './modules/webhooks/webhooks.schema.ts';

export const schema = builder.toSchema({ sortSchema: true });

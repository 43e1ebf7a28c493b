/** The whole schema: every module's types, registered on import. */
import { builder } from './builder.ts';
import './modules/builds/builds.schema.ts';
import './modules/users/users.schema.ts';

export const schema = builder.toSchema({ sortSchema: true });

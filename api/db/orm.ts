/**
 * The database: PostgreSQL through MikroORM. With no URL, an embedded PGlite (Postgres compiled to
 * WASM) kept in `<dataDir>/pgdata` is served on a loopback port through pglite-socket by a process of
 * its own (embedded-postgres.ts), so the same driver, SQL and migrations serve both.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM } from '@mikro-orm/postgresql';
import { migrationsList } from '../../migrations/index.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
import { entities } from './entities.ts';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

export interface Database {
  orm: MikroORM;
  /** The URL MikroORM connects to (the embedded server's loopback URL when embedded). */
  url: string;
  embedded: boolean;
  /** Applies pending migrations; returns their names. */
  migrate(): Promise<string[]>;
  isReady(): Promise<boolean>;
  close(): Promise<void>;
}

/** Without its database a process can do nothing right: it says why and ends, for its supervisor to restart. */
function exitLost(reason: string): void {
  process.stderr.write(`${JSON.stringify({ level: 60, time: Date.now(), msg: `${reason}; stopping` })}\n`);
  process.exit(1);
}

export function ormOptions(url: string, poolMax = 10) {
  return {
    entities,
    clientUrl: url,
    extensions: [Migrator],
    pool: { min: 0, max: poolMax },
    migrations: {
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      migrationsList,
      snapshot: false,
      transactional: true,
      allOrNothing: true,
      emit: 'ts' as const,
      silent: true,
    },
    // Entities are plain interfaces with EntitySchema: nothing to reflect.
    discovery: { warnWhenNoEntities: true },
    allowGlobalContext: false,
    debug: false,
  };
}

export async function openDatabase(opts: {
  url: string;
  dataDir: string;
  poolMax?: number;
  /** Told when the embedded database's process ends on its own; default: say so and exit. */
  onLost?: (reason: string) => void;
}): Promise<Database> {
  let url = opts.url;
  let stopEmbedded = async () => {};
  if (!url) {
    const server = await startEmbeddedPostgres(path.join(opts.dataDir, 'pgdata'), opts.onLost ?? exitLost);
    url = server.url;
    stopEmbedded = server.stop;
  }
  const embedded = !opts.url;
  let orm: MikroORM;
  try {
    // PGlite serves one query at a time; a small pool keeps its queue short.
    orm = await MikroORM.init(ormOptions(url, opts.poolMax ?? (embedded ? 4 : 10)));
  } catch (err) {
    await stopEmbedded();
    throw err;
  }
  return {
    orm,
    url,
    embedded,
    async migrate() {
      const applied = await orm.getMigrator().up();
      return applied.map((m) => m.name);
    },
    async isReady() {
      try {
        await orm.em.execute('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await orm.close(true);
      await stopEmbedded();
    },
  };
}

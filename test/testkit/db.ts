/**
 * A database per test file, cloned from a template migrated once per set of migrations
 * (`CREATE DATABASE … TEMPLATE`), dropped when the file is done.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR, openDatabase } from '../../api/db/orm.ts';
import { POSTGRES_URL } from './services.ts';

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function migrationsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of (await readdir(MIGRATIONS_DIR)).sort()) {
    hash.update(file);
    hash.update(await readFile(path.join(MIGRATIONS_DIR, file)));
  }
  return hash.digest('hex').slice(0, 12);
}

/** Creates (once per set of migrations) the migrated template; returns its name. */
export async function createTemplateDatabase(url: string): Promise<string> {
  const name = `kiln_template_${await migrationsHash()}`;
  await admin(url, async (client) => {
    // Two test runs at once: one builds the template, the other waits for it.
    await client.query('select pg_advisory_lock(4242)');
    try {
      const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount) return;
      await client.query(`create database "${name}_tmp"`);
      const db = await openDatabase({ url: withDatabase(url, `${name}_tmp`), dataDir: '' });
      try {
        await db.migrate();
      } finally {
        await db.close();
      }
      await client.query(`alter database "${name}_tmp" rename to "${name}"`);
    } finally {
      await client.query('select pg_advisory_unlock(4242)');
    }
  });
  return name;
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const template = process.env.KILN_TEST_TEMPLATE_DB;
  if (!template) throw new Error('no template database: is PostgreSQL available?');
  const name = `kiln_test_${randomBytes(6).toString('hex')}`;
  await admin(POSTGRES_URL, (c) => c.query(`create database "${name}" template "${template}"`));
  return {
    name,
    url: withDatabase(POSTGRES_URL, name),
    drop: () =>
      admin(POSTGRES_URL, (c) => c.query(`drop database if exists "${name}" with (force)`)).then(() => {}),
  };
}

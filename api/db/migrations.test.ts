import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/testkit/db.ts';
import { available } from '../../test/testkit/services.ts';
import { type Database, openDatabase } from './orm.ts';

describe.runIf(available('postgres'))('migrations', () => {
  let testDb: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ url: testDb.url, dataDir: '' });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it('create exactly the schema the entities describe', async () => {
    // The test database is cloned from a template migrated to the latest migration.
    const sql = await db.orm.schema.getUpdateSchemaSQL({ wrap: false });
    expect(sql.trim()).toBe('');
  });
});

/**
 * `npm run migration:create [name]`: writes a migration for the difference between the entities and
 * a database migrated to the latest migration (a throwaway embedded one, so no server is needed).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS_DIR, openDatabase } from './orm.ts';

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-migration-'));
const db = await openDatabase({ url: '', dataDir });
try {
  await db.migrate();
  const result = await db.orm.getMigrator().createMigration(undefined, false, false, process.argv[2]);
  if (result.fileName) {
    const className = result.fileName.replace(/\.ts$/, '');
    const index = path.join(MIGRATIONS_DIR, 'index.ts');
    const text = await readFile(index, 'utf8');
    await writeFile(
      index,
      text
        .replace(
          /(\nexport const migrationsList)/,
          `import { ${className} } from './${result.fileName}';\n$1`,
        )
        .replace(/\n\];\n$/, `\n  { name: '${className}', class: ${className} },\n];\n`),
    );
    console.log(`wrote migrations/${result.fileName} and added it to migrations/index.ts`);
  } else {
    console.log('no changes: the schema matches');
  }
} finally {
  await db.close();
  await rm(dataDir, { recursive: true, force: true });
}

/**
 * `npm run generate` writes schema.graphql from the code; `--check` (in `npm run ci`) fails when the
 * committed file differs, so every API change is visible in review.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from './schema.ts';

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../schema.graphql');
const printed = `${printSchema(lexicographicSortSchema(schema))}\n`;

if (process.argv.includes('--check')) {
  const committed = await readFile(file, 'utf8').catch(() => '');
  if (committed !== printed) {
    console.error('schema.graphql is out of date: run `npm run generate` and commit the result.');
    process.exit(1);
  }
  console.log('schema.graphql is up to date');
} else {
  await writeFile(file, printed);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

/**
 * Runs once before all test files: finds the real services, fails when a required one is missing,
 * and builds the migrated template database that each test file clones.
 */
import { createTemplateDatabase } from './db.ts';
import { POSTGRES_URL, probe, required } from './services.ts';

export default async function setup(): Promise<() => Promise<void>> {
  // First: a KILN_REQUIRE naming an unknown service fails the run before anything else.
  const needed = required();
  const found = await probe();
  const missing = [...needed].filter((name) => name in found && !found[name as keyof typeof found]);
  if (missing.length > 0) {
    throw new Error(`required services are not reachable: ${missing.join(', ')} (KILN_REQUIRE)`);
  }
  for (const [name, ok] of Object.entries(found))
    process.env[`KILN_TEST_HAS_${name.toUpperCase()}`] = ok ? '1' : '0';
  if (found.postgres) process.env.KILN_TEST_TEMPLATE_DB = await createTemplateDatabase(POSTGRES_URL);
  return async () => {};
}

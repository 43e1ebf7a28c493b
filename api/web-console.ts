/**
 * The web console's files. Until the SolidJS console lands, web/index.html is a placeholder page
 * that says how to reach the API.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../web');

let cached: string | null = null;
export function consoleIndex(): string {
  cached ??= readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8');
  return cached;
}

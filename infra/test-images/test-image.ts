/**
 * The image the docker driver's tests and benchmarks run in: busybox in an otherwise empty rootfs,
 * built locally by busybox.sh with `docker import` (there is no image registry to pull from).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const TEST_IMAGE = 'kiln-test/busybox:1';

const SCRIPT = fileURLToPath(new URL('./busybox.sh', import.meta.url));

/** Builds `tag` unless the engine has it already (cheap then); returns the tag. */
export async function ensureTestImage(tag = TEST_IMAGE): Promise<string> {
  try {
    await promisify(execFile)('bash', [SCRIPT, tag], { timeout: 300_000 });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`cannot build the test image ${tag}: ${e.stderr?.trim() || e.message}`);
  }
  return tag;
}

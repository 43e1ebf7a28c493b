/**
 * Encryption of secrets at rest (masked variables, SSH keys): AES-256-GCM with a random 96-bit IV
 * per value; and MACs of things the server hands out and must recognise later (build tokens). The key comes from KILN_SECRET_KEY (any string; SHA-256 makes it 32 bytes), or from a
 * key file generated once in the data dir. Every replica must use the same key.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
  /**
   * HMAC-SHA256 of `data` (base64url) with a key derived from the secret for `purpose` alone, so a
   * MAC made for one purpose (e.g. build tokens) is worth nothing for another.
   */
  mac(purpose: string, data: string): string;
}

const VERSION = 'v1';

export function createSecretBox(secret: string): SecretBox {
  const key = createHash('sha256').update(secret).digest();
  const macKeys = new Map<string, Buffer>();
  return {
    mac(purpose, data) {
      let macKey = macKeys.get(purpose);
      if (!macKey) {
        macKey = createHmac('sha256', key).update(`kiln mac key: ${purpose}`).digest();
        macKeys.set(purpose, macKey);
      }
      return createHmac('sha256', macKey).update(data).digest('base64url');
    },
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return [
        VERSION,
        iv.toString('base64'),
        cipher.getAuthTag().toString('base64'),
        body.toString('base64'),
      ].join(':');
    },
    open(sealed) {
      const [version, iv, tag, body] = sealed.split(':');
      if (version !== VERSION || !iv || !tag || body === undefined) throw new Error('not a sealed secret');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    },
  };
}

/** The configured key, or the data dir's key file (created, mode 0600, on first use). */
export async function loadSecretBox(opts: { secretKey?: string; dataDir: string }): Promise<SecretBox> {
  if (opts.secretKey) return createSecretBox(opts.secretKey);
  const file = path.join(opts.dataDir, 'secret.key');
  let secret = await readFile(file, 'utf8').catch(() => null);
  if (!secret) {
    await mkdir(opts.dataDir, { recursive: true });
    secret = randomBytes(32).toString('base64');
    await writeFile(file, secret, { mode: 0o600, flag: 'wx' }).catch(async () => {
      // Another process created it first: use theirs.
      secret = await readFile(file, 'utf8');
    });
    await chmod(file, 0o600);
  }
  return createSecretBox(secret.trim());
}

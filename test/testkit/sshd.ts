/**
 * A private OpenSSH server on a loopback port, for the tests of ssh clone URLs: it lets in one client
 * key (made here) as the user the tests run as, so that `ssh://<user>@127.0.0.1:<port>/<bare repo>`
 * serves a repository made in the test the way a forge serves it over ssh. Debian's openssh-server
 * (infra/install-sshd.sh); the machine's own sshd, if any, is never touched.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SSHD_PATH } from './services.ts';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

export interface Sshd {
  port: number;
  user: string;
  /** The private key the server lets in (OpenSSH format), and its public half. */
  clientKey: string;
  clientPublicKey: string;
  /** The ssh:// URL of a path on this machine (e.g. a bare repository). */
  url(p: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startSshd(dir: string): Promise<Sshd> {
  await mkdir(dir, { recursive: true });
  const hostKey = path.join(dir, 'host_ed25519');
  const client = path.join(dir, 'client_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-test', '-f', client]);
  const clientPublicKey = await readFile(`${client}.pub`, 'utf8');
  await writeFile(path.join(dir, 'authorized_keys'), clientPublicKey, { mode: 0o600 });
  // sshd wants its privilege separation directory to exist (Debian's service unit makes it).
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(SSHD_PATH, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let said = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    said += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`sshd on 127.0.0.1:${port}${said ? ` (${said.trim()})` : ''}`, async () => {
    if (child.exitCode !== null) throw new Error(`sshd exited: ${said.trim()}`);
    return new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  });
  const user = os.userInfo().username;
  return {
    port,
    user,
    clientKey: await readFile(client, 'utf8'),
    clientPublicKey,
    url: (p) => `ssh://${user}@127.0.0.1:${port}${p}`,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

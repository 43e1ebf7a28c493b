/**
 * A RabbitMQ node of a test's own, for fault tests that stop and restart the broker (never the
 * machine's `rabbit@localhost`). Everything it reads or writes is in one temporary directory:
 * its config file (the machine's rabbitmq.conf pins 5672), an empty env file (the machine's
 * rabbitmq-env.conf names the node), an empty plugin list (no management listener to clash), its
 * mnesia and log directories, its pid file, and a HOME with an Erlang cookie of its own, so its
 * rabbitmqctl cannot reach, let alone stop, any other node.
 *
 *   const mq = await startPrivateRabbitMQ();   // amqp://guest:guest@127.0.0.1:<port>
 *   await mq.stop(); await mq.start();          // stop_app/start_app: connections drop, data stays
 *   await mq.stop({ node: true }); await mq.start();   // the whole node, same name, port and data
 *   await mq.kill(); await mq.start();          // SIGKILL the VM, then boot again
 *   await mq.remove();
 *
 * As root it runs as the `rabbitmq` OS user, which owns the directory. Erlang needs epmd: the
 * machine's is used when it runs; otherwise the node starts one, and remove() ends it again when
 * no node is left registered with it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRunning } from './pids.ts';
import {
  asUser,
  freePort,
  listening,
  type OsUser,
  osUser,
  processTree,
  run,
  signalAll,
  waitUntil,
} from './system.ts';

const EPMD_PORT = 4369;
/** Prefix of every node this module starts; ctl() refuses any other name. */
const NODE_PREFIX = 'kiln-fault-';

export interface PrivateRabbitMQ {
  /** amqp://guest:guest@127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly distPort: number;
  /** Its Erlang node name, `kiln-fault-<random>@localhost`. */
  readonly node: string;
  readonly dir: string;
  /** The Erlang VM's pid while it runs, else null. */
  pid(): number | null;
  /**
   * Closes its listener and every connection. By default the RabbitMQ application stops and the VM
   * stays (`rabbitmqctl stop_app`, about 2 s); `{ node: true }` stops the whole node.
   */
  stop(opts?: { node?: boolean }): Promise<void>;
  /** Starts it again, on the same port with the same data (quorum queues keep their messages). */
  start(): Promise<void>;
  /** SIGKILL to the VM and its helpers; the next start recovers from its data directory. */
  kill(): Promise<void>;
  /** Stops it, whatever its state, and deletes its directory. */
  remove(): Promise<void>;
  /** rabbitmqctl against this node; throws with its output when it fails. */
  ctl(...args: string[]): Promise<string>;
  /** The tail of its console output and log file, for failure messages. */
  logTail(lines?: number): string;
}

/** The directory of RabbitMQ's scripts (rabbitmq-server, rabbitmqctl), or null when not installed. */
export function rabbitmqBinDir(): string | null {
  // Debian's /usr/sbin entries are wrappers that su to rabbitmq and cd to /var/lib/rabbitmq; the
  // scripts behind them take the environment as given.
  for (const dir of ['/usr/lib/rabbitmq/bin', '/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin']) {
    if (existsSync(path.join(dir, 'rabbitmq-server')) && existsSync(path.join(dir, 'rabbitmqctl')))
      return dir;
  }
  return null;
}

export async function startPrivateRabbitMQ(opts: { name?: string } = {}): Promise<PrivateRabbitMQ> {
  const bin = rabbitmqBinDir();
  if (!bin)
    throw new Error('rabbitmq-server not found (looked in /usr/lib/rabbitmq/bin and the sbin directories)');
  const user: OsUser | null = process.getuid?.() === 0 ? osUser('rabbitmq') : null;
  const dir = await mkdtemp(path.join(os.tmpdir(), `${opts.name ?? 'kiln-fault-mq'}-`));
  const home = path.join(dir, 'home');
  const port = await freePort();
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const node = `${NODE_PREFIX}${randomBytes(4).toString('hex')}@localhost`;
  const files = {
    config: path.join(dir, 'rabbitmq.conf'),
    envFile: path.join(dir, 'rabbitmq-env.conf'),
    plugins: path.join(dir, 'enabled_plugins'),
    pid: path.join(dir, 'rabbitmq.pid'),
    mnesia: path.join(dir, 'mnesia'),
    logs: path.join(dir, 'log'),
  };

  await mkdir(home);
  await mkdir(files.mnesia);
  await mkdir(files.logs);
  await writeFile(path.join(home, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase());
  await chmod(path.join(home, '.erlang.cookie'), 0o400);
  await writeFile(
    files.config,
    [
      `listeners.tcp.1 = 127.0.0.1:${port}`,
      // guest may connect from 127.0.0.1 anyway; said here so the test does not depend on it.
      'loopback_users.guest = false',
      'log.console = false',
      'log.file.level = info',
      // A broker on a busy test machine must not block publishers over disk or memory alarms.
      'disk_free_limit.absolute = 1MB',
      'vm_memory_high_watermark.relative = 0.8',
      '',
    ].join('\n'),
  );
  await writeFile(files.envFile, '# empty: the machine-wide rabbitmq-env.conf is not read\n');
  await writeFile(files.plugins, '[].\n');
  if (user) {
    for (const p of [
      dir,
      home,
      path.join(home, '.erlang.cookie'),
      files.mnesia,
      files.logs,
      files.config,
      files.envFile,
      files.plugins,
    ]) {
      await chown(p, user.uid, user.gid);
    }
  }

  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    RABBITMQ_CONF_ENV_FILE: files.envFile,
    RABBITMQ_CONFIG_FILE: files.config,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: files.mnesia,
    RABBITMQ_LOG_BASE: files.logs,
    RABBITMQ_ENABLED_PLUGINS_FILE: files.plugins,
    RABBITMQ_PID_FILE: files.pid,
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_CRASH_DUMP: path.join(dir, 'erl_crash.dump'),
  };
  const epmdWasRunning = await listening(EPMD_PORT);

  let server: ChildProcess | null = null;
  let serverExited: Promise<void> = Promise.resolve();
  let consoleText = '';

  const ctl = async (...args: string[]): Promise<string> => {
    if (!node.startsWith(NODE_PREFIX)) throw new Error(`refusing to control node ${node}`);
    const [cmd, argv] = asUser(user, path.join(bin, 'rabbitmqctl'), ['-n', node, '-q', ...args], env);
    const result = await run(cmd, argv, { cwd: dir, timeoutMs: 90_000 });
    if (result.code !== 0) {
      throw new Error(
        `rabbitmqctl ${args.join(' ')} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`,
      );
    }
    return result.stdout;
  };

  const pid = (): number | null => {
    try {
      const value = Number(readFileSync(files.pid, 'utf8').trim());
      return Number.isInteger(value) && value > 0 && isRunning(value) ? value : null;
    } catch {
      return null;
    }
  };

  const logTail = (lines = 30) => {
    let fileLog = '';
    try {
      fileLog = readFileSync(path.join(files.logs, `${node}.log`), 'utf8');
    } catch {}
    return `${consoleText}\n${fileLog}`.trim().split('\n').slice(-lines).join('\n');
  };

  /** Waits for the application to run: the node must first register with epmd, so await_startup is retried. */
  const awaitStartup = async () => {
    const deadline = Date.now() + 90_000;
    let exited = false;
    void serverExited.then(() => {
      exited = true;
    });
    for (;;) {
      try {
        await ctl('await_startup', '--timeout', '60');
        return;
      } catch (error) {
        if (exited) throw new Error(`rabbitmq-server exited while starting:\n${logTail()}`);
        if (Date.now() > deadline)
          throw new Error(`RabbitMQ did not start in 90 s: ${String(error)}\n${logTail()}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };

  const boot = async () => {
    await rm(files.pid, { force: true });
    const [cmd, argv] = asUser(user, path.join(bin, 'rabbitmq-server'), [], env);
    const child = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    consoleText = '';
    const onOutput = (chunk: Buffer) => {
      consoleText = (consoleText + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    serverExited = new Promise((resolve) => child.once('exit', () => resolve()));
    await awaitStartup();
  };

  /** The node's processes: the server script's tree (runuser, the script, beam, its helpers). */
  const nodeProcesses = (): number[] => {
    const pids = new Set<number>();
    if (server?.pid !== undefined && server.exitCode === null && server.signalCode === null) {
      for (const p of processTree(server.pid)) pids.add(p);
    }
    const beam = pid();
    if (beam !== null) for (const p of processTree(beam)) pids.add(p);
    return [...pids];
  };

  const stopNode = async () => {
    if (pid() !== null) {
      await ctl('stop', files.pid).catch(() => {});
    }
    const left = nodeProcesses();
    if (left.length > 0) {
      await waitUntil(() => left.every((p) => !isRunning(p)), '', 15_000).catch(() => {
        signalAll(nodeProcesses(), 'SIGKILL');
      });
    }
    await serverExited;
    server = null;
  };

  const instance: PrivateRabbitMQ = {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    distPort,
    node,
    dir,
    pid,
    async stop(opts = {}) {
      if (opts.node) {
        await stopNode();
        return;
      }
      await ctl('stop_app');
    },
    async start() {
      if (pid() === null) {
        await boot();
        return;
      }
      await ctl('start_app');
      await awaitStartup();
    },
    async kill() {
      const pids = nodeProcesses();
      signalAll(pids, 'SIGKILL');
      await waitUntil(
        () => pids.every((p) => !isRunning(p)),
        'RabbitMQ processes still running after SIGKILL',
      );
      await serverExited;
      server = null;
    },
    async remove() {
      await stopNode().catch(() => instance.kill());
      if (!epmdWasRunning && (await listening(EPMD_PORT))) {
        // The node started this epmd; end it only when no node is registered any more.
        const names = await run('epmd', ['-names']);
        if (!/^name /m.test(names.stdout)) await run('epmd', ['-kill']);
      }
      await rm(dir, { recursive: true, force: true });
    },
    ctl,
    logTail,
  };

  try {
    await boot();
  } catch (error) {
    await instance.remove().catch(() => {});
    throw error;
  }
  return instance;
}

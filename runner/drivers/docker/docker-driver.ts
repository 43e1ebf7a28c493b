/**
 * (Longer than most files: the driver's lifecycle, its engine calls and the path checks that keep
 * files inside the workspace belong together; tar handling is in tar.ts and untar.ts.)
 *
 * The `docker` driver (`driver: {type: docker, image, workspace}`): one Docker volume per build,
 * mounted at `workspace` in every container of the build, and one fresh container per job from
 * `image`, so only the workspace persists between jobs and stages (as in Djinn).
 *
 * create: pulls `image` only when the engine lacks it (bounded by `pullTimeoutMs`: a pull that fails
 * or hangs is a DriverError, never a hang), then makes the volume. A failed create leaves nothing.
 * run: the job's script is copied into the container (`/.kiln/job.sh`, outside the workspace) and
 * run as the entrypoint with `/bin/sh -e`, stderr merged into stdout by the shell so the output
 * keeps the order it was written in; the exit code comes from the engine's wait. A stop (kill or
 * timeout) sends SIGKILL to the container at once. Each job's container is removed after the job.
 * destroy: force-removes every container of the build, then its volume, also after a kill, a
 * timeout or an error. Containers are never privileged, mount nothing but the workspace volume,
 * and get the configured memory, CPU and pids limits.
 *
 * Every container and volume carries `kiln.runner=<runner name>`, `kiln.build=<build id>` and
 * `kiln.session=<volume name>` labels. A runner that crashed leaves them behind: `cleanupLeftovers`
 * removes everything labelled with a runner's name, and the driver runs it before its first build
 * when `cleanupLeftovers` is set (so it must be set only by a runner whose name is its own).
 *
 * Objects and artifacts: a DockerSession can `putFile` into the workspace (or anywhere under it)
 * and `getArchive` a path of it as a tar stream, both through a container that is created but never
 * started (the engine's archive API reaches the volume mounted in it); `files` reads such an archive
 * (untar.ts) and yields the files a glob matches. No path may resolve outside the workspace
 * (OUTSIDE_WORKSPACE): the engine resolves links inside the container's root, never the runner
 * host's, and each path is resolved a component at a time through the engine's stat of it (which
 * gives a link's target, fully resolved), refused as soon as a link leads out of the workspace,
 * and then read or written at the path it resolved to. Nothing can change the workspace meanwhile:
 * no container of the build is running while files are placed or collected.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import Docker from 'dockerode';
import { globToRegExp, staticPrefix } from '../../glob.ts';
import {
  type Driver,
  type DriverEnvironment,
  DriverError,
  type DriverSession,
  type EnvironmentFile,
  isInside,
  type JobResult,
  type JobRun,
  OUTSIDE_WORKSPACE,
  type SkippedFile,
} from '../driver.ts';
import { tarOneFile } from './tar.ts';
import { readTar } from './untar.ts';

/** The engine and the limits of every job container; parsed from KILN_DOCKER_* in runner/config.ts. */
export interface DockerSettings {
  /** `unix:///var/run/docker.sock`, `/var/run/docker.sock` or `tcp://host:port`. */
  host: string;
  /** 0: no limit. */
  memoryBytes: number;
  /** CPUs × 10⁹; 0: no limit. */
  nanoCpus: number;
  /** 0: no limit. */
  pidsLimit: number;
  /** How long pulling a missing image may take. */
  pullTimeoutMs: number;
}

export interface DockerDriverOptions extends DockerSettings {
  /** Labels every container and volume (`kiln.runner`). */
  runnerName: string;
  /** Remove the leftovers of an earlier run under the same runner name before the first build. */
  cleanupLeftovers?: boolean;
  /** Told what the leftover cleanup removed, or why it failed. */
  onCleanup?: (result: CleanupResult | Error) => void;
}

export interface CleanupResult {
  containers: number;
  volumes: number;
}

export interface DockerSession extends DriverSession {
  readonly image: string;
  readonly workspace: string;
  readonly volume: string;
  /**
   * Writes `size` bytes from `content` to `path` (relative to the workspace, or absolute inside
   * it), creating parent directories. For placing objects before the first job.
   */
  putFile(
    path: string,
    content: Buffer | AsyncIterable<Buffer | Uint8Array | string>,
    size: number,
    mode?: number,
  ): Promise<void>;
  /**
   * A tar stream of `path` (a file or directory, relative to the workspace or absolute inside it),
   * as Docker's archive API gives it: entries are named from the base name of the path it resolves
   * to. A missing path rejects with a 404 error, one resolving outside the workspace with a
   * DriverError.
   */
  getArchive(path: string): Promise<NodeJS.ReadableStream>;
  /** The workspace's files matching a glob, read from one archive of the glob's static prefix. */
  files(pattern: string): AsyncIterable<EnvironmentFile | SkippedFile>;
}

export interface DockerDriver extends Driver {
  /** Settles when the leftover cleanup is done (at once without it); never rejects. */
  readonly ready: Promise<void>;
  create(env: DriverEnvironment, options: Record<string, string>): Promise<DockerSession>;
}

export const LABEL_RUNNER = 'kiln.runner';
export const LABEL_BUILD = 'kiln.build';
export const LABEL_SESSION = 'kiln.session';
export const LABEL_JOB = 'kiln.job';

/** Where each job's script lives in its container: outside the workspace, so builds never see it. */
const SCRIPT_PATH = '/.kiln/job.sh';
/** How long to wait for the last output once the engine says the container exited. */
const OUTPUT_DRAIN_MS = 1000;
const PING_TIMEOUT_MS = 5000;
/** 128 + SIGKILL: what the engine reports for a killed container. */
const KILLED_EXIT_CODE = 137;

/** The unix socket path of a `host`, or null for tcp://. */
export function dockerSocketPath(host: string): string | null {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  return null;
}

export function dockerClient(host: string): Docker {
  const socketPath = dockerSocketPath(host);
  if (socketPath !== null) return new Docker({ socketPath });
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port), protocol: 'http' });
}

/** Why the engine at `host` cannot be used, judged without asking it (a missing socket), or null. */
export function dockerUnavailableReason(host: string): string | null {
  const socketPath = dockerSocketPath(host);
  if (socketPath === null) return null;
  try {
    if (statSync(socketPath).isSocket()) return null;
    return `${socketPath} is not a socket`;
  } catch {
    return `no Docker engine socket at ${socketPath} (install one with infra/install-docker.sh, or set KILN_DOCKER_HOST)`;
  }
}

/** Null when the engine answers /_ping within `timeoutMs`, else why not. */
export async function pingDocker(docker: Docker, timeoutMs = PING_TIMEOUT_MS): Promise<string | null> {
  try {
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>)({
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
    return null;
  } catch (error) {
    return messageOf(error);
  }
}

/**
 * Force-removes every container and volume labelled `kiln.runner=<runnerName>`: what a runner of
 * that name left when it crashed. Must not run while a runner of that name has builds running.
 */
export async function cleanupLeftovers(docker: Docker, runnerName: string): Promise<CleanupResult> {
  const filters = { label: [`${LABEL_RUNNER}=${runnerName}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => removeContainer(docker, c.Id)));
  const { Volumes } = await docker.listVolumes({ filters });
  const volumes = Volumes ?? [];
  await Promise.all(volumes.map((v) => removeVolume(docker, v.Name)));
  return { containers: containers.length, volumes: volumes.length };
}

function messageOf(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  // docker-modem's "(HTTP code 500) server error - <the engine's message>": keep the engine's words.
  return (e?.json?.message ?? e?.message ?? String(error)).replace(/^\(HTTP code \d+\)[^-]*- /, '').trim();
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number })?.statusCode;
}

async function removeContainer(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true });
  } catch (error) {
    // 404: already gone; 409: the engine is already removing it.
    if (statusOf(error) !== 404 && statusOf(error) !== 409) throw error;
  }
}

async function removeVolume(docker: Docker, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await docker.getVolume(name).remove({ force: true });
      return;
    } catch (error) {
      if (statusOf(error) === 404) return;
      // 409 "volume is in use": a container removal the engine has not finished yet.
      if (statusOf(error) !== 409 || attempt >= 5) throw error;
      await delay(100 * attempt);
    }
  }
}

function slug(text: string): string {
  return (
    text
      .replace(/[^a-zA-Z0-9_.-]+/g, '-')
      .replace(/^[^a-zA-Z0-9]+/, '')
      .slice(0, 40) || 'build'
  );
}

async function ensureImage(docker: Docker, image: string, timeoutMs: number, signal: AbortSignal) {
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (error) {
    if (statusOf(error) !== 404) {
      throw new DriverError(`cannot inspect image "${image}": ${messageOf(error)}`);
    }
  }
  const limit = AbortSignal.timeout(timeoutMs);
  const abort = AbortSignal.any([signal, limit]);
  const failed = (why: string) => new DriverError(`cannot pull image "${image}": ${why}`);
  const timedOut = () => failed(`no result after ${Math.round(timeoutMs / 1000)}s`);
  try {
    const stream = await docker.pull(image, { abortSignal: abort });
    type PullEvent = { error?: string; errorDetail?: { message?: string } };
    const events = await new Promise<PullEvent[]>((resolve, reject) => {
      const onAbort = () => {
        (stream as NodeJS.ReadableStream & { destroy(): void }).destroy();
        reject(limit.aborted ? timedOut() : new DriverError('stopped while pulling'));
      };
      if (abort.aborted) onAbort();
      abort.addEventListener('abort', onAbort, { once: true });
      docker.modem.followProgress(stream, (error: Error | null, output: PullEvent[]) => {
        abort.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve(output);
      });
    });
    const problem = events.find((event) => event.error !== undefined);
    if (problem) throw failed(problem.errorDetail?.message ?? problem.error ?? 'unknown error');
  } catch (error) {
    if (error instanceof DriverError) throw error;
    if (limit.aborted) throw timedOut();
    if (signal.aborted) throw new DriverError('stopped while pulling');
    throw failed(messageOf(error));
  }
  // Some registries end a pull "successfully" without the image: make sure it is there.
  try {
    await docker.getImage(image).inspect();
  } catch (error) {
    throw failed(`the engine does not have it after the pull (${messageOf(error)})`);
  }
}

/** What the engine's archive API says of a path (X-Docker-Container-Path-Stat). */
interface PathStat {
  /** Go's os.FileMode: type bits above the permission bits. */
  mode: number;
  /** For a link: where it leads, every link on the way resolved inside the container's root. */
  linkTarget: string;
}

const MODE_SYMLINK = 1 << 27;

/** The engine's stat of `path` in `container`, a last link not followed; null when nothing is there. */
async function statPath(container: Docker.Container, path: string): Promise<PathStat | null> {
  try {
    const response = (await container.infoArchive({ path })) as { headers: Record<string, string> };
    const header = response.headers['x-docker-container-path-stat'] ?? '';
    return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as PathStat;
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw error;
  }
}

/**
 * Where a link leads, `undefined` for what is no link, and null for a link the engine gave no
 * target for: that one is refused, as if it led outside.
 */
const linkTarget = (stat: PathStat): string | null | undefined =>
  stat.mode & MODE_SYMLINK ? stat.linkTarget || null : undefined;

/**
 * Where `names` lead from the directory `from` in `container`, each existing one's link followed
 * as the engine follows it; a missing tail is kept as named. Null as soon as a step leaves `root`.
 */
async function followLinks(
  container: Docker.Container,
  from: string,
  names: string[],
  root = '/',
): Promise<string | null> {
  let current = from;
  for (const [i, name] of names.entries()) {
    const next = current === '/' ? `/${name}` : `${current}/${name}`;
    const stat = await statPath(container, next);
    if (stat === null) return [next, ...names.slice(i + 1)].join('/');
    const target = linkTarget(stat);
    if (target === null) return null;
    current = target ?? next;
    if (!isInside(root, current)) return null;
  }
  return current;
}

/** A Writable that hands every chunk to `output`. */
function sink(output: (data: Buffer) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      output(chunk);
      callback();
    },
  });
}

export function createDockerDriver(options: DockerDriverOptions): DockerDriver {
  const docker = dockerClient(options.host);
  const ready: Promise<void> = options.cleanupLeftovers
    ? cleanupLeftovers(docker, options.runnerName).then(
        (result) => options.onCleanup?.(result),
        (error: unknown) => options.onCleanup?.(error instanceof Error ? error : new Error(String(error))),
      )
    : Promise.resolve();

  return {
    type: 'docker',
    ready,
    async create(environment: DriverEnvironment, driverOptions: Record<string, string>) {
      const image = driverOptions.image?.trim() ?? '';
      const given = driverOptions.workspace ?? '';
      const workspace = posix.normalize(given).replace(/(.)\/$/, '$1');
      if (image === '') throw new DriverError('the docker driver needs an image (driver.image)');
      if (!posix.isAbsolute(workspace) || workspace === '/') {
        throw new DriverError(`the docker driver needs an absolute workspace other than /, got "${given}"`);
      }
      await ready;
      const unreachable = await pingDocker(docker);
      if (unreachable !== null) {
        throw new DriverError(`cannot reach the Docker engine at ${options.host}: ${unreachable}`);
      }
      await ensureImage(docker, image, options.pullTimeoutMs, environment.signal);

      const buildId = environment.env.KILN_BUILD_ID ?? 'unknown';
      const volume = `kiln-${slug(buildId)}-${randomBytes(4).toString('hex')}`;
      const labels = {
        [LABEL_RUNNER]: options.runnerName,
        [LABEL_BUILD]: buildId,
        [LABEL_SESSION]: volume,
      };
      try {
        await docker.createVolume({ Name: volume, Labels: labels });
      } catch (error) {
        throw new DriverError(`cannot create the workspace volume: ${messageOf(error)}`);
      }
      return createSession({ docker, options, environment, image, workspace, volume, labels });
    },
  };
}

interface SessionParts {
  docker: Docker;
  options: DockerDriverOptions;
  environment: DriverEnvironment;
  image: string;
  workspace: string;
  volume: string;
  labels: Record<string, string>;
}

function createSession(parts: SessionParts): DockerSession {
  const { docker, options, environment, image, workspace, volume, labels } = parts;
  const containers = new Set<string>();
  let jobs = 0;
  let destroyed = false;

  const hostConfig: Docker.HostConfig = {
    Mounts: [{ Type: 'volume', Source: volume, Target: workspace }],
    Privileged: false,
    ...(options.memoryBytes > 0 ? { Memory: options.memoryBytes, MemorySwap: options.memoryBytes } : {}),
    ...(options.nanoCpus > 0 ? { NanoCpus: options.nanoCpus } : {}),
    ...(options.pidsLimit > 0 ? { PidsLimit: options.pidsLimit } : {}),
  };

  const newContainer = async (spec: Docker.ContainerCreateOptions, job: string) => {
    if (destroyed) throw new Error('the docker environment was destroyed');
    const container = await docker.createContainer({
      ...spec,
      name: `${volume}-${job}`,
      Image: image,
      WorkingDir: workspace,
      Labels: { ...labels, [LABEL_JOB]: job },
      HostConfig: hostConfig,
    });
    containers.add(container.id);
    return container;
  };
  const dropContainer = async (id: string) => {
    await removeContainer(docker, id);
    containers.delete(id);
  };

  /** A container that is never started: the archive API reaches the workspace volume through it. */
  const newReader = (purpose: string) =>
    newContainer({ Entrypoint: ['/bin/sh'], Cmd: [] }, `${purpose}-${++jobs}`);

  /**
   * Where `path` (relative to the workspace, or absolute inside it) leads in `container`, and the
   * workspace's own real path (an image may have a link among its parents); null when the path
   * resolves outside the workspace.
   */
  const resolveIn = async (container: Docker.Container, path: string) => {
    const full = posix.resolve(workspace, path);
    if (!isInside(workspace, full)) return null;
    const root = (await followLinks(container, '/', workspace.split('/').filter(Boolean))) ?? workspace;
    const real = await followLinks(
      container,
      root,
      full.slice(workspace.length).split('/').filter(Boolean),
      root,
    );
    return real === null ? null : { root, real };
  };

  const run = async (job: JobRun): Promise<JobResult> => {
    if (job.signal.aborted) return { exitCode: KILLED_EXIT_CODE, aborted: true };
    const number = ++jobs;
    const env = { ...environment.env, ...job.env, CI: 'true', KILN: 'true', KILN_WORKSPACE: workspace };
    const container = await newContainer(
      {
        Entrypoint: ['/bin/sh', '-c', `exec 2>&1; exec /bin/sh -e ${SCRIPT_PATH}`],
        Cmd: [],
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        Tty: false,
        AttachStdout: true,
        AttachStderr: true,
        OpenStdin: false,
      },
      `${number}-${slug(job.name)}`,
    );
    let aborted = false;
    let started = false;
    const kill = () => container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    const stop = () => {
      aborted = true;
      if (started) void kill();
    };
    job.signal.addEventListener('abort', stop, { once: true });
    let stream: NodeJS.ReadWriteStream | null = null;
    try {
      const script = Buffer.from(job.script);
      await container.putArchive(tarOneFile(SCRIPT_PATH.slice(1), script, script.length), { path: '/' });
      stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const ended = new Promise<void>((resolve) => {
        stream!.once('end', resolve);
        stream!.once('close', resolve);
        stream!.once('error', () => resolve());
      });
      const out = sink(job.output);
      docker.modem.demuxStream(stream, out, out);
      if (aborted || job.signal.aborted) return { exitCode: KILLED_EXIT_CODE, aborted: true };
      try {
        await container.start();
      } catch (error) {
        job.output(Buffer.from(`kiln: cannot start the job's container: ${messageOf(error)}\n`));
        return { exitCode: 127, aborted: false };
      }
      started = true;
      // A stop that came while the engine was starting the container.
      if (aborted) void kill();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      await Promise.race([ended, delay(OUTPUT_DRAIN_MS)]);
      if (!aborted && StatusCode === KILLED_EXIT_CODE) {
        const state = await container.inspect().then(
          (info) => info.State,
          () => null,
        );
        if (state?.OOMKilled) {
          job.output(
            Buffer.from(`\nkiln: the job ran out of memory (limit ${formatBytes(options.memoryBytes)})\n`),
          );
        }
      }
      return { exitCode: StatusCode, aborted };
    } finally {
      job.signal.removeEventListener('abort', stop);
      (stream as { destroy?: () => void } | null)?.destroy?.();
      await dropContainer(container.id).catch(() => undefined);
    }
  };

  const getArchive = async (path: string): Promise<NodeJS.ReadableStream> => {
    const container = await newReader('get');
    try {
      const found = await resolveIn(container, path);
      if (found === null) throw new DriverError(`${path} resolves outside the workspace`);
      const stream = await container.getArchive({ path: found.real });
      // The container must live until the archive is read; destroy() removes it if it never is.
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        dropContainer(container.id).catch(() => undefined);
      };
      for (const event of ['end', 'close', 'error']) stream.once(event, release);
      return stream;
    } catch (error) {
      await dropContainer(container.id).catch(() => undefined);
      throw error;
    }
  };

  /** The archive of `path` (resolved) through `reader`, or null when nothing is there. */
  const archiveOf = async (reader: Docker.Container, path: string) => {
    try {
      return (await reader.getArchive({ path })) as NodeJS.ReadableStream & AsyncIterable<Buffer>;
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  };

  /** The file a matched link at `at` leads to, as `path`, unless it leads outside `root`. */
  async function* linkedFile(
    reader: Docker.Container,
    root: string,
    path: string,
    at: string,
  ): AsyncGenerator<EnvironmentFile | SkippedFile> {
    const stat = await statPath(reader, at);
    const target = stat && linkTarget(stat);
    if (!stat || target === undefined) return;
    if (target === null || !isInside(root, target)) {
      yield { path, skipped: OUTSIDE_WORKSPACE };
      return;
    }
    const archive = await archiveOf(reader, target);
    if (archive === null) return;
    try {
      // Its first entry is what the link leads to: a directory is no artifact.
      for await (const entry of readTar(archive)) {
        if (entry.type === 'file') yield { path, size: entry.size, content: entry.content };
        return;
      }
    } finally {
      (archive as { destroy?: () => void }).destroy?.();
    }
  }

  return {
    description: `${image}, workspace ${workspace} (volume ${volume})`,
    image,
    workspace,
    volume,
    run,
    async putFile(path, content, size, mode = 0o644) {
      const container = await newReader('put');
      try {
        const found = await resolveIn(container, path);
        if (found === null) throw new DriverError(`${path} resolves outside the workspace`);
        if (found.real === found.root) throw new DriverError(`${path} is the workspace itself`);
        await container.putArchive(tarOneFile(found.real.slice(1), content, size, mode), { path: '/' });
      } finally {
        await dropContainer(container.id).catch(() => undefined);
      }
    },
    getArchive,
    async *files(pattern) {
      const full = posix.resolve(workspace, pattern);
      if (!isInside(workspace, full)) {
        yield { path: pattern, skipped: OUTSIDE_WORKSPACE };
        return;
      }
      const relative = full === workspace ? '' : full.slice(workspace.length + 1);
      const prefix = staticPrefix(relative);
      const matcher = globToRegExp(relative);
      const reader = await newReader('get');
      try {
        const found = await resolveIn(reader, prefix);
        if (found === null) {
          yield { path: prefix, skipped: OUTSIDE_WORKSPACE };
          return;
        }
        const archive = await archiveOf(reader, found.real);
        if (archive === null) return;
        try {
          // Entries are named from the base name of the archived path: swap it for the prefix.
          for await (const entry of readTar(archive)) {
            const slash = entry.name.indexOf('/');
            const within = slash < 0 ? '' : entry.name.slice(slash + 1);
            const path = within === '' ? prefix : prefix === '' ? within : `${prefix}/${within}`;
            if (!matcher.test(path)) continue;
            if (entry.type === 'file') yield { path, size: entry.size, content: entry.content };
            else if (entry.type === 'symlink') {
              yield* linkedFile(
                reader,
                found.root,
                path,
                within === '' ? found.real : `${found.real}/${within}`,
              );
            }
          }
        } finally {
          (archive as { destroy?: () => void }).destroy?.();
        }
      } finally {
        await dropContainer(reader.id).catch(() => undefined);
      }
    },
    async destroy() {
      destroyed = true;
      const listed = await docker
        .listContainers({ all: true, filters: { label: [`${LABEL_SESSION}=${volume}`] } })
        .catch(() => []);
      const ids = new Set([...containers, ...listed.map((c) => c.Id)]);
      await Promise.all([...ids].map((id) => dropContainer(id)));
      await removeVolume(docker, volume);
    },
  };
}

function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['g', 1024 ** 3],
    ['m', 1024 ** 2],
    ['k', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * The server's side of git: asking a remote for its heads, and a bare mirror per repository (under
 * the data dir) from which a commit's manifests are read. Only the commits builds need are fetched,
 * one at a time, never a clone per build; operations on one mirror run one after another.
 *
 * Every git runs without a terminal prompt, with a time limit after which it is killed, and with
 * `--` before anything a remote could make look like an option.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { globToRegExp } from '../../../runner/glob.ts';
import { shellQuote } from '../../../runner/manifest/plan.ts';
import { gitEnv } from '../../config.ts';

const ENV = gitEnv();

/** The longest a git talking to a remote may take before it is killed. */
export const GIT_REMOTE_TIMEOUT_MS = 60_000;
/** The largest manifest read out of a commit (parseManifest's own limit is smaller). */
const MAX_MANIFEST_READ = 1024 * 1024;

export class GitError extends Error {
  override name = 'GitError';
}

interface GitResult {
  stdout: Buffer;
}

/**
 * How git reaches an ssh remote: with this private key alone (never the server's own keys or agent),
 * without prompting, and trusting a host's key the first time it is seen (recorded in `knownHosts`,
 * one file per repository) and only that key after.
 */
export interface SshAuth {
  privateKey: string;
  knownHosts: string;
}

/** Runs `work` with the environment that makes git use `auth` (the key in a 0600 file, removed after). */
async function withSsh<T>(
  auth: SshAuth | undefined,
  work: (env?: NodeJS.ProcessEnv) => Promise<T>,
): Promise<T> {
  if (!auth) return work();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-ssh-'));
  try {
    const keyFile = path.join(dir, 'key');
    await writeFile(keyFile, `${auth.privateKey.replace(/\r\n?/g, '\n').replace(/\n+$/, '')}\n`, {
      mode: 0o600,
    });
    const ssh = [
      'ssh -F /dev/null',
      `-i ${shellQuote(keyFile)}`,
      '-o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o ConnectTimeout=20',
      `-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${shellQuote(auth.knownHosts)}`,
    ].join(' ');
    return await work({ GIT_SSH_COMMAND: ssh });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs git; rejects with the first lines of its stderr (or that it hung) as a GitError. */
export function git(
  args: string[],
  opts: { cwd?: string; timeoutMs?: number; maxBuffer?: number; env?: NodeJS.ProcessEnv } = {},
) {
  return new Promise<GitResult>((resolve, reject) => {
    execFile(
      'git',
      args,
      {
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? GIT_REMOTE_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'buffer',
        env: opts.env ? { ...ENV, ...opts.env } : ENV,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout });
        const hung = (error as { killed?: boolean }).killed;
        const said = stderr.toString('utf8').trim().split('\n').slice(0, 3).join('; ');
        reject(
          new GitError(
            hung
              ? `git ${args[0]} took longer than ${Math.round((opts.timeoutMs ?? GIT_REMOTE_TIMEOUT_MS) / 1000)} s and was stopped`
              : `git ${args[0]} failed: ${said || error.message}`,
          ),
        );
      },
    );
  });
}

/** The remote's heads and tags (`git ls-remote`), and the branch its HEAD points at. */
export async function lsRemote(
  url: string,
  timeoutMs = GIT_REMOTE_TIMEOUT_MS,
  auth?: SshAuth,
): Promise<{ head: string | null; refs: Map<string, string> }> {
  const { stdout } = await withSsh(auth, (env) =>
    git(['ls-remote', '--symref', '--', url], { timeoutMs, env }),
  );
  const refs = new Map<string, string>();
  let head: string | null = null;
  for (const line of stdout.toString('utf8').split('\n')) {
    const symref = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
    if (symref) head = symref[1]!;
    const ref = /^([0-9a-f]{40})\t(refs\/(heads|tags)\/\S+)$/.exec(line);
    if (ref && !ref[2]!.endsWith('^{}')) refs.set(ref[2]!, ref[1]!);
  }
  return { head, refs };
}

/** The repository's name from its clone URL: the last path segment without `.git`. */
export function nameFromUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '').replace(/\.git$/, '');
  const last = trimmed.split(/[/:]/).at(-1) ?? '';
  return last;
}

/** The forge's name of the repository (`owner/repo`, a GitLab group path) from its clone URL. */
export function forgeRepositoryFromUrl(url: string): string | null {
  let pathPart: string;
  const scpLike = /^[^/@:]+@[^/:]+:(.+)$/.exec(url);
  if (scpLike) pathPart = scpLike[1]!;
  else {
    try {
      const parsed = new URL(url);
      if (parsed.protocol === 'file:') return null;
      pathPart = parsed.pathname;
    } catch {
      return null;
    }
  }
  const cleaned = pathPart.replace(/^\/+|\/+$/g, '').replace(/\.git$/, '');
  return cleaned.includes('/') ? cleaned : null;
}

const chains = new Map<string, Promise<unknown>>();

/** Runs `work` after every earlier call for the same key has settled. */
function serially<T>(key: string, work: () => Promise<T>): Promise<T> {
  const before = chains.get(key) ?? Promise.resolve();
  const run = before.then(work, work);
  const tail = run.catch(() => {});
  chains.set(key, tail);
  void tail.then(() => {
    if (chains.get(key) === tail) chains.delete(key);
  });
  return run;
}

/** A repository's bare mirror on the server, holding only the commits builds asked for. */
export class Mirror {
  readonly dir: string;

  constructor(
    root: string,
    readonly repositoryId: string,
  ) {
    this.dir = path.join(root, `${repositoryId}.git`);
  }

  private async ensure(): Promise<void> {
    try {
      await access(path.join(this.dir, 'HEAD'));
    } catch {
      await mkdir(this.dir, { recursive: true });
      await git(['init', '-q', '--bare', this.dir]);
    }
  }

  private async has(sha: string): Promise<boolean> {
    try {
      await git(['cat-file', '-e', `${sha}^{commit}`], { cwd: this.dir, timeoutMs: 10_000 });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Makes sure the mirror holds `sha` (fetched on its own, or through `ref` when the remote hands out
   * only refs' heads). Throws a GitError saying why when the commit cannot be had.
   */
  fetch(url: string, ref: string, sha: string, auth?: SshAuth): Promise<void> {
    return serially(this.dir, async () => {
      await this.ensure();
      if (await this.has(sha)) return;
      await withSsh(auth, (env) => this.fetchCommit(url, ref, sha, 1, env));
    });
  }

  /** Fetches `sha` and `depth - 1` commits of its history (through `ref` when the remote wants refs). */
  private async fetchCommit(url: string, ref: string, sha: string, depth: number, env?: NodeJS.ProcessEnv) {
    try {
      await git(['fetch', '-q', '--no-tags', `--depth=${depth}`, '--', url, sha], { cwd: this.dir, env });
    } catch {
      await git(['fetch', '-q', '--no-tags', `--depth=${depth}`, '--', url, `+${ref}:refs/kiln/fetched`], {
        cwd: this.dir,
        env,
      });
    }
    if (!(await this.has(sha))) throw new GitError(`commit ${sha} is not on ${ref} of the remote`);
  }

  /**
   * The commits a push of `ref` from `before` to `after` added, oldest first, at most `limit` (the
   * newest ones when there are more). Only `after` when `before` is not known (a new branch, or a
   * history the push rewrote and the remote no longer has): there is no telling which commits are new.
   */
  commitsBetween(
    url: string,
    ref: string,
    before: string,
    after: string,
    limit: number,
    auth?: SshAuth,
  ): Promise<{ commits: string[]; truncated: boolean }> {
    return serially(this.dir, async () => {
      await this.ensure();
      await withSsh(auth, async (env) => {
        await this.fetchCommit(url, ref, after, limit + 1, env);
        if (!(await this.has(before))) {
          await git(['fetch', '-q', '--no-tags', '--depth=1', '--', url, before], {
            cwd: this.dir,
            env,
          }).catch(() => {});
        }
      });
      if (!(await this.has(before))) return { commits: [after], truncated: false };
      const { stdout } = await git(
        ['rev-list', '--topo-order', `--max-count=${limit + 1}`, `${before}..${after}`, '--'],
        { cwd: this.dir, timeoutMs: 30_000 },
      );
      const newestFirst = stdout.toString('utf8').split('\n').filter(Boolean);
      const truncated = newestFirst.length > limit;
      return { commits: newestFirst.slice(0, limit).reverse(), truncated };
    });
  }

  /** The files at `sha` that match any of `patterns` (globs like `.kiln/*.yml`), sorted. */
  async filesMatching(sha: string, patterns: string[]): Promise<string[]> {
    const { stdout } = await git(['ls-tree', '-r', '--name-only', '-z', sha], {
      cwd: this.dir,
      timeoutMs: 30_000,
      maxBuffer: 256 * 1024 * 1024,
    });
    const matchers = patterns.map((p) => globToRegExp(p));
    return stdout
      .toString('utf8')
      .split('\0')
      .filter((file) => file !== '' && matchers.some((m) => m.test(file)))
      .sort();
  }

  /** A file's text at `sha`; null when it is larger than a manifest can be. */
  async read(sha: string, file: string): Promise<string | null> {
    const { stdout } = await git(['cat-file', 'blob', `${sha}:${file}`], {
      cwd: this.dir,
      timeoutMs: 30_000,
      maxBuffer: MAX_MANIFEST_READ,
    }).catch((error: unknown) => {
      if (error instanceof GitError && /maxBuffer/i.test(error.message)) return { stdout: null };
      throw error;
    });
    return stdout === null ? null : stdout.toString('utf8');
  }

  /** The commit's author (`Name <email>`) and whole message. */
  async commit(sha: string): Promise<{ author: string; message: string }> {
    const { stdout } = await git(['log', '-1', '--format=%an <%ae>%x00%B', sha, '--'], {
      cwd: this.dir,
      timeoutMs: 10_000,
    });
    const [author = '', message = ''] = stdout.toString('utf8').split('\0');
    return { author, message: message.replace(/\n+$/, '') };
  }
}

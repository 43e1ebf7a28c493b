/**
 * Repositories: connecting one (checked and completed from its remote), changing and deleting it,
 * and building a commit of it: fetched into the repository's mirror, one build per manifest found at
 * it, each submitted through `BuildService.submit` with the repository's namespace, its owner, and a
 * cause that says why. The events forges post are forge-events.service.ts's.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { Build } from '../builds/builds.entity.ts';
import type { BuildService, Cause, SubmitRequest } from '../builds/builds.service.ts';
import { SshKeySchema } from '../keys/keys.entity.ts';
import { type Namespace, NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { type ForgeTarget, forgeRequest } from './forge-api.ts';
import { type CommitInfo, HOOK_PATHS, skipsCi } from './forges.ts';
import { forgeRepositoryFromUrl, GitError, lsRemote, Mirror, nameFromUrl, type SshAuth } from './git.ts';
import { type Forge, type Repository, RepositorySchema } from './repositories.entity.ts';
import { checkCloneUrl, checkManifestPath, defaultApiUrl, isSshUrl } from './repository-rules.ts';

export type Outcome<T> = { ok: true; value: T } | { ok: false; path: string; reason: string };

export const DEFAULT_MANIFEST_PATHS = ['.kiln.yml', '.kiln/*.yml'];
const NAME = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_MANIFEST_PATHS = 32;
/** The most commits of one push that build one by one (buildEveryCommit); older ones are skipped. */
export const MAX_COMMITS_PER_PUSH = 50;

export interface RepositoryInput {
  cloneUrl?: string | null;
  forge?: Forge | null;
  name?: string | null;
  defaultBranch?: string | null;
  manifestPaths?: string[] | null;
  includeBranches?: string[] | null;
  excludeBranches?: string[] | null;
  allowForkSecrets?: boolean | null;
  pollInterval?: number | null;
  buildEveryCommit?: boolean | null;
  /** The name of one of the namespace's SSH keys; null clears it. */
  sshKey?: string | null;
  forgeApiUrl?: string | null;
  forgeRepository?: string | null;
  forgeToken?: string | null;
}

export interface RepositoryServiceDeps {
  orm: MikroORM;
  builds: BuildService;
  secrets: SecretBox;
  logger: Logger;
  /** Where the repositories' bare mirrors live. */
  mirrorsDir: string;
  /** The URL forges reach this api at (KILN_PUBLIC_URL, else the listen URL). */
  publicUrl: () => string;
  /** KILN_POLL_MIN_SECONDS: the smallest poll interval a repository may have. */
  pollMinSeconds: number;
}

/** What a build at a commit is for, from whichever trigger asked for it. */
export interface BuildTarget {
  kind: 'MANUAL' | 'PUSH' | 'PULL' | 'SCHEDULE';
  ref: string;
  commit: CommitInfo;
  url: string | null;
  pullRequest: number | null;
  fromFork: boolean;
  /** The person who triggered it (MANUAL). */
  userId?: string;
  /** The forge event that asked for it. */
  eventId?: string;
  /** More of the cause (a schedule's id and slot). */
  causeData?: Record<string, string>;
  /** Put before each build's comment (a schedule's name). */
  commentPrefix?: string;
}

/** A push (a forge's, or a head a poll saw move): `before` is the ref's head before it, when known. */
export interface PushTarget {
  ref: string;
  before: string | null;
  head: CommitInfo;
  /** The commits the forge listed in its payload (their messages and authors, where it gave them). */
  listed?: CommitInfo[];
  url: string | null;
  eventId?: string;
}

export class RepositoryService {
  constructor(private readonly deps: RepositoryServiceDeps) {}

  webhookUrl(repo: Repository): string {
    const forge = repo.forge === 'GENERIC' ? 'GITHUB' : repo.forge;
    return `${this.deps.publicUrl().replace(/\/+$/, '')}/hooks/${HOOK_PATHS[forge]}/${repo.id}`;
  }

  mirror(repo: Repository): Mirror {
    return new Mirror(this.deps.mirrorsDir, repo.id);
  }

  /** The key an ssh clone URL of repository `repositoryId` is fetched with, and its known hosts. */
  private async sshAuth(em: EntityManager, repositoryId: string, keyId: string): Promise<SshAuth> {
    const key = await em.findOneOrFail(SshKeySchema, { id: keyId }, { disableIdentityMap: true });
    await mkdir(this.deps.mirrorsDir, { recursive: true });
    return {
      privateKey: this.deps.secrets.open(key.encryptedKey),
      knownHosts: path.join(this.deps.mirrorsDir, `${repositoryId}.known_hosts`),
    };
  }

  /**
   * How the server reaches `repo`'s remote: with its SSH key when it has one (its name and key, for
   * the checkout job too). Undefined for URLs git reaches without one.
   */
  async auth(
    em: EntityManager,
    repo: Repository,
  ): Promise<(SshAuth & { key: { name: string; privateKey: string; config: string } }) | undefined> {
    if (!repo.sshKey) return undefined;
    const key = await em.findOne(SshKeySchema, { id: repo.sshKey.id }, { disableIdentityMap: true });
    if (!key) return undefined;
    const auth = await this.sshAuth(em, repo.id, key.id);
    return { ...auth, key: { name: key.name, privateKey: auth.privateKey, config: key.config } };
  }

  list(em: EntityManager, namespaceId: string): Promise<Repository[]> {
    return em.find(RepositorySchema, { namespace: namespaceId }, { orderBy: { name: 'asc' } });
  }

  find(em: EntityManager, id: string): Promise<Repository | null> {
    return em.findOne(RepositorySchema, { id });
  }

  /** Checks `input` on top of `current` (for an update) and completes it; the fields to store. */
  private async settle(
    em: EntityManager,
    namespaceId: string,
    input: RepositoryInput,
    current: Repository | null,
    repositoryId: string,
  ): Promise<
    Outcome<
      Omit<
        Repository,
        'id' | 'namespace' | 'encryptedWebhookSecret' | 'createdAt' | 'polledAt' | 'forgeHookId'
      >
    >
  > {
    const fail = (field: string, reason: string) => ({ ok: false as const, path: `input.${field}`, reason });
    const cloneUrl = (input.cloneUrl ?? current?.cloneUrl ?? '').trim();
    const urlProblem = checkCloneUrl(cloneUrl);
    if (urlProblem) return fail('cloneUrl', urlProblem);
    const forge = input.forge ?? current?.forge ?? 'GENERIC';
    const name = input.name ?? current?.name ?? nameFromUrl(cloneUrl);
    if (!NAME.test(name)) {
      return fail(
        'name',
        `"${name.slice(0, 200)}" is not a repository name: 1 to 128 letters, digits, . _ -`,
      );
    }
    const clash = await em.findOne(RepositorySchema, { namespace: namespaceId, name });
    if (clash && clash.id !== current?.id) {
      return fail('name', `the namespace has a repository named ${name} already`);
    }
    const manifestPaths = input.manifestPaths ?? current?.manifestPaths ?? DEFAULT_MANIFEST_PATHS;
    if (manifestPaths.length === 0 || manifestPaths.length > MAX_MANIFEST_PATHS) {
      return fail('manifestPaths', `give 1 to ${MAX_MANIFEST_PATHS} manifest paths`);
    }
    for (const [i, p] of manifestPaths.entries()) {
      const problem = checkManifestPath(p);
      if (problem) return fail(`manifestPaths[${i}]`, problem);
    }
    const branchFilters: Record<'includeBranches' | 'excludeBranches', string[]> = {
      includeBranches: input.includeBranches ?? current?.includeBranches ?? [],
      excludeBranches: input.excludeBranches ?? current?.excludeBranches ?? [],
    };
    for (const field of ['includeBranches', 'excludeBranches'] as const) {
      const globs = branchFilters[field];
      if (globs.length > MAX_MANIFEST_PATHS) return fail(field, `at most ${MAX_MANIFEST_PATHS} globs`);
      const bad = globs.findIndex((g) => g.trim() === '' || g.length > 255 || /\s/.test(g));
      if (bad >= 0) return fail(`${field}[${bad}]`, 'a branch glob is 1 to 255 characters without spaces');
    }
    const allowForkSecrets = input.allowForkSecrets ?? current?.allowForkSecrets ?? false;
    const pollInterval =
      input.pollInterval === undefined ? (current?.pollInterval ?? null) : input.pollInterval;
    if (pollInterval !== null && pollInterval < this.deps.pollMinSeconds) {
      return fail(
        'pollInterval',
        `a repository is polled at most every ${this.deps.pollMinSeconds} s (KILN_POLL_MIN_SECONDS); give ${this.deps.pollMinSeconds} or more, or null for webhooks only`,
      );
    }
    const buildEveryCommit = input.buildEveryCommit ?? current?.buildEveryCommit ?? false;
    let sshKeyId = input.sshKey === undefined ? (current?.sshKey?.id ?? null) : null;
    if (input.sshKey) {
      const key = await em.findOne(SshKeySchema, { namespace: namespaceId, name: input.sshKey });
      if (!key) return fail('sshKey', `the namespace has no SSH key named ${input.sshKey.slice(0, 200)}`);
      sshKeyId = key.id;
    }
    if (isSshUrl(cloneUrl) && !sshKeyId) {
      return fail(
        'sshKey',
        `${cloneUrl.slice(0, 200)} is fetched over ssh: give sshKey, the name of one of the namespace's SSH keys (its public key must be a deploy key of the repository)`,
      );
    }
    let defaultBranch =
      input.defaultBranch ?? (cloneUrl === current?.cloneUrl ? current.defaultBranch : null);
    let lastCheckedAt = current?.lastCheckedAt ?? null;
    if (!defaultBranch) {
      try {
        const auth = sshKeyId ? await this.sshAuth(em, repositoryId, sshKeyId) : undefined;
        const remote = await lsRemote(cloneUrl, 30_000, auth);
        lastCheckedAt = new Date();
        if (!remote.head) {
          return fail(
            'defaultBranch',
            'the remote names no default branch (is it empty?): give defaultBranch',
          );
        }
        defaultBranch = remote.head;
      } catch (error) {
        const said = error instanceof GitError ? error.message : String(error);
        return fail('cloneUrl', `cannot read the remote to learn its default branch: ${said}`);
      }
    }
    if (defaultBranch.startsWith('-') || /\s/.test(defaultBranch) || defaultBranch.length > 255) {
      return fail('defaultBranch', `"${defaultBranch.slice(0, 200)}" is not a branch name`);
    }
    const forgeRepository =
      input.forgeRepository ??
      (input.cloneUrl !== undefined || !current ? forgeRepositoryFromUrl(cloneUrl) : current.forgeRepository);
    const forgeApiUrl = input.forgeApiUrl ?? current?.forgeApiUrl ?? defaultApiUrl(forge, cloneUrl);
    if (forgeApiUrl !== null && !/^https?:\/\/[^\s]+$/.test(forgeApiUrl)) {
      return fail('forgeApiUrl', 'the forge API URL is an http(s) URL');
    }
    const encryptedForgeToken =
      input.forgeToken === undefined
        ? (current?.encryptedForgeToken ?? null)
        : input.forgeToken
          ? this.deps.secrets.seal(input.forgeToken)
          : null;
    return {
      ok: true,
      value: {
        name,
        cloneUrl,
        forge,
        defaultBranch,
        manifestPaths,
        ...branchFilters,
        allowForkSecrets,
        pollInterval,
        buildEveryCommit,
        sshKey: sshKeyId ? em.getReference(SshKeySchema, sshKeyId, { wrapped: true }) : null,
        forgeApiUrl,
        forgeRepository,
        encryptedForgeToken,
        lastCheckedAt,
        problem: current?.problem ?? null,
      },
    };
  }

  /** Connects a repository to `namespace` (the caller checked that the viewer may write it). */
  async create(
    em: EntityManager,
    namespace: Namespace,
    input: RepositoryInput,
  ): Promise<Outcome<{ repository: Repository; webhookSecret: string }>> {
    const id = randomUUID();
    const settled = await this.settle(em, namespace.id, input, null, id);
    if (!settled.ok) return settled;
    const webhookSecret = randomBytes(24).toString('hex');
    const repository = em.create(RepositorySchema, {
      id,
      namespace: em.getReference(NamespaceSchema, namespace.id, { wrapped: true }),
      ...settled.value,
      encryptedWebhookSecret: this.deps.secrets.seal(webhookSecret),
      polledAt: null,
      forgeHookId: null,
      createdAt: new Date(),
    });
    await em.persistAndFlush(repository);
    this.deps.logger.info({ repository: repository.id, name: repository.name }, 'repository connected');
    await this.installHook(em, repository, webhookSecret);
    return { ok: true, value: { repository, webhookSecret } };
  }

  /** The forge's API for this repository, when it has a token and the forge has an API. */
  private target(repo: Repository): ForgeTarget | null {
    if (repo.forge === 'GENERIC' || !repo.encryptedForgeToken || !repo.forgeApiUrl || !repo.forgeRepository) {
      return null;
    }
    return {
      forge: repo.forge,
      apiUrl: repo.forgeApiUrl,
      repository: repo.forgeRepository,
      token: this.deps.secrets.open(repo.encryptedForgeToken),
    };
  }

  /**
   * With a forge token, the repository's webhook is installed on the forge (push and pull request
   * events, JSON, the secret), so that connecting it is one step. When that fails the repository is
   * kept and `problem` says why: the URL and secret can still be pasted by hand.
   */
  private async installHook(em: EntityManager, repo: Repository, secret: string): Promise<void> {
    const target = this.target(repo);
    if (!target) return;
    const url = this.webhookUrl(repo);
    const body =
      target.forge === 'GITLAB'
        ? {
            url,
            token: secret,
            push_events: true,
            tag_push_events: true,
            merge_requests_events: true,
            enable_ssl_verification: true,
          }
        : target.forge === 'GITHUB'
          ? {
              name: 'web',
              active: true,
              events: ['push', 'pull_request'],
              config: { url, content_type: 'json', secret, insecure_ssl: '0' },
            }
          : {
              type: target.forge === 'FORGEJO' ? 'forgejo' : 'gitea',
              active: true,
              events: ['push', 'pull_request'],
              config: { url, content_type: 'json', secret },
            };
    const sent = await forgeRequest(target, 'POST', '/hooks', body);
    const id = sent.ok ? (sent.body as { id?: unknown } | null)?.id : undefined;
    if (sent.ok && (typeof id === 'number' || typeof id === 'string')) {
      repo.forgeHookId = String(id);
      this.deps.logger.info(
        { repository: repo.id, hook: repo.forgeHookId },
        'installed the webhook on the forge',
      );
    } else {
      repo.problem = `could not install the webhook on the forge (${sent.ok ? 'its answer had no hook id' : sent.failure}): add it by hand with the webhook URL and secret`;
      this.deps.logger.warn({ repository: repo.id, problem: repo.problem }, 'installing a webhook failed');
    }
    await em.flush();
  }

  async update(em: EntityManager, repo: Repository, input: RepositoryInput): Promise<Outcome<Repository>> {
    const settled = await this.settle(em, repo.namespace.id, input, repo, repo.id);
    if (!settled.ok) return settled;
    em.assign(repo, settled.value);
    await em.flush();
    return { ok: true, value: repo };
  }

  /** Deletes the repository, and the webhook Kiln installed for it (a forge that refuses is logged). */
  async delete(em: EntityManager, repo: Repository): Promise<void> {
    const target = this.target(repo);
    if (target && repo.forgeHookId) {
      const removed = await forgeRequest(target, 'DELETE', `/hooks/${encodeURIComponent(repo.forgeHookId)}`);
      if (!removed.ok) {
        this.deps.logger.warn(
          { repository: repo.id, hook: repo.forgeHookId, failure: removed.failure },
          'could not remove the webhook from the forge',
        );
      }
    }
    await em.removeAndFlush(repo);
  }

  /**
   * Builds `target.commit` of `repo`: fetches it into the mirror, reads the manifests at it and
   * submits one build per manifest that is valid. The outcome says what happened, in words.
   */
  async buildCommit(
    em: EntityManager,
    repo: Repository,
    target: BuildTarget,
  ): Promise<{ builds: Build[]; outcome: string; problems: string[] }> {
    const prepared = await this.prepareCommit(em, repo, target);
    const builds: Build[] = [];
    for (const request of prepared.requests) builds.push(await this.deps.builds.submit(em, request));
    return { builds, outcome: prepared.outcome(builds.length), problems: prepared.problems };
  }

  /**
   * What building `target.commit` of `repo` would submit, read from the commit (fetched into the
   * mirror), without submitting it: one request per valid manifest, the manifests refused and why,
   * and the outcome in words once the caller says how many builds it made.
   */
  async prepareCommit(
    em: EntityManager,
    repo: Repository,
    target: BuildTarget,
  ): Promise<{ requests: SubmitRequest[]; problems: string[]; outcome: (built: number) => string }> {
    const mirror = this.mirror(repo);
    const { sha } = target.commit;
    const auth = await this.auth(em, repo);
    await mirror.fetch(repo.cloneUrl, target.ref, sha, auth);
    const commit =
      target.commit.author && target.commit.message !== null
        ? target.commit
        : { ...target.commit, ...(await mirror.commit(sha)) };
    const files = await mirror.filesMatching(sha, repo.manifestPaths);
    if (files.length === 0) {
      const none = `no manifest at ${sha.slice(0, 12)} (looked for ${repo.manifestPaths.join(', ')})`;
      return { requests: [], problems: [], outcome: () => none };
    }
    const namespace = await em.findOneOrFail(NamespaceSchema, { id: repo.namespace.id });
    const owner = namespace.owner;
    // A fork's code gets the namespace's secrets only where the repository says it may.
    const untrusted = target.fromFork && !repo.allowForkSecrets;
    const notices = untrusted
      ? [
          'kiln: a pull request from a fork: masked variables, SSH keys and objects are withheld from this build',
        ]
      : [];
    const checkout = { url: repo.cloneUrl, ref: target.ref, sha, notices };
    const requests: SubmitRequest[] = [];
    const problems: string[] = [];
    const subject = (commit.message ?? '').split('\n')[0]!.slice(0, 200);
    const tag = target.ref.replace(/^refs\/(heads|tags)\//, '');
    for (const file of files) {
      const text = await mirror.read(sha, file);
      if (text === null) {
        problems.push(`${file}: larger than a manifest can be`);
        continue;
      }
      const validated = this.deps.builds.validate(
        {
          manifest: text,
          comment: `${target.commentPrefix ?? ''}${file}: ${subject}`,
          tags: /^[a-zA-Z0-9_./-]{1,128}$/.test(tag) ? [tag] : [],
        },
        { checkout },
      );
      if (!validated.ok) {
        const first = validated.problems[0]!;
        problems.push(
          `${file}${first.line ? `:${first.line}` : ''}: ${first.message}${validated.problems.length > 1 ? ` (and ${validated.problems.length - 1} more)` : ''}`,
        );
        continue;
      }
      const cause: Cause = {
        kind: target.kind,
        data: {
          ...target.causeData,
          repositoryId: repo.id,
          manifestPath: file,
          ref: target.ref,
          sha,
          ...(commit.author ? { author: commit.author } : {}),
          ...(commit.message !== null ? { message: commit.message } : {}),
          ...((target.url ?? commit.url) ? { url: (target.url ?? commit.url)! } : {}),
          ...(target.pullRequest !== null ? { pullRequest: String(target.pullRequest) } : {}),
          ...(target.userId ? { userId: target.userId } : {}),
          ...(target.eventId ? { eventId: target.eventId } : {}),
        },
      };
      requests.push({
        owner: { id: owner.id },
        namespace: { id: repo.namespace.id },
        cause,
        submission: validated.submission,
        untrusted,
        ...(auth ? { checkoutKey: auth.key } : {}),
      });
    }
    return {
      requests,
      problems,
      outcome: (built) => {
        const started = `started ${built} build${built === 1 ? '' : 's'}`;
        return problems.length > 0 ? `${started}; refused ${problems.join('; ')}` : started;
      },
    };
  }

  /**
   * Builds a push: its head, or with `buildEveryCommit` each commit it added, oldest first (at most
   * MAX_COMMITS_PER_PUSH, the newest). Commits whose message says `[skip ci]` or `[ci skip]` build
   * nothing. The outcome says what happened to each commit.
   */
  async buildPush(
    em: EntityManager,
    repo: Repository,
    push: PushTarget,
  ): Promise<{ builds: Build[]; outcome: string; problems: string[] }> {
    const mirror = this.mirror(repo);
    const auth = await this.auth(em, repo);
    let shas = [push.head.sha];
    let truncated = false;
    if (repo.buildEveryCommit && push.before && push.before !== push.head.sha) {
      ({ commits: shas, truncated } = await mirror.commitsBetween(
        repo.cloneUrl,
        push.ref,
        push.before,
        push.head.sha,
        MAX_COMMITS_PER_PUSH,
        auth,
      ));
    } else {
      await mirror.fetch(repo.cloneUrl, push.ref, push.head.sha, auth);
    }
    const listed = new Map((push.listed ?? []).map((c) => [c.sha, c]));
    const builds: Build[] = [];
    const problems: string[] = [];
    const outcomes: string[] = [];
    for (const sha of shas) {
      const known = sha === push.head.sha ? push.head : listed.get(sha);
      // A forge's payload may leave out commits (GitHub lists 20): the mirror has them all.
      const commit =
        known?.message != null ? known : { sha, ...(await mirror.commit(sha)), url: known?.url ?? null };
      const prefix = shas.length > 1 ? `${sha.slice(0, 12)}: ` : '';
      if (skipsCi(commit.message)) {
        outcomes.push(`${prefix}ignored: [skip ci] in the commit message`);
        continue;
      }
      const built = await this.buildCommit(em, repo, {
        kind: 'PUSH',
        ref: push.ref,
        commit,
        url: shas.length > 1 ? (commit.url ?? push.url) : push.url,
        pullRequest: null,
        fromFork: false,
        ...(push.eventId ? { eventId: push.eventId } : {}),
      });
      builds.push(...built.builds);
      problems.push(...built.problems);
      outcomes.push(`${prefix}${built.outcome}`);
    }
    if (truncated) outcomes.push(`only the newest ${MAX_COMMITS_PER_PUSH} commits of the push were built`);
    return { builds, outcome: outcomes.join('; '), problems };
  }

  /** `triggerRepository`: builds `ref` (the default branch when null) at `sha` (its head when null). */
  async trigger(
    em: EntityManager,
    repo: Repository,
    userId: string,
    ref: string | null,
    sha: string | null,
  ): Promise<Outcome<{ builds: Build[]; outcome: string; problems: string[] }>> {
    const wanted = ref ?? repo.defaultBranch;
    if (wanted.startsWith('-')) return { ok: false, path: 'input.ref', reason: `"${wanted}" is not a ref` };
    if (sha !== null && !/^[0-9a-f]{40}$/.test(sha)) {
      return { ok: false, path: 'input.sha', reason: 'a commit is its full id: 40 hex digits' };
    }
    let fullRef = wanted.startsWith('refs/') ? wanted : null;
    let head = sha;
    if (!fullRef || !head) {
      let remote: Awaited<ReturnType<typeof lsRemote>>;
      try {
        remote = await lsRemote(repo.cloneUrl, undefined, await this.auth(em, repo));
      } catch (error) {
        return {
          ok: false,
          path: 'input.repositoryId',
          reason: error instanceof Error ? error.message : String(error),
        };
      }
      fullRef ??= [`refs/heads/${wanted}`, `refs/tags/${wanted}`].find((r) => remote.refs.has(r)) ?? null;
      if (!fullRef)
        return { ok: false, path: 'input.ref', reason: `the remote has no branch or tag ${wanted}` };
      head ??= remote.refs.get(fullRef) ?? null;
      if (!head) return { ok: false, path: 'input.ref', reason: `the remote has no ${fullRef}` };
    }
    try {
      const result = await this.buildCommit(em, repo, {
        kind: 'MANUAL',
        ref: fullRef,
        commit: { sha: head, author: null, message: null, url: null },
        url: null,
        pullRequest: null,
        fromFork: false,
        userId,
      });
      return { ok: true, value: result };
    } catch (error) {
      return { ok: false, path: 'input.sha', reason: error instanceof Error ? error.message : String(error) };
    }
  }
}

/**
 * What each forge sends and how to read it: the headers that name the event, the delivery and the
 * signature, how the signature is checked (before anything of the body is parsed), and the body read
 * into one shape, `ForgeChange`, whatever forge it came from.
 *
 * - GitHub: `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`.
 * - Gitea: `X-Gitea-Event`, `X-Gitea-Delivery`, `X-Gitea-Signature: <hex HMAC-SHA256>`; Forgejo the
 *   same with `X-Forgejo-*` (it also sends the `X-Gitea-*` names).
 * - GitLab: `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, `Merge Request Hook`), `X-Gitlab-Event-UUID`,
 *   and `X-Gitlab-Token`: the secret itself, compared as it is.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Forge } from './repositories.entity.ts';

export type HookForge = Exclude<Forge, 'GENERIC'>;

/** The path segment of `/hooks/<forge>/<id>`, per forge. */
export const HOOK_PATHS: Record<HookForge, string> = {
  GITHUB: 'github',
  GITLAB: 'gitlab',
  GITEA: 'gitea',
  FORGEJO: 'forgejo',
};

export type Headers = Record<string, string | string[] | undefined>;

const header = (headers: Headers, name: string): string | null => {
  const value = headers[name.toLowerCase()];
  return (Array.isArray(value) ? value[0] : value) ?? null;
};

/**
 * Equal strings, compared in time that depends neither on where they differ nor on their lengths:
 * their SHA-256 digests (always 32 bytes) are what is compared.
 */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const hmacHex = (secret: string, body: Buffer) => createHmac('sha256', secret).update(body).digest('hex');

/** Whether the delivery was signed with `secret`; why not, when it was not. */
export function verifyDelivery(
  forge: HookForge,
  headers: Headers,
  body: Buffer,
  secret: string,
): { ok: true } | { ok: false; reason: string } {
  const signed = (name: string, given: string | null, prefix = '') => {
    if (given === null) return { ok: false as const, reason: `no ${name} header` };
    return sameSecret(given.trim().toLowerCase(), `${prefix}${hmacHex(secret, body)}`)
      ? { ok: true as const }
      : { ok: false as const, reason: `bad signature in ${name}` };
  };
  switch (forge) {
    case 'GITHUB':
      return signed('X-Hub-Signature-256', header(headers, 'x-hub-signature-256'), 'sha256=');
    case 'GITEA':
      return signed('X-Gitea-Signature', header(headers, 'x-gitea-signature'));
    case 'FORGEJO':
      return signed(
        'X-Forgejo-Signature',
        header(headers, 'x-forgejo-signature') ?? header(headers, 'x-gitea-signature'),
      );
    case 'GITLAB': {
      const token = header(headers, 'x-gitlab-token');
      if (token === null) return { ok: false, reason: 'no X-Gitlab-Token header' };
      return sameSecret(token, secret) ? { ok: true } : { ok: false, reason: 'bad token in X-Gitlab-Token' };
    }
  }
}

/** The forge's name of the event and its delivery id, from the headers. */
export function deliveryOf(forge: HookForge, headers: Headers): { event: string; deliveryId: string | null } {
  const pick = (...names: string[]) => {
    for (const name of names) {
      const value = header(headers, name);
      if (value) return value.slice(0, 255);
    }
    return null;
  };
  switch (forge) {
    case 'GITHUB':
      return { event: pick('x-github-event') ?? 'unknown', deliveryId: pick('x-github-delivery') };
    case 'GITEA':
      return { event: pick('x-gitea-event') ?? 'unknown', deliveryId: pick('x-gitea-delivery') };
    case 'FORGEJO':
      return {
        event: pick('x-forgejo-event', 'x-gitea-event') ?? 'unknown',
        deliveryId: pick('x-forgejo-delivery', 'x-gitea-delivery'),
      };
    case 'GITLAB':
      return { event: pick('x-gitlab-event') ?? 'unknown', deliveryId: pick('x-gitlab-event-uuid') };
  }
}

/** Headers kept with a stored event: all but those that carry a secret. */
export function storableHeaders(headers: Headers): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || /token|authorization|cookie|signature/i.test(name)) continue;
    kept[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return kept;
}

/** A commit as a build's cause records it. */
export interface CommitInfo {
  sha: string;
  author: string | null;
  message: string | null;
  url: string | null;
}

/** What a delivery asks for, in one shape for every forge. */
export type ForgeChange =
  | { kind: 'ping' }
  | { kind: 'ignored'; reason: string }
  | {
      kind: 'push' | 'pull';
      /** The full ref built: refs/heads/main, refs/tags/v1, refs/pull/7/head, refs/merge-requests/7/head. */
      ref: string;
      /** The branch the filters look at: the pushed branch, or the pull request's source branch. */
      branch: string | null;
      commit: CommitInfo;
      /** The pull request's URL, or the compare view of a push. */
      url: string | null;
      pullRequest: number | null;
      /** A pull request from another repository than the one it targets. */
      fromFork: boolean;
      /** A push's head before it (null for a new ref, and for pull requests). */
      before: string | null;
      /** The commits a push's payload lists (GitHub and GitLab list at most 20). */
      commits: CommitInfo[];
    };

const ZERO_SHA = /^0+$/;
const SHA = /^[0-9a-f]{40}$/;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {});
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);

const authorOf = (author: unknown): string | null => {
  const a = obj(author);
  const name = str(a.name);
  const email = str(a.email);
  return name && email ? `${name} <${email}>` : (name ?? null);
};

function commitOf(sha: string, commit: Json): CommitInfo {
  return { sha, author: authorOf(commit.author), message: str(commit.message), url: str(commit.url) };
}

const branchOf = (ref: string) => (ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null);

/** A push: the head it names, unless the ref was deleted. The head commit is the one built. */
function push(body: Json, kind: 'GitHub' | 'GitLab' | 'Gitea'): ForgeChange {
  const ref = str(body.ref);
  const after = str(body.after);
  if (!ref || !after) return { kind: 'ignored', reason: `a ${kind} push without ref or after` };
  if (body.deleted === true || ZERO_SHA.test(after)) {
    return { kind: 'ignored', reason: `${ref.startsWith('refs/tags/') ? 'tag' : 'branch'} deleted` };
  }
  if (!SHA.test(after)) return { kind: 'ignored', reason: `"${after.slice(0, 64)}" is not a commit id` };
  const commits = Array.isArray(body.commits) ? body.commits.map(obj) : [];
  const head = obj(body.head_commit);
  const headCommit = str(head.id) === after ? head : (commits.find((c) => str(c.id) === after) ?? {});
  const before = str(body.before);
  return {
    kind: 'push',
    ref,
    branch: branchOf(ref),
    commit: commitOf(after, headCommit),
    url: str(body.compare) ?? str(body.compare_url) ?? str(headCommit.url),
    pullRequest: null,
    fromFork: false,
    before: before && SHA.test(before) && !ZERO_SHA.test(before) ? before : null,
    commits: commits.flatMap((c) => {
      const id = str(c.id);
      return id && SHA.test(id) ? [commitOf(id, c)] : [];
    }),
  };
}

const PULL_ACTIONS: Record<HookForge, ReadonlySet<string>> = {
  GITHUB: new Set(['opened', 'reopened', 'synchronize']),
  GITEA: new Set(['opened', 'reopened', 'synchronized']),
  FORGEJO: new Set(['opened', 'reopened', 'synchronized']),
  GITLAB: new Set(['open', 'reopen', 'update']),
};

/** A GitHub, Gitea or Forgejo pull request: its head, fetched as refs/pull/<n>/head. */
function pullRequest(forge: HookForge, body: Json): ForgeChange {
  const action = str(body.action) ?? '';
  if (!PULL_ACTIONS[forge].has(action)) return { kind: 'ignored', reason: `pull request ${action}` };
  const pr = obj(body.pull_request);
  const number = num(body.number) ?? num(pr.number);
  const head = obj(pr.head);
  const sha = str(head.sha);
  if (number === null || !sha || !SHA.test(sha)) {
    return { kind: 'ignored', reason: 'a pull request without a number or a head commit' };
  }
  const headRepo = obj(head.repo);
  const baseRepo = obj(obj(pr.base).repo);
  const fromFork =
    Object.keys(headRepo).length === 0 ||
    headRepo.fork === true ||
    (str(headRepo.full_name) ?? '') !== (str(baseRepo.full_name) ?? '');
  return {
    kind: 'pull',
    ref: `refs/pull/${number}/head`,
    branch: str(head.ref),
    commit: { sha, author: str(obj(pr.user).login), message: str(pr.title), url: null },
    url: str(pr.html_url),
    pullRequest: number,
    fromFork,
    before: null,
    commits: [],
  };
}

/** A GitLab merge request: its last commit, fetched as refs/merge-requests/<iid>/head. */
function mergeRequest(body: Json): ForgeChange {
  const attrs = obj(body.object_attributes);
  const action = str(attrs.action) ?? '';
  if (!PULL_ACTIONS.GITLAB.has(action)) return { kind: 'ignored', reason: `merge request ${action}` };
  // An update that is not a push (a title, a label, an assignee) has no oldrev: nothing to build.
  if (action === 'update' && !str(attrs.oldrev)) {
    return { kind: 'ignored', reason: 'merge request updated without new commits' };
  }
  const iid = num(attrs.iid);
  const last = obj(attrs.last_commit);
  const sha = str(last.id);
  if (iid === null || !sha || !SHA.test(sha)) {
    return { kind: 'ignored', reason: 'a merge request without an iid or a last commit' };
  }
  const source = num(attrs.source_project_id);
  const target = num(attrs.target_project_id);
  return {
    kind: 'pull',
    ref: `refs/merge-requests/${iid}/head`,
    branch: str(attrs.source_branch),
    commit: commitOf(sha, last),
    url: str(attrs.url),
    pullRequest: iid,
    fromFork: source !== target,
    before: null,
    commits: [],
  };
}

/** Reads a verified delivery. Throws SyntaxError when the body is not JSON. */
export function readChange(forge: HookForge, event: string, body: Buffer): ForgeChange {
  const payload = obj(JSON.parse(body.toString('utf8')));
  if (forge === 'GITLAB') {
    if (event === 'Push Hook' || event === 'Tag Push Hook') return push(payload, 'GitLab');
    if (event === 'Merge Request Hook') return mergeRequest(payload);
    return { kind: 'ignored', reason: `event ${event}` };
  }
  if (event === 'ping') return { kind: 'ping' };
  if (event === 'push') return push(payload, forge === 'GITHUB' ? 'GitHub' : 'Gitea');
  if (event === 'pull_request') return pullRequest(forge, payload);
  return { kind: 'ignored', reason: `event ${event}` };
}

/** `[skip ci]` or `[ci skip]` in a commit message builds nothing. */
export const skipsCi = (message: string | null): boolean => /\[(skip ci|ci skip)\]/i.test(message ?? '');

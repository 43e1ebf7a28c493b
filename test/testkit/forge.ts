/**
 * Stand-ins for forges: a bare git repository made in the test (served as file://), the forges'
 * real webhook payloads pointed at its commits, and deliveries signed as each forge signs them.
 *
 * GitHub's payloads are `@octokit/webhooks-examples` (GitHub's own examples); GitLab's and Gitea's
 * are the examples of their webhook documentation, trimmed to the fields a CI reads. `serveGitHttp`
 * serves the bare repositories over HTTP with `git http-backend`, as a forge does.
 */
import { execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** The package's main file is one JSON array of every event's examples. */
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as {
  name: string;
  examples: Record<string, unknown>[];
}[];

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Ada Lovelace',
  GIT_AUTHOR_EMAIL: 'ada@example.com',
  GIT_COMMITTER_NAME: 'Ada Lovelace',
  GIT_COMMITTER_EMAIL: 'ada@example.com',
};

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

/** A bare repository (`origin.git`, default branch main) and a work tree that pushes to it. */
export interface Remote {
  bare: string;
  url: string;
  /**
   * Writes files, commits them with `message` on `branch` and pushes it (unless `push` is false:
   * several commits can then go in one push); returns the commit's sha.
   */
  commit(files: Record<string, string>, message: string, branch?: string, push?: boolean): Promise<string>;
  /** Points `ref` of the bare repository at `sha` (e.g. refs/pull/7/head, as a forge keeps them). */
  setRef(ref: string, sha: string): Promise<void>;
}

export async function makeRemote(dir: string): Promise<Remote> {
  const bare = path.join(dir, 'origin.git');
  const work = path.join(dir, 'work');
  await mkdir(work, { recursive: true });
  await run('git', ['init', '-q', '--bare', '-b', 'main', bare]);
  await git(work, 'init', '-q', '-b', 'main');
  await git(work, 'remote', 'add', 'origin', bare);
  return {
    bare,
    url: `file://${bare}`,
    async commit(files, message, branch = 'main', push = true) {
      const current = await git(work, 'rev-parse', '--abbrev-ref', 'HEAD').catch(() => 'main');
      if (current !== branch) {
        await git(work, 'checkout', '-q', '-B', branch);
      }
      for (const [file, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(work, file)), { recursive: true });
        await writeFile(path.join(work, file), text);
      }
      await git(work, 'add', '-A');
      await git(work, 'commit', '-q', '-m', message);
      if (push) await git(work, 'push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
      return git(work, 'rev-parse', 'HEAD');
    },
    async setRef(ref, sha) {
      await git(bare, 'update-ref', ref, sha);
    },
  };
}

type Json = Record<string, unknown>;

/** A GitHub example payload by event and index, deep-copied so a test may change it. */
export function githubExample(event: string, index: number): Json {
  const found = examples.find((e) => e.name === event);
  const example = found?.examples[index];
  if (!example) throw new Error(`no GitHub example ${event}[${index}]`);
  return structuredClone(example);
}

/** GitHub's push example (a branch push), made to name `sha` on `ref`. */
export function githubPush(sha: string, ref = 'refs/heads/main', message?: string): Json {
  const body = githubExample('push', 4);
  const head = body.head_commit as Json;
  body.ref = ref;
  body.after = sha;
  head.id = sha;
  if (message !== undefined) head.message = message;
  body.commits = [head];
  return body;
}

/** GitHub's pull_request opened example, made to name `sha` as PR `number`'s head; a fork's when asked. */
export function githubPullRequest(sha: string, number: number, opts: { fork?: boolean } = {}): Json {
  const body = githubExample('pull_request', 0);
  const pr = body.pull_request as Json;
  const head = pr.head as Json;
  body.number = number;
  pr.number = number;
  head.sha = sha;
  if (opts.fork) {
    const repo = structuredClone(head.repo) as Json;
    repo.full_name = 'mallory/Hello-World';
    repo.fork = true;
    head.repo = repo;
  }
  return body;
}

/** GitLab's Push Hook example (its webhook documentation), made to name `sha` on `ref`. */
export function gitlabPush(sha: string, ref = 'refs/heads/main'): Json {
  return {
    object_kind: 'push',
    event_name: 'push',
    before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
    after: sha,
    ref,
    ref_protected: true,
    checkout_sha: sha,
    user_id: 4,
    user_name: 'John Smith',
    user_username: 'jsmith',
    user_email: 'john@example.com',
    project_id: 15,
    project: {
      id: 15,
      name: 'Diaspora',
      web_url: 'http://example.com/mike/diaspora',
      git_ssh_url: 'git@example.com:mike/diaspora.git',
      git_http_url: 'http://example.com/mike/diaspora.git',
      namespace: 'Mike',
      path_with_namespace: 'mike/diaspora',
      default_branch: 'master',
    },
    commits: [
      {
        id: sha,
        message: 'fixed readme',
        title: 'fixed readme',
        timestamp: '2012-01-03T23:36:29+02:00',
        url: `http://example.com/mike/diaspora/commit/${sha}`,
        author: { name: 'GitLab dev user', email: 'gitlabdev@example.com' },
        added: ['CHANGELOG'],
        modified: ['app/controller/application.rb'],
        removed: [],
      },
    ],
    total_commits_count: 1,
  };
}

/** Gitea's push example (its webhook documentation), made to name `sha` on `ref`. */
export function giteaPush(sha: string, ref = 'refs/heads/main'): Json {
  return {
    ref,
    before: '28e1879d029cb852e4844d9c718537df08844e03',
    after: sha,
    compare_url: `http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...${sha}`,
    commits: [
      {
        id: sha,
        message: 'Webhooks Yay!',
        url: `http://localhost:3000/gitea/webhooks/commit/${sha}`,
        author: { name: 'Gitea', email: 'someone@gitea.io', username: 'gitea' },
        committer: { name: 'Gitea', email: 'someone@gitea.io', username: 'gitea' },
        timestamp: '2017-03-13T13:52:11-04:00',
      },
    ],
    repository: {
      id: 140,
      name: 'webhooks',
      full_name: 'gitea/webhooks',
      html_url: 'http://localhost:3000/gitea/webhooks',
    },
    pusher: { id: 1, login: 'gitea', email: 'someone@gitea.io' },
    sender: { id: 1, login: 'gitea', email: 'someone@gitea.io' },
  };
}

export type ForgeName = 'github' | 'gitlab' | 'gitea' | 'forgejo';

/** The headers a forge sends with a delivery of `event`, signed with `secret` as that forge signs. */
export function signedHeaders(
  forge: ForgeName,
  event: string,
  body: string,
  secret: string,
  delivery: string,
): Record<string, string> {
  const hex = createHmac('sha256', secret).update(body).digest('hex');
  const common = { 'content-type': 'application/json' };
  switch (forge) {
    case 'github':
      return {
        ...common,
        'x-github-event': event,
        'x-github-delivery': delivery,
        'x-hub-signature-256': `sha256=${hex}`,
      };
    case 'gitea':
      return { ...common, 'x-gitea-event': event, 'x-gitea-delivery': delivery, 'x-gitea-signature': hex };
    case 'forgejo':
      return {
        ...common,
        'x-forgejo-event': event,
        'x-forgejo-delivery': delivery,
        'x-forgejo-signature': hex,
        'x-gitea-event': event,
        'x-gitea-delivery': delivery,
        'x-gitea-signature': hex,
      };
    case 'gitlab':
      return {
        ...common,
        'x-gitlab-event': event,
        'x-gitlab-event-uuid': delivery,
        'x-gitlab-token': secret,
      };
  }
}

/** Posts `payload` to a webhook URL as `forge` would: signed with `secret`, with a delivery id. */
export function deliverSigned(
  url: string,
  forge: ForgeName,
  event: string,
  payload: unknown,
  secret: string,
  delivery: string = crypto.randomUUID(),
): Promise<Response> {
  const body = JSON.stringify(payload);
  return fetch(url, { method: 'POST', headers: signedHeaders(forge, event, body, secret, delivery), body });
}

/** A git server over HTTP on loopback, as forges serve repositories: `git http-backend` run as CGI. */
export interface GitHttpServer {
  /** The http:// clone URL of a bare repository in the served directory, by its name. */
  url(name: string): string;
  /** Requests served so far (`GET /origin.git/info/refs?service=git-upload-pack`, …). */
  requests: string[];
  close(): Promise<void>;
}

/** Serves every bare repository directly under `root` read-only (upload-pack only) over HTTP. */
export async function serveGitHttp(root: string): Promise<GitHttpServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (
      url.pathname.endsWith('/git-receive-pack') ||
      url.searchParams.get('service') === 'git-receive-pack'
    ) {
      res.writeHead(403).end('read-only\n');
      return;
    }
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_ADDR: '127.0.0.1',
        // Protocol v2, as a forge speaks it when the client asks.
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
        ...(req.headers['content-encoding']
          ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) }
          : {}),
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersSent = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      headersSent = true;
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => {
      if (!headersSent) res.writeHead(502);
      res.end();
    });
    cgi.on('error', () => {
      if (!headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

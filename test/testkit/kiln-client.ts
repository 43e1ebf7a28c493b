/**
 * A real client of one running `kiln serve`: GraphQL over fetch, subscriptions over graphql-ws, the
 * way the console and integrations talk to it. Cross-process and fault suites use it to submit
 * builds, wait for them to end, read their stored log and follow it live.
 *
 *   const kiln = kilnClient(serve.url, token);
 *   const build = await kiln.submit(manifest);
 *   const live = kiln.followLog(build.id);       // chunks as they come, until the stream completes
 *   const final = await kiln.waitForFinal(build.id);
 *   const stored = await kiln.storedLog(build.id);
 */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type BuildStatus, isFinalBuild } from '../../runner/contract/status.ts';

export interface BuildView {
  id: string;
  number: number;
  status: BuildStatus;
  attempt: number;
  tags: string[];
  reason: string | null;
  stages: { name: string; jobs: { name: string; status: string; exitCode: number | null }[] }[];
}
const BUILD_FIELDS = 'id number status attempt tags reason stages { name jobs { name status exitCode } }';

export interface LogChunkView {
  cursor: string;
  attempt: number;
  firstLine: number;
  lines: string[];
}
const CHUNK_FIELDS = 'cursor attempt firstLine lines';

export interface GraphQLResult<T> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
  /** The body when it was not JSON. */
  text?: string;
}

export interface LogFollower {
  /** Every chunk received, in order. */
  readonly chunks: LogChunkView[];
  /** Every line received, in order. */
  lines(): string[];
  /** The cursor of the last chunk received, to resume elsewhere; null before the first. */
  lastCursor(): string | null;
  /** Resolves when the server completes the stream or `until` says so; rejects on a stream error. */
  readonly done: Promise<void>;
  /** Ends the subscription (done resolves). */
  stop(): void;
}

export interface KilnClient {
  readonly url: string;
  readonly token: string;
  /** A POST to /graphql with `body` as is (a string is sent raw), for malformed requests. */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Runs an operation; errors are returned, not thrown. */
  request<T>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
  /** Runs an operation and returns its data; throws on any error. */
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** submitBuild; throws when the manifest is refused. */
  submit(manifest: string): Promise<BuildView>;
  build(id: string): Promise<BuildView>;
  /** Polls until the build is final; rides out failed requests (a server or database away). */
  waitForFinal(id: string, timeoutMs?: number): Promise<BuildView>;
  /** Every stored chunk of the build through Build.log, page by page, oldest first. */
  storedLog(id: string): Promise<LogChunkView[]>;
  /** Subscribes to buildLog from `after` (the start when null). */
  followLog(id: string, opts?: { after?: string | null; until?: (lines: string[]) => boolean }): LogFollower;
  /**
   * Follows the log as a real client does across failures: when the stream errors or its socket
   * closes, subscribes again after `retryMs` from the last cursor received, on `fallbacks` in turn
   * (this client first), until the stream completes. `errors` records each failure.
   */
  followLogResuming(
    id: string,
    opts?: { fallbacks?: KilnClient[]; retryMs?: number; maxRetries?: number },
  ): LogFollower & { readonly errors: string[] };
  /** A graphql-ws client of this server, disposed with the client. */
  ws(): Client;
  dispose(): Promise<void>;
}

export function kilnClient(url: string, token: string): KilnClient {
  const sockets: Client[] = [];
  const endpoint = `${url}/graphql`;

  const client: KilnClient = {
    url,
    token,
    post(body, headers = {}) {
      return fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    },
    async request<T>(query: string, variables: Record<string, unknown> = {}) {
      const res = await client.post({ query, variables });
      const text = await res.text();
      try {
        return { status: res.status, ...(JSON.parse(text) as Omit<GraphQLResult<T>, 'status'>) };
      } catch {
        return { status: res.status, text };
      }
    },
    async gql<T>(query: string, variables: Record<string, unknown> = {}) {
      const result = await client.request<T>(query, variables);
      if (result.errors || !result.data) {
        throw new Error(`GraphQL ${result.status}: ${JSON.stringify(result.errors ?? result.text)}`);
      }
      return result.data;
    },
    async submit(manifest) {
      const data = await client.gql<{
        submitBuild: { __typename: string; build?: BuildView; problems?: unknown };
      }>(
        `mutation ($m: String!) { submitBuild(input: { manifest: $m }) { __typename
          ... on SubmitBuildSuccess { build { ${BUILD_FIELDS} } }
          ... on ManifestError { problems { path line column message } } } }`,
        { m: manifest },
      );
      if (!data.submitBuild.build) throw new Error(`submit refused: ${JSON.stringify(data.submitBuild)}`);
      return data.submitBuild.build;
    },
    async build(id) {
      const data = await client.gql<{ build: BuildView | null }>(
        `query ($id: ID!) { build(id: $id) { ${BUILD_FIELDS} } }`,
        { id },
      );
      if (!data.build) throw new Error(`no build ${id}`);
      return data.build;
    },
    async waitForFinal(id, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last: BuildView | string = 'no answer yet';
      for (;;) {
        try {
          last = await client.build(id);
          if (isFinalBuild(last.status)) return last;
        } catch (error) {
          last = String(error);
        }
        if (Date.now() > deadline) {
          throw new Error(`build ${id} not final after ${timeoutMs} ms: ${JSON.stringify(last)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async storedLog(id) {
      const chunks: LogChunkView[] = [];
      let after: string | null = null;
      for (;;) {
        const data: {
          build: {
            log: {
              edges: { node: LogChunkView }[];
              pageInfo: { hasNextPage: boolean; endCursor: string | null };
            };
          };
        } = await client.gql(
          `query ($id: ID!, $after: String) { build(id: $id) { log(first: 1000, after: $after) {
            edges { node { ${CHUNK_FIELDS} } } pageInfo { hasNextPage endCursor } } } }`,
          { id, after },
        );
        chunks.push(...data.build.log.edges.map((e) => e.node));
        if (!data.build.log.pageInfo.hasNextPage) return chunks;
        after = data.build.log.pageInfo.endCursor;
      }
    },
    followLog(id, opts = {}) {
      const chunks: LogChunkView[] = [];
      const lines: string[] = [];
      let unsubscribe = () => {};
      let finish = () => {};
      const done = new Promise<void>((resolve, reject) => {
        finish = resolve;
        unsubscribe = client.ws().subscribe<{ buildLog: LogChunkView }>(
          {
            query: `subscription ($id: ID!, $after: String) { buildLog(buildId: $id, after: $after) { ${CHUNK_FIELDS} } }`,
            variables: { id, after: opts.after ?? null },
          },
          {
            next: (value) => {
              if (value.errors) {
                reject(new Error(JSON.stringify(value.errors)));
                return;
              }
              const chunk = value.data!.buildLog;
              chunks.push(chunk);
              lines.push(...chunk.lines);
              if (opts.until?.(lines)) {
                unsubscribe();
                resolve();
              }
            },
            error: (error) =>
              reject(error instanceof Error ? error : new Error(`subscription error: ${describe(error)}`)),
            complete: resolve,
          },
        );
      });
      return {
        chunks,
        lines: () => lines,
        lastCursor: () => chunks.at(-1)?.cursor ?? null,
        done,
        stop() {
          unsubscribe();
          finish();
        },
      };
    },
    followLogResuming(id, opts = {}) {
      const servers = [client, ...(opts.fallbacks ?? [])];
      /** Chunks of the subscriptions that ended; the current one's are added as they come. */
      const settled: LogChunkView[] = [];
      const errors: string[] = [];
      let current: LogFollower | null = null;
      let stopped = false;
      const all = () => [...settled, ...(current?.chunks ?? [])];
      const done = (async () => {
        for (let attempt = 0; ; attempt++) {
          const server = servers[attempt % servers.length]!;
          const follower = server.followLog(id, { after: settled.at(-1)?.cursor ?? null });
          current = follower;
          try {
            await follower.done;
            return;
          } catch (error) {
            errors.push(`${server.url}: ${error instanceof Error ? error.message : describe(error)}`);
            if (stopped) return;
            if (attempt >= (opts.maxRetries ?? 60)) throw error;
          } finally {
            settled.push(...follower.chunks);
            current = null;
          }
          await new Promise((r) => setTimeout(r, opts.retryMs ?? 500));
        }
      })();
      return {
        get chunks() {
          return all();
        },
        errors,
        lines: () => all().flatMap((c) => c.lines),
        lastCursor: () => all().at(-1)?.cursor ?? null,
        done,
        stop() {
          stopped = true;
          current?.stop();
        },
      };
    },
    ws() {
      const socket = createClient({
        url: `${url.replace(/^http/, 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        retryAttempts: 0,
        lazy: true,
      });
      sockets.push(socket);
      return socket;
    },
    async dispose() {
      await Promise.all(sockets.splice(0).map((s) => s.dispose()));
    },
  };
  return client;
}

/** A close event, GraphQL errors or an error from graphql-ws, readable in a failure message. */
function describe(error: unknown): string {
  if (Array.isArray(error)) return JSON.stringify(error);
  if (error && typeof error === 'object' && 'code' in error) {
    const e = error as { code: unknown; reason?: unknown };
    return `closed with ${String(e.code)} ${String(e.reason ?? '')}`.trim();
  }
  return String(error);
}

/**
 * How the benchmark talks to a running Kiln: GraphQL over HTTP (fetch, keep-alive) and one
 * graphql-ws connection kept open for the whole run, so no figure pays for a WebSocket handshake.
 */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface KilnClient {
  url: string;
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** submitBuild; resolves with the build id, throws when the manifest is refused. */
  submit(manifest: string): Promise<string>;
  /** Watches `buildLog` from the start; `onChunk` gets each chunk's lines as they arrive. */
  watchLog(buildId: string, onChunk: (lines: string[]) => void): { done: Promise<void>; stop(): void };
  close(): Promise<void>;
}

const SUBMIT = `mutation ($m: String!) { submitBuild(input: { manifest: $m }) {
  __typename ... on SubmitBuildSuccess { build { id } } ... on ManifestError { problems { path message } } } }`;
const BUILD_LOG = 'subscription ($id: ID!) { buildLog(buildId: $id) { lines } }';

export async function connectKiln(url: string, token: string): Promise<KilnClient> {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  let connected!: () => void;
  let failed!: (error: unknown) => void;
  const opened = new Promise<void>((resolve, reject) => {
    connected = resolve;
    failed = reject;
  });
  const ws: Client = createClient({
    url: `${url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: false,
    retryAttempts: 0,
    on: { connected: () => connected() },
    onNonLazyError: (error) => failed(error),
  });
  await opened;

  async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown[] };
    if (body.errors || !body.data) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  return {
    url,
    gql,
    async submit(manifest) {
      const data = await gql<{ submitBuild: { __typename: string; build?: { id: string } } }>(SUBMIT, {
        m: manifest,
      });
      if (!data.submitBuild.build) throw new Error(`submit refused: ${JSON.stringify(data.submitBuild)}`);
      return data.submitBuild.build.id;
    },
    watchLog(buildId, onChunk) {
      let unsubscribe = () => {};
      const done = new Promise<void>((resolve, reject) => {
        unsubscribe = ws.subscribe<{ buildLog: { lines: string[] } }>(
          { query: BUILD_LOG, variables: { id: buildId } },
          {
            next: (value) => {
              if (value.errors) reject(new Error(JSON.stringify(value.errors)));
              else if (value.data) onChunk(value.data.buildLog.lines);
            },
            error: reject,
            complete: resolve,
          },
        );
      });
      return { done, stop: () => unsubscribe() };
    },
    async close() {
      await ws.dispose();
    },
  };
}

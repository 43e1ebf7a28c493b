/**
 * The console's one connection to the API: an urql client (document cache, fetch for queries and
 * mutations, subscriptions over one graphql-ws client) authenticated with the session's token.
 *
 * graphql-ws retries a dropped connection forever (with backoff) and resubscribes every active
 * subscription. `subscribeResumable` rebuilds its variables at each (re)subscription, so a log
 * resumes `after` the last chunk received instead of replaying from where it first started.
 */
import type { TypedDocumentNode } from '@urql/core';
import {
  Client,
  type CombinedError,
  cacheExchange,
  fetchExchange,
  mapExchange,
  stringifyDocument,
  subscriptionExchange,
} from '@urql/core';
import {
  createClient as createWsClient,
  type FormattedExecutionResult,
  type Client as WsClient,
} from 'graphql-ws';
import { type Accessor, createSignal } from 'solid-js';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting';

export interface ResumableSink<Data> {
  next(result: FormattedExecutionResult<Data, unknown>): void;
  error(error: unknown): void;
  complete(): void;
}

export interface KilnClient {
  urql: Client;
  ws: WsClient;
  connection: Accessor<ConnectionState>;
  subscribeResumable<Data, Variables extends Record<string, unknown>>(
    document: TypedDocumentNode<Data, Variables>,
    variables: () => Variables,
    sink: ResumableSink<Data>,
  ): () => void;
  dispose(): void;
}

export interface KilnClientOptions {
  token: () => string | null;
  /** Called when the API refuses the token (UNAUTHENTICATED). */
  onUnauthenticated: () => void;
  /** Default: /graphql on this origin. */
  url?: string;
}

const isUnauthenticated = (error: CombinedError) =>
  error.response?.status === 401 || error.graphQLErrors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');

/** Exponential backoff from 0.5 s up to 8 s, with jitter so a restarted server is not hit at once. */
async function retryWait(retries: number) {
  const ms = Math.min(8_000, 500 * 2 ** retries) + Math.random() * 300;
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export function createKilnClient(opts: KilnClientOptions): KilnClient {
  const httpUrl = new URL(opts.url ?? '/graphql', window.location.href);
  const wsUrl = new URL(httpUrl);
  wsUrl.protocol = httpUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const [connection, setConnection] = createSignal<ConnectionState>('connecting');

  const ws = createWsClient({
    url: wsUrl.toString(),
    lazy: true,
    // Keep the socket a little after the last subscription ends: pages swap subscriptions often.
    lazyCloseTimeout: 3_000,
    keepAlive: 15_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait,
    connectionParams: () => {
      const token = opts.token();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    on: {
      connecting: (isRetry) => setConnection(isRetry ? 'reconnecting' : 'connecting'),
      connected: () => setConnection('connected'),
      closed: () => setConnection((c) => (c === 'connected' ? 'reconnecting' : c)),
    },
  });

  const urql = new Client({
    url: httpUrl.toString(),
    preferGetMethod: false,
    fetchOptions: () => {
      const token = opts.token();
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      // The session cookie's double-submit CSRF check: echo the (readable) kiln_csrf cookie.
      const csrf = /(?:^|;\s*)kiln_csrf=([^;]+)/.exec(document.cookie)?.[1];
      if (csrf) headers['x-kiln-csrf'] = decodeURIComponent(csrf);
      return { headers };
    },
    exchanges: [
      mapExchange({
        onError(error) {
          if (isUnauthenticated(error)) opts.onUnauthenticated();
        },
      }),
      cacheExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const payload = { ...request, query: request.query ?? '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(payload, sink) }) };
        },
      }),
      fetchExchange,
    ],
  });

  return {
    urql,
    ws,
    connection,
    subscribeResumable<Data, Variables extends Record<string, unknown>>(
      document: TypedDocumentNode<Data, Variables>,
      variables: () => Variables,
      sink: ResumableSink<Data>,
    ) {
      const payload = {
        query: stringifyDocument(document),
        // Read again each time graphql-ws (re)sends the subscription.
        get variables() {
          return variables();
        },
      };
      return ws.subscribe<Data>(payload, {
        next: (result) => sink.next(result),
        error: (err) => {
          const errors = Array.isArray(err) ? err : [];
          if (errors.some((e) => e?.extensions?.code === 'UNAUTHENTICATED')) opts.onUnauthenticated();
          sink.error(err);
        },
        complete: () => sink.complete(),
      });
    },
    dispose() {
      void ws.dispose();
    },
  };
}

/**
 * The route table of `serve`'s HTTP endpoints: each endpoint is one `routes.add(methods, pattern,
 * handler)`, and `routes.handle(req, res)` answers every request.
 *
 * - A pattern is a path whose segments are literal (`/healthz`), a parameter (`/artifacts/:id`,
 *   percent-decoded into `params.id`), or, as its last segment only, `*`: any rest of the path,
 *   including none (`/runner/*` takes `/runner` and `/runner/a/b`; `params['*']` is the rest).
 * - A request goes to the first route, in registration order, whose pattern matches its path and whose
 *   methods include its method. A wildcard route only takes paths that no route without a wildcard
 *   names: a named path asked with another method is a 405, not a fallback's page.
 * - Nothing takes it: 405 with `Allow` when some route names the path with other methods, else 404;
 *   both as JSON `{error}`, like the endpoints' own errors.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export interface RouteMatch {
  /** The values of the pattern's `:name` segments, and `*` for a wildcard's rest. */
  params: Record<string, string>;
  url: URL;
}

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  match: RouteMatch,
) => void | Promise<void>;

export interface Routes {
  /** `methods` '*' takes every method. Returns the table, for chained registrations. */
  add(methods: Method | readonly Method[] | '*', pattern: string, handler: RouteHandler): Routes;
  /** Answers the request through its route, or with 404/405. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

interface Route {
  methods: ReadonlySet<string> | '*';
  segments: string[];
  wildcard: boolean;
  handler: RouteHandler;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

/** The 404 of the route table, for routes that reserve a prefix but have nothing at a path under it. */
export function notFound(req: IncomingMessage, res: ServerResponse, match: { url: URL }): void {
  json(res, 404, { error: `${req.method ?? 'GET'} ${match.url.pathname} is not an endpoint` });
}

function compile(pattern: string): { segments: string[]; wildcard: boolean } {
  if (!pattern.startsWith('/')) throw new Error(`a route pattern starts with /: ${pattern}`);
  const segments = pattern.split('/').slice(1);
  const wildcard = segments.at(-1) === '*';
  if (segments.slice(0, -1).includes('*')) throw new Error(`* may only end a route pattern: ${pattern}`);
  return { segments: wildcard ? segments.slice(0, -1) : segments, wildcard };
}

function matchPath(route: Route, parts: string[]): Record<string, string> | null {
  if (route.wildcard ? parts.length < route.segments.length : parts.length !== route.segments.length)
    return null;
  const params: Record<string, string> = {};
  for (const [i, segment] of route.segments.entries()) {
    const part = parts[i]!;
    if (segment.startsWith(':')) {
      if (part === '') return null;
      try {
        params[segment.slice(1)] = decodeURIComponent(part);
      } catch {
        // A malformed escape names nothing here.
        return null;
      }
    } else if (segment !== part) return null;
  }
  if (route.wildcard) params['*'] = parts.slice(route.segments.length).join('/');
  return params;
}

export function createRoutes(): Routes {
  const table: Route[] = [];
  const routes: Routes = {
    add(methods, pattern, handler) {
      table.push({
        methods: methods === '*' ? '*' : new Set(typeof methods === 'string' ? [methods] : methods),
        ...compile(pattern),
        handler,
      });
      return routes;
    },
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const method = req.method ?? 'GET';
      const parts = url.pathname.split('/').slice(1);
      const matched = table.flatMap((route) => {
        const params = matchPath(route, parts);
        return params ? [{ route, params }] : [];
      });
      const named = matched.some((m) => !m.route.wildcard);
      const allowed = new Set<string>();
      for (const { route, params } of matched) {
        if (named && route.wildcard) continue;
        if (route.methods === '*' || route.methods.has(method)) {
          await route.handler(req, res, { params, url });
          return;
        }
        for (const m of route.methods) allowed.add(m);
      }
      if (allowed.size > 0) {
        json(
          res,
          405,
          { error: `${method} ${url.pathname} is not an endpoint` },
          { allow: [...allowed].join(', ') },
        );
        return;
      }
      notFound(req, res, { url });
    },
  };
  return routes;
}

/**
 * The HTTP endpoints of objects and artifacts (GraphQL carries no bytes but uploads):
 *
 * - `GET|HEAD /artifacts/<id>`: an artifact's bytes, for people and scripts. Authorization as on
 *   /graphql (bearer token or the console's session cookie) with the `artifact:read` scope; visible
 *   exactly when its build is. Not visible: 401 without a token, 404 with one (existence is not
 *   revealed). `Range` is supported (files/serve-blob.ts).
 * - `GET|HEAD /objects/<id>`: an object's bytes, for people and scripts, with the `object:read` scope
 *   to those who may see the object (its user, or its namespace's owner and collaborators), and the
 *   same answers otherwise.
 * - The runner endpoints, for a build's runner only (its build token, or a runner token):
 *   `GET|HEAD /runner/builds/<build>/objects/<object>` downloads an object the build draws from (the
 *   submitter's own, or its namespace's), and
 *   `POST /runner/builds/<build>/artifacts?job=<job id>&name=<name>` stores the request body as that
 *   job's artifact `name` (201 with `{id, size, sha256}`; 413 past KILN_ARTIFACT_MAX_BYTES).
 *   Errors are JSON `{error}` with 400, 401, 403 or 404; any other path under /runner/ is a JSON 404
 *   (405 for another method on one of these paths).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { GraphQLError } from 'graphql';
import type { Logger } from 'pino';
import { authorizeRunner } from '../../auth/build-token.ts';
import { hasScope, type Scope } from '../../auth/scopes.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { Context } from '../../context.ts';
import { type Download, serveBlob } from '../../files/serve-blob.ts';
import { notFound, type Routes } from '../../http/routes.ts';
import { BuildSchema } from '../builds/builds.entity.ts';
import type { ObjectService } from '../objects/objects.service.ts';
import { secretAccess } from '../variables/scoped-resource.service.ts';
import type { ArtifactService } from './artifacts.service.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FilesHttpDeps {
  orm: MikroORM;
  secrets: SecretBox;
  artifacts: ArtifactService;
  objects: ObjectService;
  logger: Logger;
  /** Who a request is, as /graphql decides it (throws UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED). */
  contextOf(req: IncomingMessage): Promise<Context>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

/** The status and headers a GraphQL error from authentication calls for. */
function httpOf(error: unknown): { status: number; headers: Record<string, string> } | null {
  const http = (error as GraphQLError)?.extensions?.http as
    | { status?: number; headers?: Record<string, string> }
    | undefined;
  return http?.status ? { status: http.status, headers: http.headers ?? {} } : null;
}

/** Registers these endpoints into `routes`. */
export function addFilesRoutes(routes: Routes, deps: FilesHttpDeps): void {
  /** The request's context when it holds `scope`; otherwise answered here (401, 403…). */
  async function personWith(
    req: IncomingMessage,
    res: ServerResponse,
    scope: Scope,
  ): Promise<Context | null> {
    let ctx: Context;
    try {
      ctx = await deps.contextOf(req);
    } catch (error) {
      const http = httpOf(error);
      if (!http) throw error;
      json(res, http.status, { error: (error as Error).message }, http.headers);
      return null;
    }
    if (!hasScope(ctx.auth.scopes, scope)) {
      json(res, 403, { error: `the token lacks the ${scope} scope` });
      return null;
    }
    return ctx;
  }

  /**
   * A file for people and scripts: its bytes when the request holds `scope` and `find` (given the
   * request's context) returns it; 401 without a token, 404 otherwise, so an id reveals nothing.
   */
  async function downloadFor(
    req: IncomingMessage,
    res: ServerResponse,
    what: 'artifact' | 'object',
    id: string,
    find: (ctx: Context) => Promise<Download | null>,
  ) {
    const ctx = await personWith(req, res, `${what}:read`);
    if (!ctx) return;
    const download = UUID.test(id) ? await find(ctx) : null;
    if (!download) {
      if (ctx.auth.viewer === null) json(res, 401, { error: `sign in to download ${what}s` });
      else json(res, 404, { error: `no ${what} ${id}` });
      return;
    }
    await serveBlob(req, res, deps.artifacts.store, download);
  }

  /** An artifact, to those who may read its build. */
  const downloadArtifact = (req: IncomingMessage, res: ServerResponse, id: string) =>
    downloadFor(req, res, 'artifact', id, async (ctx) => {
      const artifact = await deps.artifacts.find(ctx.em, id);
      const build = artifact
        ? await ctx.em.findOne(BuildSchema, { id: artifact.build.id }, { disableIdentityMap: true })
        : null;
      if (!artifact || !build || !(await ctx.access.canReadBuild(build))) return null;
      const { sha256, size, name } = artifact;
      return { sha256, size, name, contentType: 'application/octet-stream' };
    });

  /** An object, to those who may see it (its user, or its namespace's owner and collaborators). */
  const downloadOwnObject = (req: IncomingMessage, res: ServerResponse, id: string) =>
    downloadFor(req, res, 'object', id, async (ctx) => {
      const object = await deps.objects.find(ctx.em, id);
      if (!object || (await secretAccess(ctx.em, ctx.access, object)) === null) return null;
      const { sha256, size, name, contentType } = object;
      return { sha256, size, name, contentType };
    });

  /** The build `buildId` when the request may use its runner endpoints; otherwise answered here. */
  async function runnerBuild(em: EntityManager, req: IncomingMessage, res: ServerResponse, buildId: string) {
    const allowed = await authorizeRunner(em, deps.secrets, req.headers.authorization, buildId);
    if (!allowed.ok) {
      json(res, allowed.status, {
        error:
          allowed.status === 401 ? 'a build token or a runner token is needed' : 'not a token of this build',
      });
      return null;
    }
    const build = UUID.test(buildId) ? await em.findOne(BuildSchema, { id: buildId }) : null;
    if (!build) json(res, 404, { error: `no build ${buildId}` });
    return build;
  }

  async function downloadObject(
    req: IncomingMessage,
    res: ServerResponse,
    buildId: string,
    objectId: string,
  ) {
    const em = deps.orm.em.fork();
    const build = await runnerBuild(em, req, res, buildId);
    if (!build) return;
    const object = UUID.test(objectId) ? await deps.objects.find(em, objectId) : null;
    const scope = { ownerId: build.owner.id, namespaceId: build.namespace?.id ?? null };
    if (!object || !deps.objects.belongsToBuild(object, scope)) {
      json(res, 404, { error: `no object ${objectId} for this build` });
      return;
    }
    await serveBlob(req, res, deps.artifacts.store, {
      sha256: object.sha256,
      size: object.size,
      name: object.name,
      contentType: object.contentType,
    });
  }

  async function uploadArtifact(req: IncomingMessage, res: ServerResponse, buildId: string, url: URL) {
    const em = deps.orm.em.fork();
    const build = await runnerBuild(em, req, res, buildId);
    if (!build) return;
    const jobId = url.searchParams.get('job') ?? '';
    const name = url.searchParams.get('name') ?? '';
    if (!UUID.test(jobId)) {
      json(res, 400, { error: 'the job query parameter must be a job id' });
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > deps.artifacts.maxBytes) {
      // Not worth reading: answer and close, so the rest of the body is never sent.
      json(
        res,
        413,
        { error: `an artifact is at most ${deps.artifacts.maxBytes} bytes` },
        { connection: 'close' },
      );
      return;
    }
    const result = await deps.artifacts.upload(em, { buildId: build.id, jobId, name, content: req });
    if (!result.ok) {
      json(
        res,
        result.status,
        { error: result.reason },
        result.status === 413 ? { connection: 'close' } : {},
      );
      return;
    }
    const { artifact } = result;
    json(res, 201, { id: artifact.id, size: artifact.size, sha256: artifact.sha256 });
  }

  routes
    .add(['GET', 'HEAD'], '/artifacts/:id', (req, res, { params }) => downloadArtifact(req, res, params.id!))
    .add(['GET', 'HEAD'], '/objects/:id', (req, res, { params }) => downloadOwnObject(req, res, params.id!))
    .add(['GET', 'HEAD'], '/runner/builds/:build/objects/:object', (req, res, { params }) =>
      downloadObject(req, res, params.build!, params.object!),
    )
    .add('POST', '/runner/builds/:build/artifacts', (req, res, { params, url }) =>
      uploadArtifact(req, res, params.build!, url),
    )
    // Runners get JSON for any path of theirs, never the console's page.
    .add('*', '/runner/*', notFound);
}

/**
 * `GET /builds/<id>/raw`: a build's stored log as plain text, streamed a page of chunks at a time
 * (the current attempt's, in order; what is stored by then, for a running build). Credentials as for
 * GraphQL (a bearer token or the console's session cookie); a build the caller may not see is a 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from '../../context.ts';
import { localId } from '../../global-id.ts';
import type { Routes } from '../../http/routes.ts';
import { BuildSchema } from './builds.entity.ts';

const PAGE = 200;

export function addRawLogRoute(routes: Routes, contextOf: (req: IncomingMessage) => Promise<Context>): void {
  routes.add(
    ['GET', 'HEAD'],
    '/builds/:id/raw',
    async (req: IncomingMessage, res: ServerResponse, { params }) => {
      const notFound = (): void => {
        res
          .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
          .end(`no build ${params.id} that you may see\n`);
      };
      let ctx: Context;
      try {
        ctx = await contextOf(req);
      } catch {
        return notFound();
      }
      const id = localId(params.id!, 'Build');
      const build = id ? await ctx.em.findOne(BuildSchema, { id }) : null;
      if (!build || !(await ctx.access.canReadBuild(build))) return notFound();
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      let after = 0;
      for (;;) {
        const chunks = await ctx.em.execute<{ seq: number; content: string }[]>(
          `select seq, content from log_chunks where build_id = ? and attempt = ? and seq > ? order by seq limit ?`,
          [build.id, build.attempt, after, PAGE],
        );
        for (const chunk of chunks) {
          const text = chunk.content.endsWith('\n') ? chunk.content : `${chunk.content}\n`;
          if (!res.write(text)) await new Promise((resolve) => res.once('drain', resolve));
        }
        if (chunks.length < PAGE) break;
        after = chunks.at(-1)!.seq;
      }
      res.end();
    },
  );
}

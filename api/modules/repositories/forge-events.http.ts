/**
 * `POST /hooks/<forge>/<repository id>`: where forges post their webhooks (github, gitlab, gitea,
 * forgejo). Answers: 202 once the delivery is verified and stored (the work comes after the answer,
 * well within a forge's timeout); 200 for a delivery id seen already; 401 for a bad or missing
 * signature (recorded as refused); 404 for an unknown repository or a forge it does not take; 413 past
 * 25 MiB. A stored delivery's answer is JSON `{event}`, the id of its ForgeEvent node; errors are
 * JSON `{error}`.
 */
import type { ServerResponse } from 'node:http';
import { readBody } from '../../http/body.ts';
import type { Routes } from '../../http/routes.ts';
import { type ForgeEventService, MAX_HOOK_BODY_BYTES } from './forge-events.service.ts';

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

export function addHookRoutes(routes: Routes, forgeEvents: ForgeEventService): void {
  routes.add('POST', '/hooks/:forge/:id', async (req, res, { params }) => {
    const tooLarge = () =>
      json(
        res,
        413,
        { error: `a webhook body is at most ${MAX_HOOK_BODY_BYTES} bytes` },
        { connection: 'close' },
      );
    if (Number(req.headers['content-length']) > MAX_HOOK_BODY_BYTES) return tooLarge();
    const body = await readBody(req, MAX_HOOK_BODY_BYTES);
    if (!body.ok) {
      if (body.reason === 'too large') tooLarge();
      else res.destroy();
      return;
    }
    const answer = await forgeEvents.receive(
      params.forge!,
      params.id!,
      req.headers,
      Buffer.concat(body.chunks),
    );
    json(res, answer.status, answer.body);
  });
}

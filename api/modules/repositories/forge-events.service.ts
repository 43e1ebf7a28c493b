/**
 * The events forges post: a delivery is verified against its repository's secret before its body is
 * read, stored whatever becomes of it (refused, duplicate, ignored, built), de-duplicated by delivery
 * id in the database, answered at once and worked on after the answer. Working on one reads what it
 * asks for (forges.ts) and builds its commit through `RepositoryService.buildCommit`.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Logger } from 'pino';
import type { SecretBox } from '../../auth/secret-box.ts';
import {
  deliveryOf,
  type ForgeChange,
  type Headers,
  HOOK_PATHS,
  type HookForge,
  readChange,
  skipsCi,
  storableHeaders,
  verifyDelivery,
} from './forges.ts';
import { recordHead } from './poller.ts';
import { type ForgeEvent, ForgeEventSchema, type Repository } from './repositories.entity.ts';
import type { Outcome, RepositoryService } from './repositories.service.ts';
import { branchFiltered } from './repository-rules.ts';

/** Largest webhook body a forge may post (GitHub caps its payloads at 25 MB). */
export const MAX_HOOK_BODY_BYTES = 25 * 1024 * 1024;
/** What of a refused delivery's body is kept: enough to see what it was, not what an attacker sends. */
const REFUSED_BODY_KEPT = 64 * 1024;

export interface HookAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface ForgeEventServiceDeps {
  orm: MikroORM;
  repositories: RepositoryService;
  secrets: SecretBox;
  logger: Logger;
  /** Checks a polled repository now (the poller's `check`): a forge event says it changed. */
  checkNow?: (repo: Repository) => unknown;
}

export class ForgeEventService {
  constructor(private readonly deps: ForgeEventServiceDeps) {}

  /**
   * A delivery to `/hooks/<forge>/<id>`: verified against the repository's secret before its body
   * is read, stored, answered 202 and worked on after the answer (`work`). A refused one is stored
   * too (401), and a delivery id seen already answers 200 and starts nothing.
   */
  async receive(forgePath: string, id: string, headers: Headers, body: Buffer): Promise<HookAnswer> {
    const forge = (Object.entries(HOOK_PATHS).find(([, p]) => p === forgePath)?.[0] ??
      null) as HookForge | null;
    const em = this.deps.orm.em.fork();
    const repo = forge && /^[0-9a-f-]{36}$/i.test(id) ? await this.deps.repositories.find(em, id) : null;
    const hookForge = repo && (repo.forge === 'GENERIC' ? 'GITHUB' : repo.forge);
    if (!forge || !repo || hookForge !== forge) {
      return { status: 404, body: { error: `no repository ${id} takes ${forgePath} webhooks here` } };
    }
    const { event, deliveryId } = deliveryOf(forge, headers);
    const verified = verifyDelivery(
      forge,
      headers,
      body,
      this.deps.secrets.open(repo.encryptedWebhookSecret),
    );
    const record = {
      repository: repo.id,
      deliveryId,
      event: event.slice(0, 64),
      headers: storableHeaders(headers),
      buildIds: [],
      replayOf: null,
    };
    if (!verified.ok) {
      await this.store(em, {
        ...record,
        verified: false,
        outcome: `refused: ${verified.reason}`,
        body: body.subarray(0, REFUSED_BODY_KEPT).toString('utf8'),
      });
      this.deps.logger.warn(
        { repository: repo.id, event, deliveryId, reason: verified.reason },
        'refused a webhook',
      );
      return { status: 401, body: { error: `refused: ${verified.reason}` } };
    }
    const stored = await this.store(em, {
      ...record,
      verified: true,
      outcome: 'received',
      body: body.toString('utf8'),
    });
    if (!stored.first) {
      await this.store(em, {
        ...record,
        verified: true,
        outcome: 'duplicate delivery',
        body: '',
        duplicate: true,
      });
      return {
        status: 200,
        body: { event: encodeGlobalID('ForgeEvent', stored.id), outcome: 'duplicate delivery' },
      };
    }
    setImmediate(() => this.workLogged(stored.id));
    return { status: 202, body: { event: encodeGlobalID('ForgeEvent', stored.id) } };
  }

  /**
   * Stores an event. A verified original delivery (not a duplicate, not a replay) is unique by its
   * delivery id in its repository: when one is there already, `first` is false and `id` is its id.
   */
  private async store(
    em: EntityManager,
    event: Omit<ForgeEvent, 'id' | 'receivedAt' | 'repository' | 'duplicate'> & {
      repository: string;
      duplicate?: boolean;
    },
  ): Promise<{ first: boolean; id: string }> {
    const id = randomUUID();
    const rows = await em.execute<{ id: string }[]>(
      `insert into forge_events (id, repository_id, delivery_id, event, received_at, verified, outcome, headers, body, build_ids, replay_of, duplicate)
       values (?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?)
       on conflict (repository_id, delivery_id) where verified and replay_of is null and not duplicate do nothing
       returning id`,
      [
        id,
        event.repository,
        event.deliveryId,
        event.event,
        event.verified,
        event.outcome,
        JSON.stringify(event.headers),
        event.body,
        JSON.stringify(event.buildIds),
        event.replayOf,
        event.duplicate ?? false,
      ],
    );
    if (rows.length > 0) return { first: true, id };
    const [original] = await em.execute<{ id: string }[]>(
      `select id from forge_events where repository_id = ? and delivery_id = ? and verified and replay_of is null and not duplicate`,
      [event.repository, event.deliveryId],
    );
    return { first: false, id: original?.id ?? id };
  }

  private workLogged(eventId: string): void {
    this.work(eventId).catch((error: unknown) => {
      // Left `received` (or `working`): `workLeftOver` takes it up again.
      this.deps.logger.error({ err: error, event: eventId }, 'could not work on a forge event yet');
    });
  }

  /**
   * Events stored but never worked on: their replica stopped (or its database went away) between the
   * answer and the work. Events `received` a while ago, or `working` for longer than any work takes
   * (its git commands are killed after a minute each), are worked on now. Returns how many.
   */
  async workLeftOver(): Promise<number> {
    const em = this.deps.orm.em.fork();
    const rows = await em.execute<{ id: string }[]>(
      `update forge_events set outcome = 'received'
       where (outcome = 'received' and received_at < now() - interval '30 seconds')
          or (outcome = 'working' and received_at < now() - interval '15 minutes')
       returning id`,
    );
    for (const { id } of rows) await this.work(id);
    if (rows.length > 0) this.deps.logger.warn({ events: rows.length }, 'worked on forge events left over');
    return rows.length;
  }

  /**
   * Works on a stored, verified event once: reads what it asks for and builds it, then records the
   * outcome in words and the builds it started. Claimed in the database, so that of several replicas
   * (or a retry) one works on it.
   */
  async work(eventId: string): Promise<void> {
    const em = this.deps.orm.em.fork();
    const claimed = await em.execute<{ id: string }[]>(
      `update forge_events set outcome = 'working' where id = ? and outcome = 'received' returning id`,
      [eventId],
    );
    if (claimed.length === 0) return;
    const event = await em.findOneOrFail(ForgeEventSchema, { id: eventId }, { populate: ['repository'] });
    const repo = event.repository.getEntity();
    let outcome: string;
    let buildIds: string[] = [];
    try {
      ({ outcome, buildIds } = await this.act(em, repo, event));
    } catch (error) {
      outcome = `failed: ${error instanceof Error ? error.message : String(error)}`;
      this.deps.logger.error({ err: error, event: eventId }, 'a forge event failed');
    }
    await em.execute(`update forge_events set outcome = ?, build_ids = ? where id = ?`, [
      outcome.slice(0, 4000),
      JSON.stringify(buildIds),
      eventId,
    ]);
    // A polled repository that a forge tells of a change is checked now, not at its next poll; after
    // the event's own head is recorded, so that the check does not build it again.
    if (repo.pollInterval !== null && event.event !== 'ping') this.deps.checkNow?.(repo);
  }

  private async act(
    em: EntityManager,
    repo: Repository,
    event: ForgeEvent,
  ): Promise<{ outcome: string; buildIds: string[] }> {
    const forge: HookForge = repo.forge === 'GENERIC' ? 'GITHUB' : repo.forge;
    let change: ForgeChange;
    try {
      change = readChange(forge, event.event, Buffer.from(event.body, 'utf8'));
    } catch {
      return { outcome: 'ignored: the body is not JSON', buildIds: [] };
    }
    if (change.kind === 'ping') return { outcome: 'ping: the webhook works', buildIds: [] };
    if (change.kind === 'ignored') return { outcome: `ignored: ${change.reason}`, buildIds: [] };
    if (change.kind === 'push') {
      const filtered = branchFiltered(repo, change.ref);
      if (filtered) return { outcome: `ignored: ${filtered}`, buildIds: [] };
      const result = await this.deps.repositories.buildPush(em, repo, {
        ref: change.ref,
        before: change.before,
        head: change.commit,
        listed: change.commits,
        url: change.url,
        eventId: event.id,
      });
      // The head a push built is the head a poll would see: recorded, so the poll does not build it again.
      await recordHead(em, repo.id, change.ref, change.commit.sha);
      return { outcome: result.outcome, buildIds: result.builds.map((b) => b.id) };
    }
    if (skipsCi(change.commit.message)) {
      return { outcome: 'ignored: [skip ci] in the commit message', buildIds: [] };
    }
    const result = await this.deps.repositories.buildCommit(em, repo, {
      kind: 'PULL',
      ref: change.ref,
      commit: change.commit,
      url: change.url,
      pullRequest: change.pullRequest,
      fromFork: change.fromFork,
      eventId: event.id,
    });
    return { outcome: result.outcome, buildIds: result.builds.map((b) => b.id) };
  }

  /** `replayForgeEvent`: the stored, verified event again, as a new record (no de-duplication). */
  async replay(em: EntityManager, event: ForgeEvent): Promise<Outcome<string>> {
    if (!event.verified)
      return { ok: false, path: 'input.id', reason: 'a refused delivery is never replayed' };
    const stored = await this.store(em, {
      repository: event.repository.id,
      deliveryId: event.deliveryId,
      event: event.event,
      headers: event.headers,
      body: event.body,
      verified: true,
      outcome: 'received',
      buildIds: [],
      replayOf: event.id,
    });
    await this.work(stored.id);
    return { ok: true, value: stored.id };
  }
}

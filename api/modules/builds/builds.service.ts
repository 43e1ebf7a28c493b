/**
 * Business rules of builds: submit (validate, number, write, enqueue), kill, and reading builds and
 * their logs. Resolvers authorize and call these; expected outcomes are returned, not thrown.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker } from '../../../runner/contract/broker.ts';
import type { BuildJob, BuildUpdated } from '../../../runner/contract/messages.ts';
import { type BuildStatus, isFinalBuild } from '../../../runner/contract/status.ts';
import { parseManifest } from '../../../runner/manifest/manifest.ts';
import { planBuild } from '../../../runner/manifest/plan.ts';
import type { ManifestProblem } from '../../../runner/manifest/types.ts';
import type { Access } from '../../auth/access.ts';
import { BUILD_TOKEN_MARGIN_MS, issueBuildToken } from '../../auth/build-token.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { OutboxMessage } from '../../broker/outbox.entity.ts';
import { announce } from '../../events/ingester.ts';
import type { Namespace } from '../namespaces/namespaces.entity.ts';
import type { NamespaceService } from '../namespaces/namespaces.service.ts';
import type { ObjectService } from '../objects/objects.service.ts';
import { buildSecrets } from '../variables/snapshot.ts';
import {
  type Build,
  BuildSchema,
  BuildTagSchema,
  type Job,
  JobSchema,
  type Stage,
  StageSchema,
  type TriggerKind,
} from './builds.entity.ts';

const TAG = /^[a-zA-Z0-9_./-]{1,128}$/;
const MAX_TAGS = 32;
const MAX_COMMENT = 4096;

export interface SubmitInput {
  manifest: string;
  /** Namespace path; overrides the manifest's `namespace:`. */
  namespace?: string | null;
  comment?: string | null;
  tags?: string[] | null;
  trigger?: { kind: TriggerKind; data?: Record<string, string> };
}

export type SubmitResult = { ok: true; build: Build } | { ok: false; problems: ManifestProblem[] };

/** A page of a build's log: chunks after a cursor in (attempt, seq) order. */
export interface StoredChunk {
  buildId: string;
  attempt: number;
  seq: number;
  jobId: string;
  firstLine: number;
  lines: string[];
}

export interface LogCursor {
  attempt: number;
  seq: number;
}

export const encodeLogCursor = (c: LogCursor): string =>
  Buffer.from(`log:${c.attempt}:${c.seq}`).toString('base64url');

export function decodeLogCursor(cursor: string | null | undefined): LogCursor | null {
  if (!cursor) return null;
  const m = /^log:(\d+):(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) return null;
  return { attempt: Number(m[1]), seq: Number(m[2]) };
}

export interface BuildServiceDeps {
  broker: Broker;
  drivers: readonly string[];
  logger: Logger;
  secrets: SecretBox;
  namespaces: NamespaceService;
  objects: ObjectService;
  /** The api's base URL as runners reach it (KILN_PUBLIC_URL, else the listen URL), for objects and artifacts. */
  apiUrl: () => string;
  /** KILN_ARTIFACT_MAX_BYTES: runners truncate larger artifacts to it. */
  artifactMaxBytes: number;
}

/**
 * The outbox keeps the job message sealed: it carries the build's variables and keys, and secrets
 * are never stored in the clear.
 */
type SealedPayload = { sealed: string; number?: number };

/** Rows of one submit, written as JSON by one statement (column names). */
interface StageRow {
  id: string;
  build_id: string;
  position: number;
  name: string;
  can_fail: boolean;
}

interface JobRow {
  id: string;
  build_id: string;
  stage_id: string;
  position: number;
  name: string;
  stage_name: string;
  commands: string[];
  artifacts: { src: string; name: string }[];
}

/** Where a top-level key's value starts in manifest text (1-based), for problems found after parsing. */
function positionOfKey(text: string, key: string): { line: number; column: number } | null {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = new RegExp(`^${key}\\s*:\\s*`).exec(lines[i]!);
    if (m) return { line: i + 1, column: m[0].length + 1 };
  }
  return null;
}

export class BuildService {
  constructor(private readonly deps: BuildServiceDeps) {}

  async submit(em: EntityManager, access: Access, input: SubmitInput): Promise<SubmitResult> {
    const owner = access.auth.viewer;
    if (!owner) {
      return {
        ok: false,
        problems: [{ path: '', line: null, column: null, message: 'sign in to submit builds' }],
      };
    }
    const parsed = parseManifest(input.manifest, { drivers: this.deps.drivers });
    const problems: ManifestProblem[] = parsed.ok ? [] : [...parsed.problems];
    const tags = [...new Set(input.tags ?? [])];
    tags.forEach((tag, i) => {
      if (!TAG.test(tag)) {
        problems.push({
          path: `tags[${i}]`,
          line: null,
          column: null,
          message: 'a tag is 1 to 128 letters, digits, or - _ . /',
        });
      }
    });
    if (tags.length > MAX_TAGS) {
      problems.push({ path: 'tags', line: null, column: null, message: `at most ${MAX_TAGS} tags` });
    }
    if ((input.comment?.length ?? 0) > MAX_COMMENT) {
      problems.push({
        path: 'comment',
        line: null,
        column: null,
        message: `at most ${MAX_COMMENT} characters`,
      });
    }
    if (!parsed.ok || problems.length > 0) return { ok: false, problems };
    const manifest = parsed.manifest;
    const plan = planBuild(manifest);
    const namespacePath = input.namespace ?? manifest.namespace;
    let namespace: Namespace | null = null;
    if (namespacePath) {
      const resolved = await this.deps.namespaces.resolveForWrite(em, access, namespacePath, true);
      if (!resolved.ok) {
        const at = input.namespace ? null : positionOfKey(input.manifest, 'namespace');
        return {
          ok: false,
          problems: [
            {
              path: 'namespace',
              line: at?.line ?? null,
              column: at?.column ?? null,
              message: resolved.reason,
            },
          ],
        };
      }
      namespace = resolved.value;
    }

    const buildId = randomUUID();
    const now = new Date();
    const ownerId = owner.id;
    const namespaceId = namespace?.id ?? null;
    const numberScope = namespace ? `namespace:${namespace.id}` : `user:${ownerId}`;
    const secrets = await buildSecrets(em, this.deps.secrets, ownerId, namespaceId);
    const objects = await this.deps.objects.forBuild(
      em,
      ownerId,
      namespaceId,
      manifest.objects.map((o) => o.name),
    );
    const apiUrl = this.deps.apiUrl().replace(/\/+$/, '');
    const token = issueBuildToken(
      this.deps.secrets,
      buildId,
      new Date(now.getTime() + manifest.timeoutMs + BUILD_TOKEN_MARGIN_MS),
    );
    const stages: StageRow[] = [];
    const jobs: JobRow[] = [];
    const job: BuildJob = {
      kind: 'build',
      buildId,
      // Assigned by the statement that writes the build; it travels beside the sealed job.
      number: 0,
      queue: manifest.queue,
      driver: { ...manifest.driver.options, type: manifest.driver.type },
      stages: plan.stages.map((planned, stageIndex) => {
        const stage: StageRow = {
          id: randomUUID(),
          build_id: buildId,
          position: stageIndex,
          name: planned.name,
          can_fail: planned.canFail,
        };
        stages.push(stage);
        return {
          name: planned.name,
          canFail: planned.canFail,
          jobs: planned.jobs.map((pj) => {
            const row: JobRow = {
              id: randomUUID(),
              build_id: buildId,
              stage_id: stage.id,
              position: jobs.length,
              name: pj.name,
              stage_name: planned.name,
              commands: pj.commands,
              artifacts: pj.artifacts,
            };
            jobs.push(row);
            return { id: row.id, name: pj.name, commands: pj.commands, artifacts: pj.artifacts };
          }),
        };
      }),
      variables: [
        ...secrets.variables,
        ...manifest.env.map(({ key, value }) => ({ key, value, masked: false })),
      ],
      keys: secrets.keys,
      timeoutMs: manifest.timeoutMs,
      submittedAt: now.toISOString(),
      objects: {
        apiUrl,
        token,
        items: manifest.objects.map(({ name, dest }) => {
          const found = objects.get(name);
          return {
            name,
            dest,
            url: found ? `${apiUrl}/runner/builds/${buildId}/objects/${found.id}` : null,
          };
        }),
      },
      artifacts: { apiUrl, token, maxBytes: this.deps.artifactMaxBytes },
    };
    const outboxId = randomUUID();
    const sealed = this.deps.secrets.seal(JSON.stringify(job));
    // One statement numbers the build and writes it with its stages, jobs, tags and outbox row: it is
    // atomic on its own, and one round trip instead of a transaction's ten keeps the submit, which
    // every build waits for, short. Rows travel as JSON so any number of jobs fits one statement.
    // created_at is read after the counter's row lock is taken, so a later number is a later build.
    const [row] = await em.execute<Record<string, unknown>[]>(
      `with counter as (
         insert into build_counters (scope, last_number) values (?, 1)
         on conflict (scope) do update set last_number = build_counters.last_number + 1
         returning last_number
       ), build as (
         insert into builds (id, owner_id, namespace_id, number_scope, number, status, manifest, comment,
           queue, driver, timeout_ms, attempt, trigger_kind, trigger_data, pinned, created_at)
         select ?, ?, ?, ?, last_number, 'QUEUED', ?, ?, ?, ?, ?, 0, ?, ?::jsonb, false, clock_timestamp()
         from counter
         returning *
       ), stage_rows as (
         insert into stages (id, build_id, position, name, can_fail)
         select * from jsonb_to_recordset(?::jsonb)
           as s(id uuid, build_id uuid, position int, name varchar, can_fail boolean)
       ), job_rows as (
         insert into jobs (id, build_id, stage_id, position, name, stage_name, status, attempt, commands, artifacts)
         select id, build_id, stage_id, position, name, stage_name, 'QUEUED', 0, commands, artifacts
         from jsonb_to_recordset(?::jsonb) as j(id uuid, build_id uuid, stage_id uuid, position int,
           name varchar, stage_name varchar, commands jsonb, artifacts jsonb)
       ), tag_rows as (
         insert into build_tags (build_id, name) select ?, jsonb_array_elements_text(?::jsonb)
       ), outbox_row as (
         insert into outbox (id, kind, payload, created_at)
         select ?, 'build', jsonb_build_object('sealed', ?::text, 'number', number), ? from build
       )
       select * from build`,
      [
        numberScope,
        buildId,
        ownerId,
        namespaceId,
        numberScope,
        input.manifest,
        input.comment ?? null,
        manifest.queue,
        manifest.driver.type,
        manifest.timeoutMs,
        input.trigger?.kind ?? 'MANUAL',
        JSON.stringify(input.trigger?.data ?? {}),
        JSON.stringify(stages),
        JSON.stringify(jobs),
        buildId,
        JSON.stringify(tags),
        outboxId,
        sealed,
        now,
      ],
    );
    const build = em.map(BuildSchema, row!);
    const message: OutboxMessage = {
      id: outboxId,
      kind: 'build',
      payload: { sealed, number: build.number } satisfies SealedPayload,
      createdAt: now,
      publishedAt: null,
    };
    // Lists of builds (buildsUpdated) learn of it the way they learn of every change. Its state is
    // known without a query, and announced before the job goes out, so no runner's news of it can
    // overtake this one.
    const queued: BuildUpdated = {
      type: 'build.updated',
      buildId,
      status: 'QUEUED',
      attempt: 0,
      reason: null,
      startedAt: null,
      finishedAt: null,
      jobs: jobs.map((j) => ({
        jobId: j.id,
        status: 'QUEUED',
        exitCode: null,
        startedAt: null,
        finishedAt: null,
      })),
      at: now.toISOString(),
    };
    const warn = (err: unknown) =>
      this.deps.logger.warn({ err, buildId }, 'bookkeeping after a submit failed');
    this.deps.broker.publish('event', [queued]).catch(warn);
    // The reply need not wait for the broker: the build is committed, and the outbox sweeper
    // publishes it should this publish fail.
    const bookkeeping = em.fork();
    void (async () => {
      // The job as sealed, with its number: no need to open what was sealed a moment ago.
      if (await this.publishJob(message, { ...job, number: build.number }))
        await this.markPublished(bookkeeping, outboxId);
    })().catch(warn);
    return { ok: true, build };
  }

  /**
   * Publishes an outbox row and marks it published. A failure is logged and left to the sweeper:
   * the build is committed either way.
   */
  async publishOutbox(em: EntityManager, message: OutboxMessage): Promise<boolean> {
    if (!(await this.publishJob(message))) return false;
    await this.markPublished(em, message.id);
    return true;
  }

  /**
   * Publishes an outbox row's job (confirmed by the broker), `known` when the caller has it at hand;
   * false, logged, when it could not.
   */
  private async publishJob(message: OutboxMessage, known?: BuildJob): Promise<boolean> {
    try {
      let job = known;
      if (!job) {
        const payload = message.payload as SealedPayload;
        job = JSON.parse(this.deps.secrets.open(payload.sealed)) as BuildJob;
        if (payload.number !== undefined) job.number = payload.number;
      }
      await this.deps.broker.publish('build', [job]);
      return true;
    } catch (err) {
      this.deps.logger.warn(
        { err, outbox: message.id },
        'publishing a build job failed; the sweeper will retry',
      );
      return false;
    }
  }

  private async markPublished(em: EntityManager, id: string): Promise<void> {
    await em.execute('update outbox set published_at = now() where id = ? and published_at is null', [id]);
  }

  /**
   * Kills a build: a queued one here and now, a running one through its runner. Killing a finished
   * build changes nothing. Returns null when there is no such build.
   */
  async kill(em: EntityManager, buildId: string): Promise<Build | null> {
    const build = await em.findOne(BuildSchema, { id: buildId });
    if (!build) return null;
    if (isFinalBuild(build.status)) return build;
    const conn = em;
    const killedQueued = await conn.execute<{ id: string }[]>(
      `update builds set status = 'KILLED', finished_at = now(), last_seq = 0, reason = 'killed before a runner took it'
       where id = ? and status = 'QUEUED' and attempt = 0 returning id`,
      [buildId],
    );
    if (killedQueued.length > 0) {
      await conn.execute(
        `update jobs set status = 'KILLED', finished_at = now() where build_id = ? and status = 'QUEUED'`,
        [buildId],
      );
      await announce(this.deps.broker, em, [buildId]);
    }
    // Also when it was queued: a runner may have taken it a moment ago. The ingester kills any build
    // that starts after it was killed, so this is only the fast path.
    await this.deps.broker.publish('control', [{ type: 'kill', buildId }]);
    await em.refresh(build);
    return build;
  }

  /** Pins or unpins a build; null when there is no such build. */
  async pin(em: EntityManager, buildId: string, pinned: boolean): Promise<Build | null> {
    await em.execute('update builds set pinned = ? where id = ?', [pinned, buildId]);
    return em.findOne(BuildSchema, { id: buildId }, { disableIdentityMap: true });
  }

  /** Builds `access` may read, newest first, after a cursor, optionally by status, tag or namespace. */
  async list(
    em: EntityManager,
    access: Access,
    opts: {
      limit: number;
      after: { createdAt: Date; id: string } | null;
      status?: BuildStatus | null;
      tag?: string | null;
      namespaceId?: string | null;
    },
  ): Promise<Build[]> {
    const visible = access.visibleBuildsSql('b');
    const where = [visible.sql];
    const params = [...visible.params];
    if (opts.status) {
      where.push('b.status = ?');
      params.push(opts.status);
    }
    if (opts.tag) {
      where.push('exists (select 1 from build_tags t where t.build_id = b.id and t.name = ?)');
      params.push(opts.tag);
    }
    if (opts.namespaceId) {
      where.push('b.namespace_id = ?');
      params.push(opts.namespaceId);
    }
    if (opts.after) {
      where.push('(b.created_at, b.id) < (?, ?)');
      params.push(opts.after.createdAt, opts.after.id);
    }
    params.push(opts.limit);
    const rows = await em.execute<{ id: string }[]>(
      `select b.id from builds b where ${where.join(' and ')} order by b.created_at desc, b.id desc limit ?`,
      params,
    );
    if (rows.length === 0) return [];
    const builds = await em.find(
      BuildSchema,
      { id: { $in: rows.map((r) => r.id) } },
      { disableIdentityMap: true },
    );
    const byId = new Map(builds.map((b) => [b.id, b]));
    return rows.map((r) => byId.get(r.id)!).filter(Boolean);
  }

  async logAfter(
    em: EntityManager,
    buildId: string,
    after: LogCursor | null,
    limit: number,
  ): Promise<StoredChunk[]> {
    const rows = await em.execute<
      { attempt: number; seq: number; job_id: string; first_line: number; content: string }[]
    >(
      `select attempt, seq, job_id, first_line, content from log_chunks
       where build_id = ? and (attempt, seq) > (?, ?) order by attempt, seq limit ?`,
      [buildId, after?.attempt ?? 0, after?.seq ?? 0, limit],
    );
    return rows.map((r) => ({
      buildId,
      attempt: r.attempt,
      seq: r.seq,
      jobId: r.job_id,
      firstLine: r.first_line,
      lines: r.content.split('\n'),
    }));
  }

  /**
   * `logAfter`, and the build's status, attempt and last chunk as they are just after that read:
   * two statements in one round trip (every log subscription starts and ends with this).
   */
  async logAfterWithState(
    em: EntityManager,
    buildId: string,
    after: LogCursor | null,
    limit: number,
  ): Promise<{
    chunks: StoredChunk[];
    build: { status: BuildStatus; attempt: number; lastSeq: number | null } | null;
  }> {
    const format = (sql: string, params: unknown[]) => em.getPlatform().formatQuery(sql, params);
    const results = (await em.getKnex().raw(
      [
        format(
          `select attempt, seq, job_id, first_line, content from log_chunks
           where build_id = ? and (attempt, seq) > (?, ?) order by attempt, seq limit ?`,
          [buildId, after?.attempt ?? 0, after?.seq ?? 0, limit],
        ),
        format('select status, attempt, last_seq from builds where id = ?', [buildId]),
      ].join(';\n'),
    )) as unknown as { rows: Record<string, unknown>[] }[];
    const chunks = (
      results[0]!.rows as {
        attempt: number;
        seq: number;
        job_id: string;
        first_line: number;
        content: string;
      }[]
    ).map((r) => ({
      buildId,
      attempt: r.attempt,
      seq: r.seq,
      jobId: r.job_id,
      firstLine: r.first_line,
      lines: r.content.split('\n'),
    }));
    const [row] = results[1]!.rows as { status: BuildStatus; attempt: number; last_seq: number | null }[];
    return {
      chunks,
      build: row ? { status: row.status, attempt: row.attempt, lastSeq: row.last_seq } : null,
    };
  }

  stagesOf(em: EntityManager, buildIds: readonly string[]): Promise<Stage[]> {
    return em.find(
      StageSchema,
      { build: { $in: [...buildIds] } },
      { orderBy: { position: 'asc' }, disableIdentityMap: true },
    );
  }

  jobsOfStages(em: EntityManager, stageIds: readonly string[]): Promise<Job[]> {
    return em.find(
      JobSchema,
      { stage: { $in: [...stageIds] } },
      { orderBy: { position: 'asc' }, disableIdentityMap: true },
    );
  }

  async tagsOf(em: EntityManager, buildIds: readonly string[]): Promise<Map<string, string[]>> {
    const rows = await em.find(
      BuildTagSchema,
      { build: { $in: [...buildIds] } },
      { orderBy: { name: 'asc' } },
    );
    const byBuild = new Map<string, string[]>();
    for (const row of rows) {
      const list = byBuild.get(row.build.id) ?? [];
      list.push(row.name);
      byBuild.set(row.build.id, list);
    }
    return byBuild;
  }
}

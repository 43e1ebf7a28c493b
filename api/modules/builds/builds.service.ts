/**
 * Business rules of builds: submit (validate → compose → persist → publish), kill, and reading
 * builds. Resolvers authorize and call these; expected outcomes are returned, not thrown. A little
 * over 500 lines: the submit's one statement (its SQL) is most of it, and reads better whole.
 *
 * A person's submit (`submitAs`) checks the namespace against the viewer's rights; every other
 * cause (a forge event, a schedule) validates and calls `submit` with an owner and namespace it has
 * authorized already, so all builds are made by one path.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Broker } from '../../../runner/contract/broker.ts';
import type { BuildJob } from '../../../runner/contract/messages.ts';
import { type BuildStatus, isFinalBuild } from '../../../runner/contract/status.ts';
import { toBuildJob } from '../../../runner/manifest/build-job.ts';
import { parseManifest } from '../../../runner/manifest/manifest.ts';
import { type Checkout, type PlannedBuild, planBuild } from '../../../runner/manifest/plan.ts';
import type { Manifest, ManifestProblem } from '../../../runner/manifest/types.ts';
import type { Access } from '../../auth/access.ts';
import { BUILD_TOKEN_MARGIN_MS, issueBuildToken } from '../../auth/build-token.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import type { OutboxMessage } from '../../broker/outbox.entity.ts';
import type { NamespaceService } from '../namespaces/namespaces.service.ts';
import type { ObjectService } from '../objects/objects.service.ts';
import { buildSecrets } from '../variables/snapshot.ts';
import type { BuildState } from './build-state.ts';
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

/** What a person or integration submits. */
export interface SubmitInput {
  manifest: string;
  /** Namespace path; overrides the manifest's `namespace:`. */
  namespace?: string | null;
  comment?: string | null;
  tags?: string[] | null;
}

/** Why a build exists: who or what asked for it, with what the cause knows (a commit, a schedule). */
export interface Cause {
  kind: TriggerKind;
  data?: Record<string, string>;
}

/** A submit that passed validation: the manifest parsed and planned, tags and comment checked. */
export interface Submission {
  text: string;
  manifest: Manifest;
  plan: PlannedBuild;
  comment: string | null;
  tags: string[];
}

export type Validated = { ok: true; submission: Submission } | { ok: false; problems: ManifestProblem[] };

export type SubmitResult = { ok: true; build: Build } | { ok: false; problems: ManifestProblem[] };

export interface BuildServiceDeps {
  broker: Broker;
  state: BuildState;
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

/** A build made ready to write: its message (with row ids) and the rows that go with it. */
interface Composed {
  buildId: string;
  job: BuildJob;
  stages: StageRow[];
  jobs: JobRow[];
  sealed: string;
  outboxId: string;
  at: Date;
}

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

const problem = (path: string, message: string): ManifestProblem => ({
  path,
  line: null,
  column: null,
  message,
});

/** What makes a build, whoever asked for it: a person, an integration, a forge event or a schedule. */
export interface SubmitRequest {
  /** The user the build belongs to (already authorized by the caller). */
  owner: { id: string };
  /** The namespace it is submitted into, if any (already authorized by the caller). */
  namespace: { id: string } | null;
  cause: Cause;
  submission: Submission;
  /**
   * Code nobody with access to the namespace wrote (a fork's pull request): the build gets no masked
   * variable, no SSH key and no object.
   */
  untrusted?: boolean;
  /** The repository's SSH key, placed for the checkout job alone (also in an untrusted build). */
  checkoutKey?: BuildJob['checkoutKey'];
}

export class BuildService {
  constructor(private readonly deps: BuildServiceDeps) {}

  /** A person's or integration's submit: the viewer owns the build, in a namespace they may write. */
  async submitAs(em: EntityManager, access: Access, input: SubmitInput): Promise<SubmitResult> {
    const owner = access.auth.viewer;
    if (!owner) return { ok: false, problems: [problem('', 'sign in to submit builds')] };
    const validated = this.validate(input);
    if (!validated.ok) return validated;
    const { submission } = validated;
    const namespacePath = input.namespace ?? submission.manifest.namespace;
    let namespace: { id: string } | null = null;
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
    const build = await this.submit(em, { owner, namespace, cause: { kind: 'MANUAL' }, submission });
    return { ok: true, build };
  }

  /** Every problem of a submit at once: the manifest's (with line and column), then tags and comment. */
  validate(
    input: Pick<SubmitInput, 'manifest' | 'comment' | 'tags'>,
    opts: { checkout?: Checkout } = {},
  ): Validated {
    const parsed = parseManifest(input.manifest, {
      drivers: this.deps.drivers,
      checkout: opts.checkout !== undefined,
    });
    const problems: ManifestProblem[] = parsed.ok ? [] : [...parsed.problems];
    const tags = [...new Set(input.tags ?? [])];
    tags.forEach((tag, i) => {
      if (!TAG.test(tag))
        problems.push(problem(`tags[${i}]`, 'a tag is 1 to 128 letters, digits, or - _ . /'));
    });
    if (tags.length > MAX_TAGS) problems.push(problem('tags', `at most ${MAX_TAGS} tags`));
    if ((input.comment?.length ?? 0) > MAX_COMMENT) {
      problems.push(problem('comment', `at most ${MAX_COMMENT} characters`));
    }
    if (!parsed.ok || problems.length > 0) return { ok: false, problems };
    const manifest = parsed.manifest;
    return {
      ok: true,
      submission: {
        text: input.manifest,
        manifest,
        plan: planBuild(manifest, { checkout: opts.checkout }),
        comment: input.comment ?? null,
        tags,
      },
    };
  }

  /**
   * Makes a build of a validated submission for `owner` in `namespace` (both already authorized by
   * the caller) and sends it to the runners: compose, persist, publish.
   */
  async submit(em: EntityManager, request: SubmitRequest): Promise<Build> {
    const { build, publish } = await this.prepare(em, request);
    publish(em);
    return build;
  }

  /**
   * Writes the build (compose, persist) without sending it: for a caller that writes it inside a
   * transaction of its own and must publish only after that commits (a schedule's firing). Should
   * the caller die before `publish`, the build's outbox row, committed with it, is published by the
   * sweeper. `publish` takes an entity manager outside the transaction.
   */
  async prepare(
    em: EntityManager,
    request: SubmitRequest,
  ): Promise<{ build: Build; publish: (outside: EntityManager) => void }> {
    const composed = await this.compose(em, request);
    const build = await this.persist(em, request, composed);
    return { build, publish: (outside) => this.publish(outside, composed, build) };
  }

  /** The job message and the rows of a new build, its secrets sealed for the outbox. */
  private async compose(em: EntityManager, request: SubmitRequest): Promise<Composed> {
    const { manifest, plan } = request.submission;
    const ownerId = request.owner.id;
    const namespaceId = request.namespace?.id ?? null;
    const buildId = randomUUID();
    const at = new Date();
    const secrets = await buildSecrets(em, this.deps.secrets, ownerId, namespaceId);
    if (request.untrusted) {
      secrets.variables = secrets.variables.filter((v) => !v.masked);
      secrets.keys = [];
    }
    const objects = await this.deps.objects.forBuild(
      em,
      ownerId,
      namespaceId,
      request.untrusted ? [] : manifest.objects.map((o) => o.name),
    );
    const apiUrl = this.deps.apiUrl().replace(/\/+$/, '');
    const token = issueBuildToken(
      this.deps.secrets,
      buildId,
      new Date(at.getTime() + manifest.timeoutMs + BUILD_TOKEN_MARGIN_MS),
    );
    const job = toBuildJob(manifest, plan, {
      buildId,
      // Assigned by the statement that writes the build; it travels beside the sealed job.
      number: 0,
      jobId: () => randomUUID(),
      variables: secrets.variables,
      keys: secrets.keys,
      ...(request.checkoutKey ? { checkoutKey: request.checkoutKey } : {}),
      submittedAt: at,
      objects: {
        apiUrl,
        token,
        items: manifest.objects.map(({ name, dest }) => {
          const found = objects.get(name);
          return { name, dest, url: found ? `${apiUrl}/runner/builds/${buildId}/objects/${found.id}` : null };
        }),
      },
      artifacts: { apiUrl, token, maxBytes: this.deps.artifactMaxBytes },
    });
    const stages: StageRow[] = [];
    const jobs: JobRow[] = [];
    job.stages.forEach((stage, position) => {
      const stageId = randomUUID();
      stages.push({ id: stageId, build_id: buildId, position, name: stage.name, can_fail: stage.canFail });
      for (const planned of stage.jobs) {
        jobs.push({
          id: planned.id,
          build_id: buildId,
          stage_id: stageId,
          position: jobs.length,
          name: planned.name,
          stage_name: stage.name,
          commands: planned.commands,
          artifacts: planned.artifacts,
        });
      }
    });
    return {
      buildId,
      job,
      stages,
      jobs,
      sealed: this.deps.secrets.seal(JSON.stringify(job)),
      outboxId: randomUUID(),
      at,
    };
  }

  /**
   * One statement numbers the build and writes it with its stages, jobs, tags and outbox row: it is
   * atomic on its own, and one round trip instead of a transaction's ten keeps the submit, which
   * every build waits for, short. Rows travel as JSON so any number of jobs fits one statement.
   * created_at is read after the counter's row lock is taken, so a later number is a later build.
   */
  private async persist(em: EntityManager, request: SubmitRequest, composed: Composed): Promise<Build> {
    const { owner, namespace, cause, submission } = request;
    const numberScope = namespace ? `namespace:${namespace.id}` : `user:${owner.id}`;
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
        composed.buildId,
        owner.id,
        namespace?.id ?? null,
        numberScope,
        submission.text,
        submission.comment,
        submission.manifest.queue,
        submission.manifest.driver.type,
        submission.manifest.timeoutMs,
        cause.kind,
        JSON.stringify(cause.data ?? {}),
        JSON.stringify(composed.stages),
        JSON.stringify(composed.jobs),
        composed.buildId,
        JSON.stringify(submission.tags),
        composed.outboxId,
        composed.sealed,
        composed.at,
      ],
    );
    return em.map(BuildSchema, row!);
  }

  /**
   * Announces the new build, then publishes its job. The caller need not wait for the broker: the
   * build is committed, and the outbox sweeper publishes it should this publish fail.
   */
  private publish(em: EntityManager, composed: Composed, build: Build): void {
    this.deps.state.submitted(
      composed.buildId,
      composed.jobs.map((j) => j.id),
      composed.at,
    );
    const message: OutboxMessage = {
      id: composed.outboxId,
      kind: 'build',
      payload: { sealed: composed.sealed, number: build.number } satisfies SealedPayload,
      createdAt: composed.at,
      publishedAt: null,
    };
    const bookkeeping = em.fork();
    void (async () => {
      // The job as sealed, with its number: no need to open what was sealed a moment ago.
      if (await this.publishJob(message, { ...composed.job, number: build.number }))
        await this.markPublished(bookkeeping, composed.outboxId);
    })().catch((err: unknown) =>
      this.deps.logger.warn(
        { err, buildId: composed.buildId },
        'publishing a new build failed; the sweeper will',
      ),
    );
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
   * Kills a build: a queued one here and now, a running one through its runner; `by` (a username)
   * is named in its reason. Killing a finished build changes nothing. Returns null when there is no
   * such build.
   */
  async kill(em: EntityManager, buildId: string, by: string | null): Promise<Build | null> {
    const build = await em.findOne(BuildSchema, { id: buildId });
    if (!build) return null;
    if (isFinalBuild(build.status)) return build;
    await this.deps.state.killed(em, buildId, by);
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
      /** Only builds of this repository (their cause names it). */
      repositoryId?: string | null;
      /** Only builds a schedule fired. */
      scheduleId?: string | null;
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
    if (opts.repositoryId) {
      where.push(`(b.trigger_data->>'repositoryId') = ?`);
      params.push(opts.repositoryId);
    }
    if (opts.scheduleId) {
      where.push(`(b.trigger_data->>'scheduleId') = ?`);
      params.push(opts.scheduleId);
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

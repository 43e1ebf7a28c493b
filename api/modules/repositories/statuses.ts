/**
 * Commit statuses back to the forge: a build of a repository's commit is reported on its commit as
 * queued, running and final, with a link to the build in the console, under the context
 * `kiln/<manifest name>` (the manifest's file name without `.yml`).
 *
 * - GitHub `POST {api}/repos/{owner}/{repo}/statuses/{sha}` and Gitea/Forgejo the same path, with
 *   `state` pending (queued, running), success (passed, passed with failures), failure (failed) or
 *   error (killed, timed out). GitLab `POST {api}/projects/{id}/statuses/{sha}` with pending,
 *   running, success, failed or canceled.
 * - A reconciler, not a hook on every transition: a leader-only job looks every few seconds for
 *   builds of the last day whose status differs from the one last reported, and reports the status
 *   they have now (a build that went from queued to passed between two looks is reported passed).
 *   A report that fails is tried again with backoff (5 s doubling to 5 minutes); what became of the
 *   last one is `Build.forgeStatus`, in words.
 * - Only repositories with a forge token (and a forge other than GENERIC) are reported to.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { BuildStatus } from '../../../runner/contract/status.ts';
import type { SecretBox } from '../../auth/secret-box.ts';
import { type ApiForge, forgeRequest } from './forge-api.ts';
import type { Forge } from './repositories.entity.ts';

export interface StatusReporterDeps {
  orm: MikroORM;
  secrets: SecretBox;
  logger: Logger;
  /** The console's base URL (KILN_PUBLIC_URL, else the listen URL), for the status's link. */
  publicUrl: () => string;
  fetch?: typeof fetch;
  /** How long one report may take. */
  timeoutMs?: number;
}

/** The forge's state for a build status. */
export function forgeState(forge: ApiForge, status: BuildStatus): string {
  if (forge === 'GITLAB') {
    switch (status) {
      case 'QUEUED':
        return 'pending';
      case 'RUNNING':
        return 'running';
      case 'PASSED':
      case 'PASSED_WITH_FAILURES':
        return 'success';
      case 'FAILED':
        return 'failed';
      default:
        return 'canceled';
    }
  }
  switch (status) {
    case 'QUEUED':
    case 'RUNNING':
      return 'pending';
    case 'PASSED':
    case 'PASSED_WITH_FAILURES':
      return 'success';
    case 'FAILED':
      return 'failure';
    default:
      return 'error';
  }
}

const DESCRIPTIONS: Record<string, string> = {
  QUEUED: 'queued',
  RUNNING: 'running',
  PASSED: 'passed',
  PASSED_WITH_FAILURES: 'passed with failures',
  FAILED: 'failed',
  KILLED: 'killed',
  TIMED_OUT: 'timed out',
};

interface DueRow {
  id: string;
  number: number;
  status: BuildStatus;
  sha: string;
  manifest_path: string | null;
  attempts: number;
  forge: Forge;
  forge_api_url: string | null;
  forge_repository: string | null;
  encrypted_forge_token: string | null;
}

const FIRST_RETRY_MS = 5_000;
const LAST_RETRY_MS = 5 * 60_000;

export class StatusReporter {
  constructor(private readonly deps: StatusReporterDeps) {}

  /** The builds whose status the forge has not been told yet. */
  private due(em: EntityManager): Promise<DueRow[]> {
    return em.execute<DueRow[]>(
      `select b.id, b.number, b.status, b.trigger_data->>'sha' as sha, b.trigger_data->>'manifestPath' as manifest_path,
         b.forge_report_attempts as attempts, r.forge, r.forge_api_url, r.forge_repository, r.encrypted_forge_token
       from builds b join repositories r on r.id::text = b.trigger_data->>'repositoryId'
       where b.created_at > now() - interval '1 day'
         and (b.trigger_data->>'repositoryId') is not null
         and b.forge_reported is distinct from b.status
         and (b.forge_report_next_at is null or b.forge_report_next_at <= now())
         and r.encrypted_forge_token is not null and r.forge <> 'GENERIC'
         and r.forge_api_url is not null and r.forge_repository is not null
       order by b.created_at
       limit 100`,
    );
  }

  /** Reports every build that is due; returns how many reports went well. */
  async reportDue(): Promise<number> {
    const em = this.deps.orm.em.fork();
    let reported = 0;
    for (const row of await this.due(em)) {
      if (await this.report(em, row)) reported++;
    }
    return reported;
  }

  private async report(em: EntityManager, row: DueRow): Promise<boolean> {
    const forge = row.forge as ApiForge;
    const state = forgeState(forge, row.status);
    const name = (row.manifest_path ?? 'build')
      .split('/')
      .at(-1)!
      .replace(/\.ya?ml$/, '');
    const context = `kiln/${name.replace(/^\./, '') || 'build'}`;
    const base = this.deps.publicUrl().replace(/\/+$/, '');
    const targetUrl = `${base}/builds/${row.id}`;
    const description = `Build #${row.number} ${DESCRIPTIONS[row.status] ?? row.status.toLowerCase()}`;
    const target = {
      forge,
      apiUrl: row.forge_api_url!,
      repository: row.forge_repository!,
      token: this.deps.secrets.open(row.encrypted_forge_token!),
    };
    const body =
      forge === 'GITLAB'
        ? { state, name: context, target_url: targetUrl, description }
        : { state, context, target_url: targetUrl, description };
    const sent = await forgeRequest(target, 'POST', `/statuses/${row.sha}`, body, {
      fetch: this.deps.fetch,
      timeoutMs: this.deps.timeoutMs,
    });
    const failure = sent.ok ? null : sent.failure;
    if (failure === null) {
      await em.execute(
        `update builds set forge_reported = ?, forge_report = ?, forge_report_attempts = 0, forge_report_next_at = null
         where id = ?`,
        [row.status, `reported ${state} to ${forge.toLowerCase()} as ${context}`, row.id],
      );
      return true;
    }
    const attempts = row.attempts + 1;
    const delay = Math.min(FIRST_RETRY_MS * 2 ** (attempts - 1), LAST_RETRY_MS);
    await em.execute(
      `update builds set forge_report = ?, forge_report_attempts = ?,
         forge_report_next_at = now() + ? * interval '1 millisecond'
       where id = ?`,
      [
        `reporting ${state} failed (${failure}); try ${attempts + 1} in ${Math.round(delay / 1000)} s`,
        attempts,
        delay,
        row.id,
      ],
    );
    this.deps.logger.warn({ build: row.id, forge, failure, attempts }, 'reporting a commit status failed');
    return false;
  }
}

/**
 * Polling (GoCD's material update): repositories with a poll interval are asked for their heads with
 * `git ls-remote`, and a head that moved builds its new commit (only the head: several commits pushed
 * at once build once). The first poll of a repository only records its heads, so connecting one with
 * a hundred branches starts nothing. A forge event records the head it built, so the poll that
 * follows does not build it again.
 *
 * - Leader-only (one serve of those sharing the database polls), every second a look for the
 *   repositories that are due: `poll_interval` seconds after the end of their last check (an idle
 *   interval between checks, however long a check took).
 * - Never two checks of one repository at once; at most `concurrency` checks at a time.
 * - A check that fails, or hangs past `timeoutMs` (the git is killed), is recorded as
 *   `Repository.problem`; the next good check clears it.
 * - Which check builds a moved head is decided in the database (the head's row changes once), so a
 *   poll racing a forge event's record of the same head builds nothing.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { GitError, lsRemote } from './git.ts';
import type { Repository } from './repositories.entity.ts';
import { RepositorySchema } from './repositories.entity.ts';
import type { RepositoryService } from './repositories.service.ts';
import { branchFiltered } from './repository-rules.ts';

export interface PollerDeps {
  orm: MikroORM;
  repositories: RepositoryService;
  logger: Logger;
  /** How long one `git ls-remote` may take before it is killed (KILN_POLL_TIMEOUT_SECONDS). */
  timeoutMs: number;
  concurrency?: number;
}

/** What one check found. */
export interface CheckResult {
  repositoryId: string;
  /** Refs whose head moved (and were built), or that are new (and were only recorded on a first poll). */
  moved: string[];
  builds: number;
  problem: string | null;
}

/**
 * Records `sha` as the head of `ref`. `moved` is true when the row changed (a new ref, or a head that
 * moved), which the one caller that changed it takes as its turn to build; `previous` is the head it
 * had before (null for a new ref).
 */
export async function recordHead(
  em: EntityManager,
  repositoryId: string,
  ref: string,
  sha: string,
): Promise<{ moved: boolean; previous: string | null }> {
  const rows = await em.execute<{ previous: string | null }[]>(
    `with old as (select sha from repository_heads where repository_id = ? and ref = ?)
     insert into repository_heads (repository_id, ref, sha, updated_at) values (?, ?, ?, now())
     on conflict (repository_id, ref) do update set sha = excluded.sha, updated_at = now()
       where repository_heads.sha <> excluded.sha
     returning (select sha from old) as previous`,
    [repositoryId, ref, repositoryId, ref, sha],
  );
  return { moved: rows.length > 0, previous: rows[0]?.previous ?? null };
}

export class Poller {
  private readonly running = new Map<string, Promise<CheckResult>>();
  private readonly concurrency: number;

  constructor(private readonly deps: PollerDeps) {
    this.concurrency = deps.concurrency ?? 4;
  }

  /** The repositories due for a check now, the longest waiting first. */
  private async due(em: EntityManager, limit: number): Promise<Repository[]> {
    const rows = await em.execute<{ id: string }[]>(
      `select id from repositories
       where poll_interval is not null
         and (last_checked_at is null or last_checked_at + poll_interval * interval '1 second' <= now())
       order by last_checked_at nulls first
       limit ?`,
      [limit],
    );
    if (rows.length === 0) return [];
    return em.find(RepositorySchema, { id: { $in: rows.map((r) => r.id) } }, { disableIdentityMap: true });
  }

  /** Starts the checks that are due (a timer's tick); resolves once they have started. */
  async launchDue(): Promise<Promise<CheckResult>[]> {
    const free = this.concurrency - this.running.size;
    if (free <= 0) return [];
    const em = this.deps.orm.em.fork();
    const repos = (await this.due(em, free + this.running.size)).filter((r) => !this.running.has(r.id));
    return repos.slice(0, free).map((repo) => this.check(repo));
  }

  /** Checks what is due now and waits for those checks (tests, operators). */
  async checkDue(): Promise<CheckResult[]> {
    return Promise.all(await this.launchDue());
  }

  /** One check of `repo`, or the one already running. */
  check(repo: Repository): Promise<CheckResult> {
    const already = this.running.get(repo.id);
    if (already) return already;
    const run = this.run(repo).finally(() => this.running.delete(repo.id));
    this.running.set(repo.id, run);
    return run;
  }

  private async run(repo: Repository): Promise<CheckResult> {
    const em = this.deps.orm.em.fork();
    const result: CheckResult = { repositoryId: repo.id, moved: [], builds: 0, problem: null };
    try {
      const remote = await lsRemote(
        repo.cloneUrl,
        this.deps.timeoutMs,
        await this.deps.repositories.auth(em, repo),
      );
      const [state] = await em.execute<{ polled: boolean }[]>(
        'select polled_at is not null as polled from repositories where id = ?',
        [repo.id],
      );
      const firstPoll = !state?.polled;
      for (const [ref, sha] of remote.refs) {
        const head = await recordHead(em, repo.id, ref, sha);
        if (!head.moved) continue;
        result.moved.push(ref);
        if (firstPoll || branchFiltered(repo, ref)) continue;
        try {
          const built = await this.deps.repositories.buildPush(em, repo, {
            ref,
            before: head.previous,
            head: { sha, author: null, message: null, url: null },
            url: null,
          });
          result.builds += built.builds.length;
          if (built.problems.length > 0) result.problem = `${ref}: ${built.outcome}`;
        } catch (error) {
          // Not built: forgotten, so that the next check tries again.
          await em.execute('delete from repository_heads where repository_id = ? and ref = ?', [
            repo.id,
            ref,
          ]);
          throw error;
        }
      }
      // A ref that is gone is forgotten: should it come back, its head builds.
      const refs = [...remote.refs.keys()];
      await em.execute(
        `delete from repository_heads where repository_id = ?
           and ref not in (select jsonb_array_elements_text(?::jsonb))`,
        [repo.id, JSON.stringify(refs)],
      );
    } catch (error) {
      result.problem = error instanceof GitError ? error.message : `the check failed: ${String(error)}`;
      this.deps.logger.warn({ repository: repo.id, problem: result.problem }, 'a repository check failed');
    }
    await em.execute(
      `update repositories set last_checked_at = now(), problem = ?, polled_at = coalesce(polled_at, case when ? then now() end) where id = ?`,
      [result.problem, result.problem === null || result.moved.length > 0, repo.id],
    );
    if (result.builds > 0) {
      this.deps.logger.info(
        { repository: repo.id, refs: result.moved, builds: result.builds },
        'a poll found new commits',
      );
    }
    return result;
  }
}

/**
 * Mail (Djinn mails the owner of a failed build): with KILN_SMTP_URL and KILN_MAIL_FROM,
 *
 * - an address a user sets (`setEmail`) is confirmed through a mailed link (`GET /verify-email`);
 * - a forgotten password is reset through a mailed link (`requestPasswordReset`, `resetPassword`);
 * - a build that fails, is killed or times out mails its owner and, for a repository's build, the user
 *   whose confirmed address is the commit author's; one that passes after a failure of the same
 *   series (namespace, manifest and ref) mails "fixed". Each user chooses (`setNotify`: NEVER,
 *   FAILURES, FAILURES_AND_FIXES). The body has the status, the cause, the failing job, the last 20
 *   lines of its log (as stored: masked) and a link. One serve mails (the `build-mail` job leads), and
 *   each build is marked mailed once considered, so none is mailed twice.
 *
 * Without SMTP nothing is sent (builds are still marked, so configuring it later mails no backlog).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { encodeGlobalID } from '@pothos/plugin-relay';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import { hashPassword } from '../../auth/passwords.ts';
import type { Outcome } from '../repositories/repositories.service.ts';
import { type NotifyPreference, type User, UserSchema } from '../users/users.entity.ts';
import { checkPassword } from '../users/users.service.ts';

const TOKEN_TTL_MS = 24 * 3600_000;
const RESET_TTL_MS = 3600_000;
const EMAIL = /^[^\s@<>()",;:]{1,64}@[^\s@<>()",;:]+\.[^\s@<>()",;:]{2,}$/;
const FAILING = new Set(['FAILED', 'KILLED', 'TIMED_OUT']);
const PASSING = new Set(['PASSED', 'PASSED_WITH_FAILURES']);
const BATCH = 50;
const TAIL_LINES = 20;

export interface MailServiceDeps {
  orm: MikroORM;
  logger: Logger;
  /** KILN_SMTP_URL: smtp://user:pass@host:port or smtps://…; empty: no mail. */
  smtpUrl: string;
  /** KILN_MAIL_FROM. */
  from: string;
  /** Where links in mail point (KILN_PUBLIC_URL, else the listen URL). */
  publicUrl: () => string;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const statusWords = (status: string) => status.toLowerCase().replaceAll('_', ' ');

export class MailService {
  private readonly transport: Transporter | null;

  constructor(private readonly deps: MailServiceDeps) {
    this.transport = deps.smtpUrl ? nodemailer.createTransport(deps.smtpUrl) : null;
  }

  get enabled(): boolean {
    return this.transport !== null;
  }

  private base(): string {
    return this.deps.publicUrl().replace(/\/+$/, '');
  }

  private async send(to: string, subject: string, text: string): Promise<void> {
    if (!this.transport) return;
    await this.transport.sendMail({ from: this.deps.from, to, subject, text });
  }

  private async newToken(
    em: EntityManager,
    user: User,
    purpose: 'verify' | 'reset',
    email: string | null,
  ): Promise<string> {
    const token = randomBytes(24).toString('base64url');
    const now = new Date();
    await em.execute(
      `insert into mail_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at) values (?, ?, ?, ?, ?, ?, ?)`,
      [
        randomUUID(),
        user.id,
        purpose,
        hashToken(token),
        email,
        new Date(now.getTime() + (purpose === 'reset' ? RESET_TTL_MS : TOKEN_TTL_MS)),
        now,
      ],
    );
    return token;
  }

  /** Takes a mailed token once; its user and address, or null when it is unknown, used or expired. */
  private async useToken(
    em: EntityManager,
    token: string,
    purpose: 'verify' | 'reset',
  ): Promise<{ userId: string; email: string | null } | null> {
    const [row] = await em.execute<{ user_id: string; email: string | null }[]>(
      `update mail_tokens set used_at = now()
       where token_hash = ? and purpose = ? and used_at is null and expires_at > now()
       returning user_id, email`,
      [hashToken(token), purpose],
    );
    return row ? { userId: row.user_id, email: row.email } : null;
  }

  /** `setEmail`: stores the address unconfirmed and mails it a link that confirms it. */
  async setEmail(em: EntityManager, user: User, email: string): Promise<Outcome<User>> {
    const address = email.trim();
    if (!EMAIL.test(address) || address.length > 320) {
      return { ok: false, path: 'input.email', reason: `"${address.slice(0, 100)}" is not an email address` };
    }
    if (!this.enabled) {
      return { ok: false, path: 'input.email', reason: 'this Kiln sends no mail (KILN_SMTP_URL is not set)' };
    }
    const fresh = await em.findOneOrFail(UserSchema, { id: user.id });
    fresh.email = address;
    fresh.emailVerified = false;
    await em.flush();
    const token = await this.newToken(em, fresh, 'verify', address);
    await this.send(
      address,
      'Confirm your address for Kiln',
      `Hello ${fresh.username},\n\nconfirm that Kiln may mail you here by opening this link (it works for 24 hours):\n\n  ${this.base()}/verify-email?token=${token}\n\nIf you did not ask for this, ignore this mail.\n`,
    );
    return { ok: true, value: fresh };
  }

  /** The link of a confirmation mail: confirms the address it was sent to, if it is still the user's. */
  async verifyEmail(em: EntityManager, token: string): Promise<boolean> {
    const used = await this.useToken(em, token, 'verify');
    if (!used) return false;
    const rows = await em.execute<{ id: string }[]>(
      'update users set email_verified = true where id = ? and email = ? returning id',
      [used.userId, used.email],
    );
    return rows.length > 0;
  }

  async setNotify(em: EntityManager, user: User, notify: NotifyPreference): Promise<User> {
    const fresh = await em.findOneOrFail(UserSchema, { id: user.id });
    fresh.notify = notify;
    await em.flush();
    return fresh;
  }

  /**
   * `requestPasswordReset`: mails a reset link to the confirmed address of the user `login` names
   * (a username or that address). Says nothing of whether there is one.
   */
  async requestPasswordReset(em: EntityManager, login: string): Promise<void> {
    const name = login.trim();
    const user = await em.findOne(UserSchema, {
      $or: [{ username: name }, { email: name, emailVerified: true }],
    });
    if (!user?.email || !user.emailVerified) return;
    const token = await this.newToken(em, user, 'reset', user.email);
    await this.send(
      user.email,
      'Reset your Kiln password',
      `Hello ${user.username},\n\nset a new password with this link (it works for an hour, once):\n\n  ${this.base()}/reset-password?token=${token}\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n`,
    );
  }

  /** `resetPassword`: a new password through a mailed link; the user's other sign-ins stay. */
  async resetPassword(em: EntityManager, token: string, password: string): Promise<Outcome<User>> {
    const problem = checkPassword(password);
    if (problem) return { ok: false, path: 'input.password', reason: problem };
    const used = await this.useToken(em, token, 'reset');
    if (!used)
      return {
        ok: false,
        path: 'input.token',
        reason: 'this link is unknown, used or expired: ask for a new one',
      };
    const user = await em.findOneOrFail(UserSchema, { id: used.userId });
    user.passwordHash = await hashPassword(password);
    user.failedLogins = 0;
    user.lockedUntil = null;
    await em.flush();
    return { ok: true, value: user };
  }

  /**
   * One pass of the build-mail job: the finished builds not yet considered. Each is claimed (marked
   * mailed, FOR UPDATE SKIP LOCKED) before its mail is sent, so two passes at once (a new leader and
   * one that has not noticed it lost) never mail one build twice; a build whose mail could not be
   * sent is unmarked, for the next pass. Returns mails sent.
   */
  async mailFinished(): Promise<number> {
    const em = this.deps.orm.em.fork();
    const builds = await em.execute<BuildRow[]>(
      `with claimed as (
         update builds set mailed = true
         where id in (select id from builds where not mailed and finished_at is not null
                      order by finished_at limit ? for update skip locked)
         returning id, number, status, owner_id, namespace_id, attempt, trigger_kind, trigger_data,
                   created_at, reason, finished_at
       )
       select c.id, c.number, c.status, c.owner_id, c.namespace_id, c.attempt, c.trigger_kind, c.trigger_data,
              c.created_at, c.reason as finish_reason, n.path as namespace_path, u.username as owner_name
       from claimed c join users u on u.id = c.owner_id left join namespaces n on n.id = c.namespace_id
       order by c.finished_at`,
      [BATCH],
    );
    let sent = 0;
    for (const build of builds) {
      if (!this.enabled) continue;
      try {
        sent += await this.mailBuild(em, build);
      } catch (error) {
        this.deps.logger.warn({ err: error, build: build.id }, 'mailing a build failed; it is tried again');
        await em.execute('update builds set mailed = false where id = ?', [build.id]);
      }
    }
    return sent;
  }

  private async mailBuild(em: EntityManager, build: BuildRow): Promise<number> {
    const data = (build.trigger_data ?? {}) as Record<string, string>;
    let kind: 'failed' | 'fixed' | null = null;
    if (FAILING.has(build.status)) kind = 'failed';
    else if (PASSING.has(build.status)) {
      const [previous] = await em.execute<{ status: string }[]>(
        `select status from builds
         where finished_at is not null and created_at < ? and id <> ?
           and namespace_id is not distinct from ? and (namespace_id is not null or owner_id = ?)
           and trigger_data->>'manifestPath' is not distinct from ? and trigger_data->>'ref' is not distinct from ?
         order by created_at desc limit 1`,
        [
          build.created_at,
          build.id,
          build.namespace_id,
          build.owner_id,
          data.manifestPath ?? null,
          data.ref ?? null,
        ],
      );
      if (previous && FAILING.has(previous.status)) kind = 'fixed';
    }
    if (!kind) return 0;
    const wants = (notify: string | undefined) =>
      notify === 'FAILURES_AND_FIXES' || (notify !== 'NEVER' && kind === 'failed');
    const recipients = new Map<string, string>();
    const owner = await em.findOne(UserSchema, { id: build.owner_id });
    if (owner?.email && owner.emailVerified && wants(owner.notify))
      recipients.set(owner.email.toLowerCase(), owner.email);
    const authorEmail = /<([^<>\s]+@[^<>\s]+)>\s*$/.exec(data.author ?? '')?.[1];
    if (authorEmail) {
      const author = await em.findOne(UserSchema, { email: authorEmail, emailVerified: true });
      if (author?.email && wants(author.notify)) recipients.set(author.email.toLowerCase(), author.email);
    }
    if (recipients.size === 0) return 0;
    const name = `${build.namespace_path ? `${build.owner_name}@${build.namespace_path} ` : ''}#${build.number}`;
    const link = `${this.base()}/builds/${encodeURIComponent(encodeGlobalID('Build', build.id))}`;
    const subject = `Build ${name} ${kind === 'fixed' ? 'is fixed' : statusWords(build.status)}`;
    const lines = [
      `Build ${name}: ${statusWords(build.status)}.`,
      '',
      `Cause: ${causeWords(build.trigger_kind, data)}`,
    ];
    if (build.finish_reason) lines.push(`Reason: ${build.finish_reason}`);
    if (kind === 'failed') {
      const job = await this.failingJob(em, build);
      if (job) {
        lines.push('', `The job that failed: ${job.stage_name} / ${job.name} (${statusWords(job.status)})`);
        const tail = await this.tail(em, build, job.id);
        if (tail.length > 0)
          lines.push(`The last ${tail.length} lines of its log:`, '', ...tail.map((l) => `  ${l}`));
      }
    }
    lines.push(
      '',
      link,
      '',
      `You get this mail because of your notification setting (${this.base()}/account).`,
    );
    for (const to of recipients.values()) await this.send(to, subject, `${lines.join('\n')}\n`);
    return recipients.size;
  }

  private async failingJob(
    em: EntityManager,
    build: BuildRow,
  ): Promise<{ id: string; name: string; stage_name: string; status: string } | null> {
    const [job] = await em.execute<{ id: string; name: string; stage_name: string; status: string }[]>(
      `select id, name, stage_name, status from jobs
       where build_id = ? and status in ('FAILED', 'KILLED', 'TIMED_OUT')
       order by position limit 1`,
      [build.id],
    );
    return job ?? null;
  }

  /** The last lines of a job's stored log (the runner masked them before they were sent). */
  private async tail(em: EntityManager, build: BuildRow, jobId: string): Promise<string[]> {
    const chunks = await em.execute<{ content: string }[]>(
      `select content from log_chunks where build_id = ? and attempt = ? and job_id = ? order by seq desc limit 40`,
      [build.id, build.attempt, jobId],
    );
    const lines: string[] = [];
    for (const chunk of chunks) {
      const own = chunk.content.replace(/\n$/, '').split('\n');
      lines.unshift(...own);
      if (lines.length >= TAIL_LINES) break;
    }
    return lines.slice(-TAIL_LINES);
  }
}

interface BuildRow {
  id: string;
  number: number;
  status: string;
  owner_id: string;
  namespace_id: string | null;
  attempt: number;
  trigger_kind: string;
  trigger_data: Record<string, string> | null;
  created_at: Date;
  finish_reason: string | null;
  namespace_path: string | null;
  owner_name: string;
}

function causeWords(kind: string, data: Record<string, string>): string {
  const ref = data.ref?.replace(/^refs\/(heads|tags)\//, '');
  const commit = data.sha ? ` at ${data.sha.slice(0, 12)}` : '';
  const subject = data.message ? ` "${data.message.split('\n')[0]!.slice(0, 120)}"` : '';
  const author = data.author ? ` by ${data.author}` : '';
  switch (kind) {
    case 'PUSH':
      return `a push to ${ref ?? '?'}${commit}${subject}${author}`;
    case 'PULL':
      return `pull request #${data.pullRequest ?? '?'}${commit}${subject}${author}`;
    case 'SCHEDULE':
      return `a schedule, for ${data.scheduledFor ?? 'its slot'}`;
    default:
      return data.repositoryId ? `built by hand: ${ref ?? '?'}${commit}` : 'submitted by hand';
  }
}

/**
 * Mail against a local SMTP server (smtp-server) and a real runner: an address confirmed through its
 * mailed link, a failed build mailed to its owner with the masked tail of the failing job's log, a
 * passing one after it mailed "fixed" (when asked for), NEVER mailing nothing, a password reset
 * through a mailed link that works once, and nothing sent without SMTP.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const SECRET = 'hunter2-is-masked';

const manifest = (fail: boolean) => `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: work
    commands:
      - 'for i in $(seq 1 30); do echo "line $i"; done'
      - 'echo "the secret is $SECRET"'
      - '${fail ? 'exit 3' : 'true'}'
`;

describe.runIf(available('postgres'))('mail', () => {
  let t: TestApp;
  let smtp: SMTPServer;
  let dir: string;
  let alice: string;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  const mails: ParsedMail[] = [];

  const gql = async (query: string, variables: Record<string, unknown> = {}, as: string | null = alice) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  async function build(fail: boolean) {
    const data = await gql(
      `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) { ... on SubmitBuildSuccess { build { id number } } } }`,
      { m: manifest(fail) },
    );
    const { id, number } = (data.submitBuild as { build: { id: string; number: number } }).build;
    await waitFor(`build ${id}`, async () => {
      const b = await gql('query ($id: ID!) { build(id: $id) { status } }', { id });
      return !['QUEUED', 'RUNNING'].includes((b.build as { status: string }).status);
    });
    return number;
  }

  const mailed = (n: number) => waitFor(`${n} mails`, async () => (mails.length >= n ? mails[n - 1]! : null));

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, _session, callback) {
        simpleParser(stream).then(
          (mail) => {
            mails.push(mail);
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const port = (smtp.server.address() as AddressInfo).port;
    dir = await mkdtemp(join(tmpdir(), 'kiln-mail-test-'));
    t = await startTestApp({ smtpUrl: `smtp://127.0.0.1:${port}` });
    await t.listen();
    await mkdir(join(dir, 'w'));
    runner = await startTestRunner(t, join(dir, 'w'));
    alice = await signUpAndLogIn(t, 'alice');
    await gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    await gql(
      `mutation ($v: String!) { createVariable(input: { namespace: "team", key: "SECRET", value: $v, masked: true }) { __typename } }`,
      { v: SECRET },
    );
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('confirms an address through the link mailed to it', async () => {
    expect((await gql('{ mailEnabled }')).mailEnabled).toBe(true);
    const bad = await gql(
      'mutation { setEmail(input: { email: "not an address" }) { __typename ... on InputError { path } } }',
    );
    expect(bad.setEmail).toEqual({ __typename: 'InputError', path: 'input.email' });
    await gql('mutation { setEmail(input: { email: "alice@example.com" }) { __typename } }');
    const mail = await mailed(1);
    expect(mail.to && 'text' in mail.to ? mail.to.text : '').toBe('alice@example.com');
    const link = /(http:\/\/\S+\/verify-email\?token=\S+)/.exec(mail.text ?? '')?.[1];
    expect(link).toBeDefined();
    expect((await gql('{ viewer { email emailVerified notify } }')).viewer).toEqual({
      email: 'alice@example.com',
      emailVerified: false,
      notify: 'FAILURES',
    });
    const followed = await fetch(link!, { redirect: 'manual' });
    expect(followed.status).toBe(303);
    expect(followed.headers.get('location')).toBe('/account?email=verified');
    expect(
      ((await gql('{ viewer { emailVerified } }')).viewer as { emailVerified: boolean }).emailVerified,
    ).toBe(true);
    // A link works once.
    expect((await fetch(link!, { redirect: 'manual' })).headers.get('location')).toBe(
      '/account?email=link-expired',
    );
  });

  it('mails the owner of a failed build the masked tail of the failing log, and "fixed" when asked for', async () => {
    const failed = await build(true);
    await t.app.maintenance.mailBuilds();
    const mail = await mailed(2);
    expect(mail.subject).toBe(`Build alice@team #${failed} failed`);
    const text = mail.text ?? '';
    expect(text).toContain('The job that failed: s / work (failed)');
    expect(text).toContain('line 30');
    expect(text).not.toContain('line 10\n');
    expect(text).toContain('the secret is xxxxxx');
    expect(text).not.toContain(SECRET);
    expect(text).toMatch(/http:\/\/\S+\/builds\/\S+/);
    // FAILURES (the default) mails no fix.
    await build(false);
    await build(true);
    await t.app.maintenance.mailBuilds();
    await mailed(3);
    await gql('mutation { setNotify(input: { notify: FAILURES_AND_FIXES }) { __typename } }');
    const fixed = await build(false);
    await t.app.maintenance.mailBuilds();
    expect((await mailed(4)).subject).toBe(`Build alice@team #${fixed} is fixed`);
    // Each build is mailed once, however many passes look.
    await t.app.maintenance.mailBuilds();
    expect(mails.map((m) => m.subject)).toEqual([
      'Confirm your address for Kiln',
      `Build alice@team #${failed} failed`,
      `Build alice@team #${failed + 2} failed`,
      `Build alice@team #${fixed} is fixed`,
    ]);
    await gql('mutation { setNotify(input: { notify: NEVER }) { __typename } }');
    await build(true);
    await t.app.maintenance.mailBuilds();
    expect(mails).toHaveLength(4);
  });

  it('resets a forgotten password through a mailed link that works once', async () => {
    expect(
      (await gql('mutation { requestPasswordReset(input: { login: "nobody" }) }', {}, null))
        .requestPasswordReset,
    ).toBe(true);
    await gql('mutation { requestPasswordReset(input: { login: "alice@example.com" }) }', {}, null);
    const mail = await mailed(5);
    expect(mail.subject).toBe('Reset your Kiln password');
    const token = /reset-password\?token=(\S+)/.exec(mail.text ?? '')?.[1];
    const reset = `mutation ($t: String!, $p: String!) { resetPassword(input: { token: $t, password: $p }) {
      __typename ... on InputError { path } } }`;
    expect((await gql(reset, { t: token, p: 'short' }, null)).resetPassword).toEqual({
      __typename: 'InputError',
      path: 'input.password',
    });
    expect((await gql(reset, { t: token, p: 'a new long password' }, null)).resetPassword).toEqual({
      __typename: 'ResetPasswordSuccess',
    });
    expect((await gql(reset, { t: token, p: 'another long one' }, null)).resetPassword).toEqual({
      __typename: 'InputError',
      path: 'input.token',
    });
    const login = await gql(
      'mutation { logIn(input: { username: "alice", password: "a new long password" }) { __typename } }',
      {},
      null,
    );
    expect((login.logIn as { __typename: string }).__typename).toBe('LogInSuccess');
  });

  it('sends nothing without SMTP, and says so', async () => {
    const quiet = await startTestApp({ db: t.db, prefix: t.prefix });
    try {
      const enabled = await quiet.gql('{ mailEnabled }', {}, alice);
      expect(enabled.errors).toBeUndefined();
      expect(enabled.data).toEqual({ mailEnabled: false });
      const refused = await quiet.gql(
        'mutation { setEmail(input: { email: "a@example.com" }) { __typename ... on InputError { message } } }',
        {},
        alice,
      );
      expect(refused.data?.setEmail).toEqual({
        __typename: 'InputError',
        message: 'this Kiln sends no mail (KILN_SMTP_URL is not set)',
      });
    } finally {
      await quiet.stop();
    }
  });
});

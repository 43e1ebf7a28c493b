import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';

const LOGIN = `mutation ($u: String!, $p: String!) { logIn(input: { username: $u, password: $p }) {
  __typename ... on LogInSuccess { token user { username } } ... on Error { message } } }`;

describe.runIf(available('postgres'))('accounts and sessions', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function http(body: object, headers: Record<string, string>): Promise<Response> {
    return t.app.fetch(
      new Request('http://kiln.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      }),
    );
  }

  it('signs up users, refuses taken names and short passwords, and stores no password in the clear', async () => {
    const signUp =
      'mutation ($u: String!, $p: String!) { signUp(input: { username: $u, password: $p }) { __typename ... on InputError { message path } ... on SignUpSuccess { user { username isAdmin } } } }';
    const made = await t.gql<{ signUp: unknown }>(signUp, { u: 'ada', p: 'correct horse' }, null);
    expect(made.data!.signUp).toEqual({
      __typename: 'SignUpSuccess',
      user: { username: 'ada', isAdmin: false },
    });
    const taken = await t.gql<{ signUp: { path: string } }>(signUp, { u: 'ADA', p: 'correct horse' }, null);
    expect(taken.data!.signUp).toMatchObject({ __typename: 'InputError', path: 'username' });
    const short = await t.gql<{ signUp: { path: string } }>(signUp, { u: 'bob', p: 'short' }, null);
    expect(short.data!.signUp).toMatchObject({ __typename: 'InputError', path: 'password' });
    const rows = await t.orm.em
      .fork()
      .execute<{ password_hash: string }[]>("select password_hash from users where username = 'ada'");
    expect(rows[0]!.password_hash).toMatch(/^scrypt\$/);
    expect(rows[0]!.password_hash).not.toContain('correct horse');
  });

  it('answers a wrong password like an unknown user, and locks the account after repeated failures', async () => {
    await signUpAndLogIn(t, 'locky');
    const unknown = await t.gql<{ logIn: { message: string } }>(LOGIN, { u: 'nobody', p: 'whatever1' }, null);
    const wrong = await t.gql<{ logIn: { message: string } }>(LOGIN, { u: 'locky', p: 'whatever1' }, null);
    expect(wrong.data!.logIn).toEqual(unknown.data!.logIn);
    for (let i = 0; i < 5; i++) await t.gql(LOGIN, { u: 'locky', p: 'whatever1' }, null);
    const locked = await t.gql<{ logIn: { __typename: string; message: string } }>(
      LOGIN,
      { u: 'locky', p: 'password-locky' },
      null,
    );
    expect(locked.data!.logIn.__typename).toBe('InputError');
    expect(locked.data!.logIn.message).toMatch(/too many failed sign-ins/);
  });

  it('keeps a session in an httpOnly cookie that needs the CSRF header to act, until logOut', async () => {
    await signUpAndLogIn(t, 'cookie');
    const login = await http({ query: LOGIN, variables: { u: 'cookie', p: 'password-cookie' } }, {});
    const setCookies = login.headers.getSetCookie();
    const session = setCookies.find((c) => c.startsWith('kiln_session='))!;
    const csrf = setCookies.find((c) => c.startsWith('kiln_csrf='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Lax/);
    expect(csrf).not.toMatch(/HttpOnly/);
    const cookie = [session, csrf].map((c) => c.split(';')[0]).join('; ');
    const csrfValue = csrf.split(';')[0]!.split('=')[1]!;
    const viewer = { query: '{ viewer { username } }' };

    const withoutHeader = await (await http(viewer, { cookie })).json();
    expect(withoutHeader.errors[0].extensions.code).toBe('FORBIDDEN');
    const withHeader = await (await http(viewer, { cookie, 'x-kiln-csrf': csrfValue })).json();
    expect(withHeader.data.viewer).toEqual({ username: 'cookie' });

    const logout = await http({ query: 'mutation { logOut }' }, { cookie, 'x-kiln-csrf': csrfValue });
    expect(logout.headers.getSetCookie().some((c) => c.startsWith('kiln_session=;'))).toBe(true);
    const after = await (await http(viewer, { cookie, 'x-kiln-csrf': csrfValue })).json();
    expect(after.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('lists the sessions of a user, and revoking one signs it out', async () => {
    const first = await signUpAndLogIn(t, 'twice');
    const second = (
      await t.gql<{ logIn: { token: string } }>(LOGIN, { u: 'twice', p: 'password-twice' }, null)
    ).data!.logIn.token;
    const listed = await t.gql<{ viewer: { sessions: { id: string }[] } }>(
      '{ viewer { sessions { id } } }',
      {},
      second,
    );
    expect(listed.data!.viewer.sessions).toHaveLength(2);
    // The newest is `second`: revoke the other one from it.
    const other = listed.data!.viewer.sessions[1]!.id;
    const revoked = await t.gql<{ revokeToken: { __typename: string } }>(
      'mutation ($id: ID!) { revokeToken(input: { id: $id }) { __typename } }',
      { id: other },
      second,
    );
    expect(revoked.data!.revokeToken.__typename).toBe('RevokeTokenSuccess');
    expect((await t.gql('{ viewer { id } }', {}, first)).errors?.[0]?.extensions?.code).toBe(
      'UNAUTHENTICATED',
    );
    expect((await t.gql('{ viewer { id } }', {}, second)).errors).toBeUndefined();
  });

  it('refuses an expired session and a revoked token', async () => {
    const token = await signUpAndLogIn(t, 'expiring');
    expect((await t.gql('{ viewer { username } }', {}, token)).errors).toBeUndefined();
    await t.orm.em
      .fork()
      .execute("update access_tokens set expires_at = now() - interval '1 second' where kind = 'SESSION'");
    const expired = await t.gql('{ viewer { username } }', {}, token);
    expect(expired.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('changes a password: the old one stops working, the new one works', async () => {
    const token = await signUpAndLogIn(t, 'changer');
    const change = await t.gql<{ changePassword: { __typename: string } }>(
      'mutation { changePassword(input: { currentPassword: "password-changer", newPassword: "a new password" }) { __typename } }',
      {},
      token,
    );
    expect(change.data!.changePassword.__typename).toBe('ChangePasswordSuccess');
    const old = await t.gql<{ logIn: { __typename: string } }>(
      LOGIN,
      { u: 'changer', p: 'password-changer' },
      null,
    );
    expect(old.data!.logIn.__typename).toBe('InputError');
    const fresh = await t.gql<{ logIn: { __typename: string } }>(
      LOGIN,
      { u: 'changer', p: 'a new password' },
      null,
    );
    expect(fresh.data!.logIn.__typename).toBe('LogInSuccess');
  });

  it('lists the scopes a token may hold, each with what it allows, and createToken takes every one', async () => {
    const token = await signUpAndLogIn(t, 'scoper');
    const listed = await t.gql<{
      scopes: { name: string; resource: string; permission: string; description: string }[];
    }>('{ scopes { name resource permission description } }', {}, null);
    const scopes = listed.data!.scopes;
    expect(scopes).toContainEqual(
      expect.objectContaining({ name: 'build:read', resource: 'build', permission: 'read' }),
    );
    for (const scope of scopes) {
      expect(scope.name).toBe(`${scope.resource}:${scope.permission}`);
      expect(scope.description).not.toBe('');
    }
    const made = await t.gql<{ createToken: { __typename: string; accessToken: { scopes: string[] } } }>(
      'mutation ($s: [String!]!) { createToken(input: { name: "all", scopes: $s }) { __typename ... on CreateTokenSuccess { accessToken { scopes } } } }',
      { s: scopes.map((s) => s.name) },
      token,
    );
    expect(made.data!.createToken.accessToken.scopes.sort()).toEqual(scopes.map((s) => s.name).sort());
  });

  it('refuses queries that are too deep', async () => {
    const nested = `namespace { ${'parent { '.repeat(10)}id${' }'.repeat(11)}`;
    const deep = `{ builds { edges { node { ${nested} } } } }`;
    const res = await t.gql(deep);
    expect(JSON.stringify(res.errors)).toMatch(/depth/i);
  });
});

describe.runIf(available('postgres'))('server limits', () => {
  it('closes sign-up when turned off, except for the very first user', async () => {
    const t = await startTestApp({ signup: false });
    try {
      const res = await t.gql<{ signUp: { __typename: string; message: string } }>(
        'mutation { signUp(input: { username: "late", password: "long enough" }) { __typename ... on Error { message } } }',
        {},
        null,
      );
      expect(res.data!.signUp).toEqual({
        __typename: 'InputError',
        message: 'sign-up is turned off on this server',
      });
    } finally {
      await t.stop();
    }
  });

  it('limits the requests one token may make per minute', async () => {
    const t = await startTestApp({ rateLimit: 5 });
    try {
      const codes: (string | undefined)[] = [];
      for (let i = 0; i < 7; i++)
        codes.push((await t.gql('{ viewer { id } }')).errors?.[0]?.extensions?.code);
      expect(codes.slice(0, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
      expect(codes.slice(5)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    } finally {
      await t.stop();
    }
  });
});

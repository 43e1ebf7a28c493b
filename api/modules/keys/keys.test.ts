import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { SshKeySchema } from './keys.entity.ts';

type Res = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};
type KeyView = { id: string; name: string; config: string };

const BODY = 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW';
const PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\r\n${BODY}\r\n-----END OPENSSH PRIVATE KEY-----`;
const CREATE = `mutation ($ns: String, $name: String!, $key: String!, $config: String) {
  createKey(input: { namespace: $ns, name: $name, privateKey: $key, config: $config }) {
    __typename
    ... on CreateKeySuccess { key { id name config } }
    ... on Error { message }
    ... on InputError { path }
  }
}`;
const DELETE = `mutation ($id: ID!) {
  deleteKey(input: { id: $id }) { __typename ... on DeleteKeySuccess { deletedId } ... on Error { message } }
}`;
const LIST = 'query ($path: String!) { namespace(path: $path) { sshKeys { id name config } } }';

describe.runIf(available('postgres'))('SSH keys', () => {
  let t: TestApp;
  const tokens: Record<'alice' | 'bob', string> = { alice: '', bob: '' };
  const seen: unknown[] = [];

  async function gql(
    who: keyof typeof tokens | string,
    query: string,
    variables: Record<string, unknown> = {},
  ) {
    const res = (await t.gql(
      query,
      variables,
      who in tokens ? tokens[who as keyof typeof tokens] : who,
    )) as Res;
    seen.push(res);
    return res;
  }
  const result = (res: Res) => res.data!.createKey as { __typename: string; key: KeyView; path?: string };
  const code = (res: Res) => res.errors?.[0]?.extensions?.code;

  beforeAll(async () => {
    t = await startTestApp();
    tokens.alice = await signUpAndLogIn(t, 'alice');
    tokens.bob = await signUpAndLogIn(t, 'bob');
    await gql('alice', 'mutation { createNamespace(input: { path: "team" }) { __typename } }');
  });

  afterAll(async () => {
    expect(JSON.stringify(seen)).not.toContain(BODY);
    await t?.stop();
  });

  it('creates keys in a namespace and per user with normalised names, lists names and config only, and deletes them', async () => {
    const inTeam = result(
      await gql('alice', CREATE, {
        ns: 'team',
        name: 'deploy key!',
        key: PRIVATE_KEY,
        config: 'Host github.com\r\n  User git',
      }),
    );
    expect(inTeam).toMatchObject({
      __typename: 'CreateKeySuccess',
      key: { name: 'deploy_key_', config: 'Host github.com\n  User git' },
    });
    const own = result(await gql('alice', CREATE, { name: 'id_ed25519', key: PRIVATE_KEY }));
    expect(own.key).toMatchObject({ name: 'id_ed25519', config: '' });

    const listed = await gql('alice', LIST, { path: 'team' });
    expect((listed.data!.namespace as { sshKeys: KeyView[] }).sshKeys).toEqual([inTeam.key]);
    const mine = await gql('alice', '{ viewer { sshKeys { id name config } } }');
    expect((mine.data!.viewer as { sshKeys: KeyView[] }).sshKeys).toEqual([own.key]);

    // Stored sealed, with the line ends OpenSSH wants.
    const row = await t.orm.em.fork().findOneOrFail(SshKeySchema, { name: 'deploy_key_' });
    expect(row.encryptedKey).toMatch(/^v1:/);
    expect(row.encryptedKey).not.toContain(BODY);

    const deleted = await gql('alice', DELETE, { id: own.key.id });
    expect(deleted.data!.deleteKey).toEqual({ __typename: 'DeleteKeySuccess', deletedId: own.key.id });
    expect((await gql('alice', '{ viewer { sshKeys { id } } }')).data!.viewer).toEqual({ sshKeys: [] });
  });

  it('refuses what is not a private key, names that are not file names, and a duplicate name', async () => {
    const problem = async (name: string, key: string) => {
      const r = result(await gql('alice', CREATE, { ns: 'team', name, key }));
      return `${r.__typename}:${r.path ?? ''}`;
    };
    expect(await problem('pub', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI')).toBe('InputError:privateKey');
    expect(await problem('config', PRIVATE_KEY)).toBe('InputError:name');
    expect(await problem('..', PRIVATE_KEY)).toBe('InputError:name');
    expect(await problem('twice', PRIVATE_KEY)).toBe('CreateKeySuccess:');
    expect(await problem('twice', PRIVATE_KEY)).toBe('InputError:name');
  });

  it('keeps users outside the namespace and tokens without the key scopes out', async () => {
    const target = result(await gql('alice', CREATE, { ns: 'team', name: 'guarded', key: PRIVATE_KEY })).key;
    expect((await gql('bob', LIST, { path: 'alice@team' })).data!.namespace).toBeNull();
    expect(
      result(await gql('bob', CREATE, { ns: 'alice@team', name: 'x', key: PRIVATE_KEY })).__typename,
    ).toBe('NotFoundError');
    const removed = await gql('bob', DELETE, { id: target.id });
    expect((removed.data!.deleteKey as { __typename: string }).__typename).toBe('NotFoundError');

    const made = await gql(
      'alice',
      'mutation { createToken(input: { name: "ns", scopes: ["namespace:read", "variable:write"] }) { ... on CreateTokenSuccess { token } } }',
    );
    const scopeless = (made.data!.createToken as { token: string }).token;
    expect(code(await gql(scopeless, CREATE, { ns: 'team', name: 'x', key: PRIVATE_KEY }))).toBe('FORBIDDEN');
    expect(code(await gql(scopeless, LIST, { path: 'team' }))).toBe('FORBIDDEN');
    expect(code(await gql(scopeless, DELETE, { id: target.id }))).toBe('FORBIDDEN');
    expect(code((await t.gql(CREATE, { name: 'x', key: PRIVATE_KEY }, null)) as Res)).toBe('UNAUTHENTICATED');
  });
});

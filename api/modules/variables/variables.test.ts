import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { createSecretBox } from '../../auth/secret-box.ts';
import { createKey } from '../keys/keys.service.ts';
import { NamespaceSchema } from '../namespaces/namespaces.entity.ts';
import { UserSchema } from '../users/users.entity.ts';
import { buildSecrets } from './snapshot.ts';
import { VariableSchema } from './variables.entity.ts';
import { createVariable } from './variables.service.ts';

type Res = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};
type VariableView = { id: string; key: string; value: string | null; masked: boolean };

const SECRET = 'hunter2-s3cr3t-value';
const CREATE = `mutation ($ns: String, $key: String!, $value: String!, $masked: Boolean) {
  createVariable(input: { namespace: $ns, key: $key, value: $value, masked: $masked }) {
    __typename
    ... on CreateVariableSuccess { variable { id key value masked } }
    ... on Error { message }
    ... on InputError { path }
  }
}`;
const DELETE = `mutation ($id: ID!) {
  deleteVariable(input: { id: $id }) { __typename ... on DeleteVariableSuccess { deletedId } ... on Error { message } }
}`;
const LIST = `query ($path: String!) { namespace(path: $path) { variables { id key value masked } } }`;
const OWN = '{ viewer { variables { id key value masked } } }';

describe.runIf(available('postgres'))('variables', () => {
  let t: TestApp;
  const tokens: Record<'alice' | 'bob' | 'carol', string> = { alice: '', bob: '', carol: '' };
  /** Every response fetched, to check that no masked value ever left the API. */
  const seen: unknown[] = [];

  async function gql(
    who: keyof typeof tokens | null,
    query: string,
    variables: Record<string, unknown> = {},
  ) {
    const res = (await t.gql(query, variables, who ? tokens[who] : null)) as Res;
    seen.push(res);
    return res;
  }
  async function create(who: keyof typeof tokens, variables: Record<string, unknown>, token?: string) {
    const res = (await t.gql(CREATE, variables, token ?? tokens[who])) as Res;
    seen.push(res);
    return res;
  }
  const created = (res: Res) => (res.data!.createVariable as { variable: VariableView }).variable;

  beforeAll(async () => {
    t = await startTestApp();
    for (const who of ['alice', 'bob', 'carol'] as const) tokens[who] = await signUpAndLogIn(t, who);
    await gql('alice', 'mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const invite = await gql(
      'alice',
      'mutation { inviteCollaborator(input: { path: "team", username: "carol" }) { ... on InviteCollaboratorSuccess { invite { id } } } }',
    );
    const inviteId = (invite.data!.inviteCollaborator as { invite: { id: string } }).invite.id;
    await gql('carol', `mutation { acceptInvite(input: { id: "${inviteId}" }) { __typename } }`);
  });

  afterAll(async () => {
    // Nothing any test fetched holds the masked value.
    expect(JSON.stringify(seen)).not.toContain(SECRET);
    await t?.stop();
  });

  it('creates variables in a namespace and per user, lists them, and never returns a masked value', async () => {
    const plain = await create('alice', { ns: 'team', key: 'GREETING', value: 'hello' });
    expect(created(plain)).toMatchObject({ key: 'GREETING', value: 'hello', masked: false });
    const masked = await create('alice', { ns: 'team', key: 'TOKEN', value: SECRET, masked: true });
    expect(created(masked)).toMatchObject({ key: 'TOKEN', value: null, masked: true });
    const own = await create('alice', { key: 'TOKEN', value: `${SECRET}-own`, masked: true });
    expect(created(own)).toMatchObject({ key: 'TOKEN', value: null, masked: true });

    const listed = await gql('alice', LIST, { path: 'team' });
    expect((listed.data!.namespace as { variables: VariableView[] }).variables).toEqual([
      { id: created(plain).id, key: 'GREETING', value: 'hello', masked: false },
      { id: created(masked).id, key: 'TOKEN', value: null, masked: true },
    ]);
    const mine = await gql('alice', OWN);
    expect((mine.data!.viewer as { variables: VariableView[] }).variables).toEqual([
      { id: created(own).id, key: 'TOKEN', value: null, masked: true },
    ]);
    const node = await gql('alice', 'query ($id: ID!) { node(id: $id) { ... on Variable { key value } } }', {
      id: created(masked).id,
    });
    expect(node.data!.node).toEqual({ key: 'TOKEN', value: null });

    // At rest: no plain value, only the sealed one.
    const rows = await t.orm.em.fork().find(VariableSchema, { key: 'TOKEN' });
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.value).toBeNull();
      expect(row.encryptedValue).toMatch(/^v1:/);
      expect(row.encryptedValue).not.toContain(SECRET);
    }
  });

  it('refuses bad keys, short masked values, reserved keys and a duplicate key in the same scope', async () => {
    const problem = async (variables: Record<string, unknown>) => {
      const res = await create('alice', variables);
      const result = res.data!.createVariable as { __typename: string; path: string };
      return `${result.__typename}:${result.path}`;
    };
    expect(await problem({ ns: 'team', key: '1ABC', value: 'x' })).toBe('InputError:key');
    expect(await problem({ ns: 'team', key: 'A-B', value: 'x' })).toBe('InputError:key');
    expect(await problem({ ns: 'team', key: 'KILN_BUILD_ID', value: 'x' })).toBe('InputError:key');
    expect(await problem({ ns: 'team', key: 'SHORT', value: '12345', masked: true })).toBe(
      'InputError:value',
    );
    expect(await problem({ ns: 'team', key: 'EMPTY', value: '' })).toBe('InputError:value');
    expect(await problem({ ns: 'team', key: 'DUP', value: 'one' })).toBe('CreateVariableSuccess:undefined');
    expect(await problem({ ns: 'team', key: 'DUP', value: 'two' })).toBe('InputError:key');
    // The same key in another scope is another variable.
    expect(await problem({ key: 'DUP', value: 'mine' })).toBe('CreateVariableSuccess:undefined');
    expect(await problem({ ns: 'nosuch', key: 'DUP', value: 'x' })).toBe('NotFoundError:undefined');
  });

  it('lets a collaborator create and delete, and keeps everyone else out', async () => {
    const byCarol = created(await create('carol', { ns: 'alice@team', key: 'FROM_CAROL', value: 'c' }));
    const deleted = await gql('carol', DELETE, { id: byCarol.id });
    expect(deleted.data!.deleteVariable).toEqual({
      __typename: 'DeleteVariableSuccess',
      deletedId: byCarol.id,
    });
    const target = created(await create('alice', { ns: 'team', key: 'KEEP', value: 'k' }));
    const own = created(await create('alice', { key: 'ALICE_ONLY', value: 'a' }));

    // Bob cannot see the private namespace, its variables, or alice's own.
    expect((await gql('bob', LIST, { path: 'alice@team' })).data!.namespace).toBeNull();
    const outside = await create('bob', { ns: 'alice@team', key: 'X', value: 'y' });
    expect((outside.data!.createVariable as { __typename: string }).__typename).toBe('NotFoundError');
    for (const id of [target.id, own.id]) {
      const res = await gql('bob', DELETE, { id });
      expect((res.data!.deleteVariable as { __typename: string }).__typename).toBe('NotFoundError');
      const node = await gql('bob', 'query ($id: ID!) { node(id: $id) { id } }', { id });
      expect(node.data?.node ?? null).toBeNull();
    }
    expect((await gql('bob', OWN)).data!.viewer).toEqual({ variables: [] });
    const carolOwn = await gql('carol', 'query ($id: ID!) { node(id: $id) { id } }', { id: own.id });
    expect(carolOwn.data?.node ?? null).toBeNull();

    // In a public namespace bob may read builds, but neither see nor change its variables.
    await gql(
      'alice',
      'mutation { updateNamespace(input: { path: "team", visibility: PUBLIC }) { __typename } }',
    );
    try {
      const listed = await gql('bob', LIST, { path: 'alice@team' });
      expect(listed.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(JSON.stringify(listed.data)).not.toContain('KEEP');
      const write = await create('bob', { ns: 'alice@team', key: 'X', value: 'y' });
      expect(write.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const remove = await gql('bob', DELETE, { id: target.id });
      expect((remove.data!.deleteVariable as { __typename: string }).__typename).toBe('NotFoundError');
    } finally {
      await gql(
        'alice',
        'mutation { updateNamespace(input: { path: "team", visibility: PRIVATE }) { __typename } }',
      );
    }
    expect((await gql('alice', LIST, { path: 'team' })).data!.namespace).toMatchObject({
      variables: expect.arrayContaining([expect.objectContaining({ key: 'KEEP' })]),
    });
  });

  it('refuses a token without the variable scopes, and anonymous callers', async () => {
    const token = async (scopes: string[]) => {
      const res = await gql(
        'alice',
        'mutation ($s: [String!]!) { createToken(input: { name: "t", scopes: $s }) { ... on CreateTokenSuccess { token } } }',
        { s: scopes },
      );
      return (res.data!.createToken as { token: string }).token;
    };
    const none = await token(['namespace:read']);
    const readOnly = await token(['namespace:read', 'variable:read']);
    const code = (res: Res) => res.errors?.[0]?.extensions?.code;

    expect(code(await create('alice', { ns: 'team', key: 'NOPE', value: 'x' }, none))).toBe('FORBIDDEN');
    expect(code(await create('alice', { ns: 'team', key: 'NOPE', value: 'x' }, readOnly))).toBe('FORBIDDEN');
    expect(code((await t.gql(LIST, { path: 'team' }, none)) as Res)).toBe('FORBIDDEN');
    const listed = (await t.gql(LIST, { path: 'team' }, readOnly)) as Res;
    seen.push(listed);
    expect((listed.data!.namespace as { variables: unknown[] }).variables.length).toBeGreaterThan(0);
    const some = (listed.data!.namespace as { variables: VariableView[] }).variables[0]!;
    expect(code((await t.gql(DELETE, { id: some.id }, readOnly)) as Res)).toBe('FORBIDDEN');

    expect(code((await t.gql(CREATE, { key: 'ANON', value: 'x' }, null)) as Res)).toBe('UNAUTHENTICATED');
  });

  it("gives a build the owner's own variables and keys, then the namespace's, decrypted", async () => {
    const em = t.orm.em.fork();
    const box = createSecretBox('snapshot-test');
    const owner = await em.findOneOrFail(UserSchema, { username: 'carol' });
    const other = await em.findOneOrFail(UserSchema, { username: 'alice' });
    await gql('alice', 'mutation { createNamespace(input: { path: "snap" }) { __typename } }');
    const ns = await em.findOneOrFail(NamespaceSchema, { path: 'snap', owner: other.id });
    const key = (name: string) =>
      `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA${name}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const ok = <T>(outcome: { ok: boolean; value?: T }) => expect(outcome.ok).toBe(true);
    ok(await createVariable(em, box, { owner, namespace: null }, { key: 'A', value: 'own', masked: false }));
    ok(
      await createVariable(
        em,
        box,
        { owner, namespace: null },
        { key: 'S', value: 'own-secret', masked: true },
      ),
    );
    // Created by someone else in the namespace: the build still gets it.
    ok(
      await createVariable(
        em,
        box,
        { owner: other, namespace: ns },
        { key: 'A', value: 'ns', masked: false },
      ),
    );
    ok(await createKey(em, box, { owner, namespace: null }, { name: 'deploy', privateKey: key('own') }));
    ok(
      await createKey(
        em,
        box,
        { owner: other, namespace: ns },
        { name: 'deploy', privateKey: key('ns'), config: 'Host x' },
      ),
    );
    ok(
      await createKey(em, box, { owner: other, namespace: ns }, { name: 'other', privateKey: key('other') }),
    );

    const own = await buildSecrets(em, box, owner.id, null);
    expect(own.variables).toEqual([
      { key: 'A', value: 'own', masked: false },
      { key: 'S', value: 'own-secret', masked: true },
    ]);
    expect(own.keys).toEqual([{ name: 'deploy', privateKey: key('own'), config: '' }]);

    const inNamespace = await buildSecrets(em, box, owner.id, ns.id);
    expect(inNamespace.variables.map((v) => `${v.key}=${v.value}`)).toEqual([
      'A=own',
      'S=own-secret',
      'A=ns',
    ]);
    // Later wins for a key of the same name: the namespace's replaces the owner's.
    expect(inNamespace.keys).toEqual([
      { name: 'deploy', privateKey: key('ns'), config: 'Host x' },
      { name: 'other', privateKey: key('other'), config: '' },
    ]);
  });
});

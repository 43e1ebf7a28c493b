import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';

describe.runIf(available('postgres'))('namespaces', () => {
  let t: TestApp;
  let alice: string;
  let bob: string;
  beforeAll(async () => {
    t = await startTestApp();
    alice = await signUpAndLogIn(t, 'alice');
    bob = await signUpAndLogIn(t, 'bob');
  });
  afterAll(async () => {
    await t?.stop();
  });

  const submit = (token: string | null, manifest: string, namespace?: string) =>
    t.gql<{
      submitBuild: {
        __typename: string;
        build?: { number: number; namespace: { path: string } | null };
        problems?: { path: string; line: number | null; message: string }[];
      };
    }>(
      `mutation ($m: String!, $ns: String) { submitBuild(input: { manifest: $m, namespace: $ns }) {
        __typename ... on SubmitBuildSuccess { build { number namespace { path } } }
        ... on ManifestError { problems { path line message } } } }`,
      { m: manifest, ns: namespace ?? null },
      token,
    );
  const MANIFEST = 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [echo]}]\n';

  it("creates a manifest's missing namespace private, with its parents, and numbers builds per namespace", async () => {
    const first = await submit(alice, `namespace: acme/api\n${MANIFEST}`);
    expect(first.data!.submitBuild.build).toEqual({ number: 1, namespace: { path: 'acme/api' } });
    const second = await submit(alice, MANIFEST, 'acme/api');
    expect(second.data!.submitBuild.build!.number).toBe(2);
    const other = await submit(alice, MANIFEST, 'acme');
    expect(other.data!.submitBuild.build!.number).toBe(1);
    const ns = await t.gql<{ namespace: { visibility: string; level: number; parent: { path: string } } }>(
      '{ namespace(path: "acme/api") { visibility level parent { path } } }',
      {},
      alice,
    );
    expect(ns.data!.namespace).toEqual({ visibility: 'PRIVATE', level: 2, parent: { path: 'acme' } });
  });

  it("refuses to submit into another user's namespace, at the manifest's namespace line", async () => {
    const res = await submit(bob, `namespace: alice@acme\n${MANIFEST}`);
    expect(res.data!.submitBuild.__typename).toBe('ManifestError');
    expect(res.data!.submitBuild.problems).toEqual([
      { path: 'namespace', line: 1, message: 'no namespace alice@acme that you may use' },
    ]);
  });

  it('refuses paths deeper than 20 levels or with bad names', async () => {
    const deep = Array.from({ length: 21 }, (_, i) => `n${i}`).join('/');
    for (const path of [deep, 'bad name', 'a//b']) {
      const res = await t.gql<{ createNamespace: { __typename: string } }>(
        'mutation ($p: String!) { createNamespace(input: { path: $p }) { __typename } }',
        { p: path },
        alice,
      );
      expect(res.data!.createNamespace.__typename).toBe('InputError');
    }
  });

  it('cascades visibility from the root, so public builds are readable without a token', async () => {
    const before = await t.gql<{ builds: { edges: unknown[] } }>(
      '{ builds(namespace: "alice@acme/api") { edges { cursor } } }',
      {},
      null,
    );
    expect(before.data!.builds.edges).toEqual([]);
    await t.gql(
      'mutation { updateNamespace(input: { path: "acme", visibility: PUBLIC }) { __typename } }',
      {},
      alice,
    );
    const child = await t.gql<{ namespace: { visibility: string } }>(
      '{ namespace(path: "alice@acme/api") { visibility } }',
      {},
      null,
    );
    expect(child.data!.namespace.visibility).toBe('PUBLIC');
    const after = await t.gql<{ builds: { edges: unknown[] } }>(
      '{ builds(namespace: "alice@acme/api") { edges { cursor } } }',
      {},
      null,
    );
    expect(after.data!.builds.edges).toHaveLength(2);
    await t.gql(
      'mutation { updateNamespace(input: { path: "acme", visibility: PRIVATE }) { __typename } }',
      {},
      alice,
    );
  });

  it('shows an invite to its invitee, who joins the whole tree on accepting', async () => {
    await t.gql(
      'mutation { inviteCollaborator(input: { path: "acme", username: "bob" }) { __typename } }',
      {},
      alice,
    );
    const invites = await t.gql<{
      viewer: {
        invites: {
          id: string;
          inviter: { username: string };
          namespace: { path: string; owner: { username: string } };
        }[];
      };
    }>('{ viewer { invites { id inviter { username } namespace { path owner { username } } } } }', {}, bob);
    expect(invites.errors).toBeUndefined();
    const [invite] = invites.data!.viewer.invites;
    expect(invite).toMatchObject({
      inviter: { username: 'alice' },
      namespace: { path: 'acme', owner: { username: 'alice' } },
    });
    // Before accepting, the child stays hidden and submitting is refused.
    expect((await submit(bob, MANIFEST, 'alice@acme/api')).data!.submitBuild.__typename).toBe(
      'ManifestError',
    );
    await t.gql(`mutation { acceptInvite(input: { id: "${invite!.id}" }) { __typename } }`, {}, bob);
    const res = await submit(bob, MANIFEST, 'alice@acme/api');
    expect(res.data!.submitBuild.build).toEqual({ number: 3, namespace: { path: 'acme/api' } });
    const namespaces = await t.gql<{ namespaces: { path: string }[] }>('{ namespaces { path } }', {}, bob);
    expect(namespaces.data!.namespaces).toEqual([{ path: 'acme' }]);
  });
});

import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../test/testkit/app.ts';
import { available } from '../../test/testkit/services.ts';
import { localId } from '../global-id.ts';

type Res = { data?: Record<string, unknown> | null; errors?: unknown[] };

async function* bytes(text: string) {
  yield Buffer.from(text);
}

describe.runIf(available('postgres'))('the curator', () => {
  let t: TestApp;
  const tokens: Record<'alice' | 'bob' | 'carol', string> = { alice: '', bob: '', carol: '' };
  /** Artifact ids by label, and their blobs. */
  const ids: Record<string, string> = {};
  const shas: Record<string, string> = {};
  /** Build global ids by label. */
  const builds: Record<string, string> = {};

  const gql = async (who: keyof typeof tokens, query: string, variables: Record<string, unknown> = {}) => {
    const res = (await t.gql(query, variables, tokens[who])) as Res;
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data!;
  };

  /** A build of `who` (never run: no runner here) and its one job's id. */
  async function submit(
    who: keyof typeof tokens,
  ): Promise<{ buildId: string; jobId: string; globalId: string }> {
    const data = await gql(
      who,
      `mutation ($m: String!) { submitBuild(input: { manifest: $m }) {
        ... on SubmitBuildSuccess { build { id stages { jobs { id } } } } } }`,
      { m: 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [echo]}]\n' },
    );
    const build = (data.submitBuild as { build: { id: string; stages: { jobs: { id: string }[] }[] } }).build;
    return {
      globalId: build.id,
      buildId: localId(build.id, 'Build')!,
      jobId: localId(build.stages[0]!.jobs[0]!.id, 'Job')!,
    };
  }

  /** An artifact with `content`, recorded as `size` bytes and created `minutesAgo`. */
  async function artifact(
    label: string,
    build: { buildId: string; jobId: string },
    content: string,
    size: number,
    minutesAgo: number,
  ) {
    const result = await t.app.services.artifacts.upload(t.orm.em.fork(), {
      ...build,
      name: `${label}.bin`,
      content: bytes(content),
    });
    if (!result.ok) throw new Error(result.reason);
    ids[label] = result.artifact.id;
    shas[label] = result.artifact.sha256;
    await t.orm.em
      .fork()
      .execute(`update artifacts set size = ?, created_at = now() - (? * interval '1 minute') where id = ?`, [
        size,
        minutesAgo,
        result.artifact.id,
      ]);
  }

  const live = async () => {
    const rows = await t.orm.em
      .fork()
      .execute<{ id: string }[]>('select id from artifacts where deleted_at is null');
    const byId = new Map(Object.entries(ids).map(([label, id]) => [id, label]));
    return rows.map((r) => byId.get(r.id)).sort();
  };

  beforeAll(async () => {
    t = await startTestApp();
    for (const who of ['alice', 'bob', 'carol'] as const) tokens[who] = await signUpAndLogIn(t, who);
    // Limits set the way users set them: alice keeps 100 bytes, bob everything, carol the default.
    for (const [who, bytes] of [
      ['alice', 100],
      ['bob', 0],
    ] as const) {
      const set = await gql(
        who,
        'mutation ($bytes: Float!) { setArtifactCleanup(input: { bytes: $bytes }) { __typename ... on SetArtifactCleanupSuccess { user { artifactCleanupBytes } } } }',
        { bytes },
      );
      expect(set).toEqual({
        setArtifactCleanup: {
          __typename: 'SetArtifactCleanupSuccess',
          user: { artifactCleanupBytes: bytes },
        },
      });
    }

    const old = await submit('alice');
    const pinned = await submit('alice');
    const recent = await submit('alice');
    builds.old = old.globalId;
    builds.pinned = pinned.globalId;
    builds.recent = recent.globalId;
    // Alice's artifacts, newest first: 40 + 50 fit in 100; the pinned 500 neither counts nor goes; 20
    // passes the limit, and everything older goes with it, even what would still fit.
    await artifact('a6', recent, 'six', 40, 1);
    await artifact('a5', recent, 'shared', 50, 2);
    await artifact('a4', pinned, 'pinned', 500, 3);
    await artifact('a3', old, 'three', 20, 4);
    await artifact('a2', old, 'shared', 5, 5);
    await artifact('a1', old, 'one', 1, 6);
    // Bob has no limit; carol has the default 1 GiB.
    await artifact('b1', await submit('bob'), 'bob', 10 * 1024 ** 3, 10);
    await artifact('c1', await submit('carol'), 'carol', 1000, 10);
    await gql('alice', 'mutation ($id: ID!) { pinBuild(input: { buildId: $id }) { __typename } }', {
      id: builds.pinned,
    });
  });

  afterAll(async () => {
    await t?.stop();
  });

  it("deletes each user's artifacts past the limit, newest kept first, never a pinned build's", async () => {
    expect(await live()).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'b1', 'c1']);
    const result = await t.app.maintenance.curate();
    expect(result.artifacts).toBe(3);
    expect(await live()).toEqual(['a4', 'a5', 'a6', 'b1', 'c1']);
    // Soft-deleted: the rows stay, out of the API, with their size and hashes.
    const rows = await t.orm.em
      .fork()
      .execute<{ size: string; deleted_at: Date | null }[]>(
        'select size, deleted_at from artifacts where id = ?',
        [ids.a3],
      );
    expect(rows[0]).toMatchObject({ size: '20' });
    expect(rows[0]!.deleted_at).not.toBeNull();
    const old = await gql('alice', 'query ($id: ID!) { build(id: $id) { artifacts { name } } }', {
      id: builds.old,
    });
    expect(old.build).toEqual({ artifacts: [] });
    const pinned = await gql('alice', 'query ($id: ID!) { build(id: $id) { pinned artifacts { name } } }', {
      id: builds.pinned,
    });
    expect(pinned.build).toEqual({ pinned: true, artifacts: [{ name: 'a4.bin' }] });
  });

  it("shows a user's cleanup limit to that user only, and refuses one that is not a whole number of bytes", async () => {
    const viewer = '{ viewer { id artifactCleanupBytes } }';
    const carol = (await gql('carol', viewer)) as { viewer: { id: string; artifactCleanupBytes: number } };
    expect(carol.viewer.artifactCleanupBytes).toBe(1024 ** 3);
    // Bob (not an admin: alice signed up first) sees carol's name, not her setting.
    const seen = (await t.gql(
      'query ($id: ID!) { node(id: $id) { ... on User { username artifactCleanupBytes } } }',
      { id: carol.viewer.id },
      tokens.bob,
    )) as Res;
    expect(seen.errors).toBeDefined();
    for (const bytes of [-1, 1.5]) {
      const refused = (await gql(
        'alice',
        'mutation ($bytes: Float!) { setArtifactCleanup(input: { bytes: $bytes }) { __typename ... on InputError { path } } }',
        { bytes },
      )) as { setArtifactCleanup: unknown };
      expect(refused.setArtifactCleanup).toEqual({ __typename: 'InputError', path: 'bytes' });
    }
    expect(await gql('alice', '{ viewer { artifactCleanupBytes } }')).toEqual({
      viewer: { artifactCleanupBytes: 100 },
    });
  });

  it('deletes the blobs of deleted artifacts unless another row still refers to them', async () => {
    expect(await t.files.exists(shas.a3!)).toBe(false);
    expect(await t.files.exists(shas.a1!)).toBe(false);
    // a2's bytes are a5's too.
    expect(shas.a2).toBe(shas.a5);
    expect(await t.files.exists(shas.a2!)).toBe(true);
    for (const label of ['a4', 'a5', 'a6', 'b1', 'c1']) expect(await t.files.exists(shas[label]!)).toBe(true);
    expect(await t.app.maintenance.curate()).toEqual({ artifacts: 0, blobs: 0 });
  });

  it("lets the curator take an unpinned build's artifacts", async () => {
    const res = await gql(
      'alice',
      'mutation ($id: ID!) { unpinBuild(input: { buildId: $id }) { ... on UnpinBuildSuccess { build { pinned } } } }',
      {
        id: builds.pinned,
      },
    );
    expect(res.unpinBuild).toEqual({ build: { pinned: false } });
    expect((await t.app.maintenance.curate()).artifacts).toBe(1);
    expect(await live()).toEqual(['a5', 'a6', 'b1', 'c1']);
    expect(await t.files.exists(shas.a4!)).toBe(false);
  });

  it('removes blobs that no row refers to once they are a minute old', async () => {
    const orphan = await t.files.put(bytes('nobody refers to this'));
    const fresh = await t.files.put(bytes('just written'));
    const old = new Date(Date.now() - 5 * 60_000);
    await utimes(join(t.filesDir, orphan.sha256.slice(0, 2), orphan.sha256), old, old);
    expect(await t.app.maintenance.curate()).toEqual({ artifacts: 0, blobs: 1 });
    expect(await t.files.exists(orphan.sha256)).toBe(false);
    expect(await t.files.exists(fresh.sha256)).toBe(true);
  });
});

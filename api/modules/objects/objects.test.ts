import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { sniffContentType } from './objects.service.ts';

type Res = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};
type ObjectView = {
  id: string;
  name: string;
  size: number;
  contentType: string;
  md5: string;
  sha256: string;
};

const UPLOAD = `mutation ($ns: String, $name: String!, $file: File!) {
  uploadObject(input: { namespace: $ns, name: $name, file: $file }) {
    __typename
    ... on UploadObjectSuccess { object { id name size contentType md5 sha256 } }
    ... on Error { message }
    ... on InputError { path }
  }
}`;
const DELETE = `mutation ($id: ID!) {
  deleteObject(input: { id: $id }) { __typename ... on DeleteObjectSuccess { deletedId } ... on Error { message } }
}`;
const LIST = 'query ($path: String!) { namespace(path: $path) { objects { id name size } } }';
const OWN = '{ viewer { objects { id name size } } }';
const LIMIT = 4096;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe.runIf(available('postgres'))('objects', () => {
  let t: TestApp;
  const tokens: Record<'alice' | 'bob' | 'carol', string> = { alice: '', bob: '', carol: '' };

  const upload = (
    who: keyof typeof tokens,
    vars: { ns?: string; name: string },
    file: { content: string | Buffer; name?: string; type?: string },
  ) =>
    t.upload(
      UPLOAD,
      { ns: vars.ns ?? null, name: vars.name, file: null },
      { file: { name: file.name ?? vars.name, content: file.content, type: file.type } },
      tokens[who],
    ) as Promise<Res>;
  const uploaded = (res: Res) => (res.data!.uploadObject as { object: ObjectView }).object;
  const gql = (who: keyof typeof tokens, query: string, variables: Record<string, unknown> = {}) =>
    t.gql(query, variables, tokens[who]) as Promise<Res>;
  const blobs = async () => {
    const found: string[] = [];
    for await (const blob of t.files.list()) found.push(blob.sha256);
    return found.sort();
  };

  beforeAll(async () => {
    t = await startTestApp({ objectMaxBytes: LIMIT });
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
    await t?.stop();
  });

  it('uploads a file to a namespace with its size, content type and hashes, listed for members only', async () => {
    const content = 'API_URL=https://example.com\n';
    const res = await upload('carol', { ns: 'alice@team', name: 'prod.env' }, { content });
    expect(res.errors).toBeUndefined();
    expect(uploaded(res)).toMatchObject({
      name: 'prod.env',
      size: content.length,
      contentType: 'text/plain; charset=utf-8',
      md5: createHash('md5').update(content).digest('hex'),
      sha256: sha256(content),
    });
    const listed = await gql('alice', LIST, { path: 'team' });
    expect(listed.data!.namespace).toEqual({
      objects: [{ id: uploaded(res).id, name: 'prod.env', size: content.length }],
    });
    // Bob may not see the private namespace, so not its objects either.
    expect((await gql('bob', LIST, { path: 'alice@team' })).data!.namespace).toBeNull();
  });

  it("keeps a user's own objects to that user", async () => {
    const res = await upload('bob', { name: 'mine.bin' }, { content: Buffer.from([0x1f, 0x8b, 8, 0]) });
    expect(uploaded(res)).toMatchObject({ name: 'mine.bin', contentType: 'application/gzip' });
    expect((await gql('bob', OWN)).data!.viewer).toEqual({
      objects: [{ id: uploaded(res).id, name: 'mine.bin', size: 4 }],
    });
    expect((await gql('alice', OWN)).data!.viewer).toEqual({ objects: [] });
  });

  it('serves an object at its downloadUrl to those who may see it, with object:read', async () => {
    const content = Buffer.from('#!/bin/sh\necho deploy\n');
    const object = uploaded(await upload('alice', { ns: 'team', name: 'deploy.sh' }, { content }));
    const listed = await gql(
      'carol',
      'query ($id: ID!) { node(id: $id) { ... on Object { downloadUrl } } }',
      {
        id: object.id,
      },
    );
    const path = (listed.data!.node as { downloadUrl: string }).downloadUrl;
    const base = await t.listen();
    const get = (headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
    const collaborator = await get({ authorization: `Bearer ${tokens.carol}` });
    expect(collaborator.status).toBe(200);
    expect(Buffer.from(await collaborator.arrayBuffer())).toEqual(content);
    expect(collaborator.headers.get('content-type')).toBe(object.contentType);
    const ranged = await get({ authorization: `Bearer ${tokens.alice}`, range: 'bytes=0-8' });
    expect(ranged.status).toBe(206);
    expect(await ranged.text()).toBe('#!/bin/sh');
    expect((await get({ authorization: `Bearer ${tokens.bob}` })).status).toBe(404);
    expect((await get()).status).toBe(401);
    const scoped = await gql(
      'alice',
      'mutation { createToken(input: { name: "builds only", scopes: ["build:read"] }) { ... on CreateTokenSuccess { token } } }',
    );
    const buildsOnly = (scoped.data!.createToken as { token: string }).token;
    expect((await get({ authorization: `Bearer ${buildsOnly}` })).status).toBe(403);
    expect(
      (await fetch(`${base}/objects/not-an-id`, { headers: { authorization: `Bearer ${tokens.alice}` } }))
        .status,
    ).toBe(404);
    await gql('alice', DELETE, { id: object.id });
    expect((await get({ authorization: `Bearer ${tokens.alice}` })).status).toBe(404);
  });

  it('refuses bad names, a name taken in the same scope, and files over the limit', async () => {
    const bad = await upload('alice', { ns: 'team', name: '../etc/passwd' }, { content: 'x' });
    expect(bad.data!.uploadObject).toMatchObject({ __typename: 'InputError', path: 'name' });
    const taken = await upload('alice', { ns: 'team', name: 'prod.env' }, { content: 'other' });
    expect(taken.data!.uploadObject).toMatchObject({ __typename: 'InputError', path: 'name' });
    // The same name in another scope is another object.
    const own = await upload('alice', { name: 'prod.env' }, { content: 'other' });
    expect(own.data!.uploadObject).toMatchObject({ __typename: 'UploadObjectSuccess' });
    const large = await upload(
      'alice',
      { ns: 'team', name: 'large.bin' },
      { content: Buffer.alloc(LIMIT + 1) },
    );
    expect(large.data!.uploadObject).toMatchObject({ __typename: 'InputError', path: 'file' });
    expect((await gql('alice', LIST, { path: 'team' })).data!.namespace).toMatchObject({
      objects: [{ name: 'prod.env' }],
    });
  });

  it('refuses an upload far over the limit before reading it', async () => {
    const url = new URL(`${await t.listen()}/graphql`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const request = http.request(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tokens.alice}`,
          'content-type': 'multipart/form-data; boundary=x',
          'content-length': String(LIMIT + 2 * 1024 * 1024),
        },
      });
      request.once('response', (response) => {
        resolve(response.statusCode);
        request.destroy();
      });
      request.once('error', reject);
      // Only the start of the announced body: the answer must not wait for the rest.
      request.write(Buffer.alloc(16));
    });
    expect(status).toBe(413);
  });

  it('stores equal files once and deletes a blob only when no object refers to it any more', async () => {
    const content = `shared ${Date.now()}`;
    const before = await blobs();
    const first = uploaded(await upload('alice', { ns: 'team', name: 'one.txt' }, { content }));
    const second = uploaded(await upload('bob', { name: 'two.txt' }, { content }));
    expect(second.sha256).toBe(first.sha256);
    expect(await blobs()).toEqual([...before, first.sha256].sort());

    const deleted = await gql('alice', DELETE, { id: first.id });
    expect(deleted.data!.deleteObject).toEqual({ __typename: 'DeleteObjectSuccess', deletedId: first.id });
    expect(await t.files.exists(first.sha256)).toBe(true);
    await gql('bob', DELETE, { id: second.id });
    expect(await t.files.exists(first.sha256)).toBe(false);
  });

  it('lets only members delete a namespace object', async () => {
    const object = uploaded(await upload('alice', { ns: 'team', name: 'keep.txt' }, { content: 'keep' }));
    const byBob = await gql('bob', DELETE, { id: object.id });
    expect(byBob.data!.deleteObject).toMatchObject({ __typename: 'NotFoundError' });
    const byCarol = await gql('carol', DELETE, { id: object.id });
    expect(byCarol.data!.deleteObject).toMatchObject({ __typename: 'DeleteObjectSuccess' });
  });
});

describe('content type sniffing', () => {
  it('trusts magic numbers first, then the declared type, then tells text from binary', () => {
    expect(sniffContentType(Buffer.from('\x89PNG\r\n\x1a\n....', 'latin1'), 'text/plain')).toBe('image/png');
    expect(sniffContentType(Buffer.from('%PDF-1.7'))).toBe('application/pdf');
    expect(sniffContentType(Buffer.from('{"a":1}'), 'application/json')).toBe('application/json');
    expect(sniffContentType(Buffer.from('plain words'))).toBe('text/plain; charset=utf-8');
    expect(sniffContentType(Buffer.from([0, 1, 2, 3]))).toBe('application/octet-stream');
    expect(sniffContentType(Buffer.from('x'), 'not a type')).toBe('text/plain; charset=utf-8');
  });
});

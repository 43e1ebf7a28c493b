/**
 * Status badges and the CCTray feed over HTTP, with a real runner: the badge follows the latest
 * finished build's status, is cached with an ETag, and shows a private namespace only with its badge
 * token; the feed has every CCTray field, and hides what the caller may not see.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../../../test/testkit/app.ts';
import { available } from '../../../test/testkit/services.ts';
import { waitFor } from '../../../test/testkit/wait.ts';

const manifest = (command: string) => `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    commands: ['${command}']
`;

describe.runIf(available('postgres'))('badges and the CCTray feed', () => {
  let t: TestApp;
  let url: string;
  let alice: string;
  let dir: string;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;

  const gql = async (query: string, variables: Record<string, unknown> = {}, as: string | null = alice) => {
    const res = await t.gql(query, variables, as);
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    return res.data as Record<string, unknown>;
  };

  /** Submits to `namespace` and waits for the build to finish; returns its number and status. */
  async function build(namespace: string, command: string) {
    const data = await gql(
      `mutation ($m: String!, $ns: String) { submitBuild(input: { manifest: $m, namespace: $ns }) {
        ... on SubmitBuildSuccess { build { id number } } } }`,
      { m: manifest(command), ns: namespace },
    );
    const { id, number } = (data.submitBuild as { build: { id: string; number: number } }).build;
    const status = await waitFor(`build ${id}`, async () => {
      const b = await gql('query ($id: ID!) { build(id: $id) { status } }', { id });
      const s = (b.build as { status: string }).status;
      return ['QUEUED', 'RUNNING'].includes(s) ? null : s;
    });
    return { id, number, status };
  }

  const badge = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/badges/${path}`, { headers });
  const title = (svg: string) => /<title>([^<]*)<\/title>/.exec(svg)?.[1];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-badges-test-'));
    t = await startTestApp();
    url = await t.listen();
    await mkdir(join(dir, 'w'));
    runner = await startTestRunner(t, join(dir, 'w'));
    alice = await signUpAndLogIn(t, 'alice');
    await gql('mutation { createNamespace(input: { path: "open", visibility: PUBLIC }) { __typename } }');
    await gql('mutation { createNamespace(input: { path: "secret" }) { __typename } }');
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("draws a public namespace's latest finished status, cached with an ETag", async () => {
    const none = await badge('alice/open.svg');
    expect(none.status).toBe(200);
    expect(none.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(title(await none.text())).toBe('build: no builds');

    expect((await build('open', 'true')).status).toBe('PASSED');
    const passed = await badge('alice/open.svg');
    expect(passed.headers.get('cache-control')).toMatch(/max-age=60/);
    const etag = passed.headers.get('etag')!;
    expect(title(await passed.text())).toBe('build: passed');
    expect((await badge('alice/open.svg', { 'if-none-match': etag })).status).toBe(304);

    expect((await build('open', 'false')).status).toBe('FAILED');
    const failed = await badge('alice/open.svg', { 'if-none-match': etag });
    expect(failed.status).toBe(200);
    expect(title(await failed.text())).toBe('build: failed');
    expect(failed.headers.get('etag')).not.toBe(etag);
  });

  it("shows a private namespace's badge only with its badge token, which can be regenerated", async () => {
    await build('secret', 'true');
    expect((await badge('alice/secret.svg')).status).toBe(404);
    const data = await gql('{ namespace(path: "secret") { badgeToken } }');
    const token = (data.namespace as { badgeToken: string }).badgeToken;
    expect(token).toMatch(/^kiln_badge_/);
    // The same token on every read; none for a public namespace.
    expect(
      ((await gql('{ namespace(path: "secret") { badgeToken } }')).namespace as { badgeToken: string })
        .badgeToken,
    ).toBe(token);
    expect(
      ((await gql('{ namespace(path: "open") { badgeToken } }')).namespace as { badgeToken: null })
        .badgeToken,
    ).toBeNull();
    const shown = await badge(`alice/secret.svg?token=${token}`);
    expect(shown.status).toBe(200);
    expect(title(await shown.text())).toBe('build: passed');
    expect((await badge(`alice/secret.svg?token=${alice}`)).status).toBe(404);
    const regenerated = await gql(
      'mutation { regenerateBadgeToken(namespace: "secret") { __typename ... on RegenerateBadgeTokenSuccess { badgeToken } } }',
    );
    const fresh = (regenerated.regenerateBadgeToken as { badgeToken: string }).badgeToken;
    expect(fresh).not.toBe(token);
    expect((await badge(`alice/secret.svg?token=${token}`)).status).toBe(404);
    expect((await badge(`alice/secret.svg?token=${fresh}`)).status).toBe(200);
  });

  it('lists each visible project with the CCTray fields, to a bearer or Basic token, and hides private ones', async () => {
    const feed = async (headers: Record<string, string>) => {
      const res = await fetch(`${url}/cctray.xml`, { headers });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/xml/);
      const text = await res.text();
      expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<Projects>/);
      return [...text.matchAll(/<Project ([^>]*)\/>/g)].map((m) =>
        Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])),
      );
    };
    const anonymous = await feed({});
    expect(anonymous.map((p) => p.name)).toEqual(['alice/open']);
    const [open] = anonymous;
    expect(open).toMatchObject({ activity: 'Sleeping', lastBuildStatus: 'Failure', lastBuildLabel: '2' });
    expect(new Date(open!.lastBuildTime!).toISOString()).toBe(open!.lastBuildTime);
    expect(open!.webUrl).toMatch(new RegExp(`^${url}/builds/`));
    const basic = `Basic ${Buffer.from(`alice:${alice}`).toString('base64')}`;
    const mine = await feed({ authorization: basic });
    expect(mine.map((p) => p.name)).toEqual(['alice/open', 'alice/secret']);
    expect(mine[1]).toMatchObject({ lastBuildStatus: 'Success', lastBuildLabel: '1' });
    expect((await feed({ authorization: `Bearer ${alice}` })).length).toBe(2);
    const bad = await fetch(`${url}/cctray.xml`, { headers: { authorization: 'Basic eDp5' } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Basic/);
  });
});

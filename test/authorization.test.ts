/**
 * Who may do what, for every root field of the schema: an anonymous caller, a user outside the
 * namespace, a collaborator, the owner, and the owner's token without the needed scope. The cases are
 * checked against the printed schema's root fields, so a new query, mutation or subscription
 * without a rule here fails this test.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { buildSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildUpdated } from '../runner/contract/messages.ts';
import { collect, signUpAndLogIn, startTestApp, type TestApp } from './testkit/app.ts';
import { makeRemote, signedHeaders } from './testkit/forge.ts';
import { available } from './testkit/services.ts';
import { waitFor } from './testkit/wait.ts';

const WHO = ['anonymous', 'outsider', 'collaborator', 'owner', 'scopeless'] as const;
type Who = (typeof WHO)[number];

/**
 * What came back: `ok` (the field's data), `hidden` (null, an empty list, a NotFoundError or a
 * NOT_FOUND error: as if it did not exist), `refused` (another expected error of the result union),
 * `unauthenticated` or `forbidden` (errors with those codes).
 */
type Outcome = 'ok' | 'hidden' | 'refused' | 'unauthenticated' | 'forbidden';

type Response = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};

function judge(field: string, res: Response, emptyIsHidden = true): Outcome {
  const code = res.errors?.[0]?.extensions?.code;
  if (code === 'UNAUTHENTICATED') return 'unauthenticated';
  if (code === 'FORBIDDEN') return 'forbidden';
  if (code === 'NOT_FOUND') return 'hidden';
  if (res.errors?.length) throw new Error(`${field}: unexpected errors ${JSON.stringify(res.errors)}`);
  const value = res.data?.[field] as unknown;
  if (value === null || value === undefined) return 'hidden';
  if (emptyIsHidden && Array.isArray(value) && value.length === 0) return 'hidden';
  if (typeof value === 'object' && value !== null) {
    const typename = (value as { __typename?: string }).__typename;
    if (typename === 'NotFoundError') return 'hidden';
    if (typename === 'ManifestError' || typename === 'InputError') return 'refused';
    const edges = (value as { edges?: unknown[] }).edges;
    if (emptyIsHidden && Array.isArray(edges) && edges.length === 0) return 'hidden';
  }
  return 'ok';
}

interface Case {
  /** Runs the operation as `who` and says what came back. */
  run(who: Who): Promise<Outcome>;
  expect: Record<Who, Outcome>;
}

const everyone = (o: Outcome): Record<Who, Outcome> => ({
  anonymous: o,
  outsider: o,
  collaborator: o,
  owner: o,
  scopeless: o,
});
/** Only the owner (and its token, when it holds the scope) may. */
const ownerOnly: Record<Who, Outcome> = {
  anonymous: 'unauthenticated',
  outsider: 'hidden',
  collaborator: 'hidden',
  owner: 'ok',
  scopeless: 'forbidden',
};
/** Owner and collaborators may; others do not even see it. */
const members: Record<Who, Outcome> = {
  anonymous: 'hidden',
  outsider: 'hidden',
  collaborator: 'ok',
  owner: 'ok',
  scopeless: 'forbidden',
};

describe.runIf(available('postgres'))('authorization of every query, mutation and subscription', () => {
  let t: TestApp;
  const tokens = {} as Record<Exclude<Who, 'anonymous'>, string>;
  let buildId = '';
  let killedBuildId = '';
  /** Owns the PUBLIC namespace `open`, whose builds everyone may see. */
  let publisher = '';
  const invites = {} as Record<'accept' | 'reject', Partial<Record<Who, string>>>;
  const ownTokens: Partial<Record<Who, string>> = {};
  const secretIds = {
    variable: {} as Partial<Record<Who, string>>,
    key: {} as Partial<Record<Who, string>>,
    object: {} as Partial<Record<Who, string>>,
    repository: {} as Partial<Record<Who, string>>,
    schedule: {} as Partial<Record<Who, string>>,
    webhook: {} as Partial<Record<Who, string>>,
  };
  /** A schedule and a webhook of the owner's namespace, and a delivery of that webhook. */
  let scheduleId = '';
  let webhookId = '';
  let deliveryId = '';
  /** A git repository of the owner's namespace, and a ping a forge posted for it. */
  let gitDir = '';
  let remoteUrl = '';
  let repositoryId = '';
  let forgeEventId = '';
  const KEY =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
  /** Variables and keys: owner and collaborators manage them; others do not see the namespace. */
  const secretRule: Record<Who, Outcome> = { ...members, anonymous: 'unauthenticated' };

  const token = (who: Who) => (who === 'anonymous' ? null : tokens[who]);
  const gql = (who: Who, query: string, variables: Record<string, unknown> = {}) =>
    t.gql(query, variables, token(who)) as Promise<Response>;

  const MANIFEST = 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [echo]}]\n';
  /** Submits a build to `namespace` with `as`'s token; returns its id. */
  async function submitTo(namespace: string, as: string): Promise<string> {
    const res = (await t.gql(
      `mutation ($m: String!, $ns: String!) { submitBuild(input: { manifest: $m, namespace: $ns }) {
        ... on SubmitBuildSuccess { build { id } } } }`,
      { m: MANIFEST, ns: namespace },
      as,
    )) as Response;
    return (res.data!.submitBuild as { build: { id: string } }).build.id;
  }

  const refusal = (field: string, errors: unknown[]): Outcome | null => {
    const error = errors[0] as { extensions?: { code?: string } } | undefined;
    return error ? judge(field, { errors: [{ message: '', extensions: error.extensions }] }) : null;
  };

  /**
   * A subscription is judged by what arrives, never by what did not arrive in a while: refused (an
   * error), ended, or `ok` once it yields. One that may stay silent gets a `probe`, something it
   * would be told of, sent until the subscription is refused, ends or hears it.
   */
  async function subscribe(
    who: Who,
    field: string,
    query: string,
    variables: Record<string, unknown>,
    probe?: () => Promise<void>,
  ): Promise<Outcome> {
    await t.listen();
    let settled = false;
    const sub = collect<Record<string, unknown>>(
      t.ws(token(who)),
      query,
      variables,
      (items) => items.length > 0,
    );
    void sub.done.then(() => {
      settled = true;
    });
    await waitFor(`${who}'s ${field} to be refused, to end or to yield`, async () => {
      if (settled || sub.errors.length > 0) return true;
      await probe?.();
      return false;
    });
    sub.stop();
    return refusal(field, sub.errors) ?? 'ok';
  }

  beforeAll(async () => {
    t = await startTestApp({ allowPrivateUrls: true, bootstrapTokenFile: '.kiln/bootstrap-token' });
    for (const who of ['owner', 'collaborator', 'outsider'] as const)
      tokens[who] = await signUpAndLogIn(t, who);
    const owner = (q: string, v: Record<string, unknown> = {}) =>
      t.gql(q, v, tokens.owner) as Promise<Response>;
    await owner('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const invite = await owner(
      'mutation { inviteCollaborator(input: { path: "team", username: "collaborator" }) { ... on InviteCollaboratorSuccess { invite { id } } } }',
    );
    const inviteId = (invite.data!.inviteCollaborator as { invite: { id: string } }).invite.id;
    await t.gql(
      `mutation { acceptInvite(input: { id: "${inviteId}" }) { __typename } }`,
      {},
      tokens.collaborator,
    );
    const scoped = await owner(
      'mutation { createToken(input: { name: "no scope", scopes: ["runner:read"] }) { ... on CreateTokenSuccess { token } } }',
    );
    tokens.scopeless = (scoped.data!.createToken as { token: string }).token;
    const submit = async () => {
      const res = await owner(
        `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "team" }) {
          ... on SubmitBuildSuccess { build { id } } } }`,
        { m: 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [echo]}]\n' },
      );
      return (res.data!.submitBuild as { build: { id: string } }).build.id;
    };
    buildId = await submit();
    killedBuildId = await submit();
    await owner('mutation ($id: ID!) { killBuild(input: { buildId: $id }) { __typename } }', {
      id: killedBuildId,
    });
    publisher = await signUpAndLogIn(t, 'publisher');
    await t.gql(
      'mutation { createNamespace(input: { path: "open", visibility: PUBLIC }) { __typename } }',
      {},
      publisher,
    );
    // Invites for each signed-in principal to answer, from another user's namespaces.
    const inviter = await signUpAndLogIn(t, 'inviter');
    for (const kind of ['accept', 'reject'] as const) {
      invites[kind] = {};
      await t.gql(`mutation { createNamespace(input: { path: "${kind}" }) { __typename } }`, {}, inviter);
      for (const who of ['outsider', 'collaborator', 'owner'] as const) {
        const res = (await t.gql(
          `mutation { inviteCollaborator(input: { path: "${kind}", username: "${who}" }) {
            ... on InviteCollaboratorSuccess { invite { id } } } }`,
          {},
          inviter,
        )) as Response;
        invites[kind][who] = (res.data!.inviteCollaborator as { invite: { id: string } }).invite.id;
      }
      invites[kind].scopeless = invites[kind].owner;
    }
    for (const who of WHO) {
      const v = await owner(
        `mutation { createVariable(input: { namespace: "team", key: "DEL_${who}", value: "v" }) {
          ... on CreateVariableSuccess { variable { id } } } }`,
      );
      secretIds.variable[who] = (v.data!.createVariable as { variable: { id: string } }).variable.id;
      const k = await owner(
        `mutation ($k: String!) { createKey(input: { namespace: "team", name: "del${who}", privateKey: $k }) {
          ... on CreateKeySuccess { key { id } } } }`,
        { k: KEY },
      );
      secretIds.key[who] = (k.data!.createKey as { key: { id: string } }).key.id;
      const o = (await t.upload(
        `mutation ($f: File!) { uploadObject(input: { namespace: "team", name: "del${who}", file: $f }) {
          ... on UploadObjectSuccess { object { id } } } }`,
        { f: null },
        { f: { name: 'f.txt', content: 'x' } },
        tokens.owner,
      )) as Response;
      secretIds.object[who] = (o.data!.uploadObject as { object: { id: string } }).object.id;
      await owner(`mutation { createNamespace(input: { path: "gone${who}" }) { __typename } }`);
      const made = await owner(
        `mutation { createToken(input: { name: "revoke ${who}", scopes: [] }) { ... on CreateTokenSuccess { accessToken { id } } } }`,
      );
      ownTokens[who] = (made.data!.createToken as { accessToken: { id: string } }).accessToken.id;
    }
    gitDir = await mkdtemp(path.join(tmpdir(), 'kiln-authz-git-'));
    const remote = await makeRemote(gitDir);
    await remote.commit({ '.kiln.yml': MANIFEST }, 'a manifest');
    remoteUrl = remote.url;
    const connect = async (name: string) => {
      const res = await owner(
        `mutation ($url: String!, $name: String!) { createRepository(input: { namespace: "team", cloneUrl: $url, name: $name }) {
          ... on CreateRepositorySuccess { webhookSecret repository { id webhookUrl } } } }`,
        { url: remoteUrl, name },
      );
      return res.data!.createRepository as {
        webhookSecret: string;
        repository: { id: string; webhookUrl: string };
      };
    };
    for (const who of WHO) secretIds.repository[who] = (await connect(`del${who}`)).repository.id;
    const shared = await connect('shared');
    repositoryId = shared.repository.id;
    const url = await t.listen();
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    const pinged = await fetch(shared.repository.webhookUrl.replace(/^http:\/\/[^/]+/, url), {
      method: 'POST',
      headers: signedHeaders('github', 'ping', body, shared.webhookSecret, 'ping-1'),
      body,
    });
    forgeEventId = ((await pinged.json()) as { event: string }).event;
    const schedule = async (name: string) => {
      const res = await owner(
        `mutation ($m: String!, $name: String!) { createSchedule(input: { namespace: "team", name: $name, cron: "@daily", manifest: $m }) {
          ... on CreateScheduleSuccess { schedule { id } } } }`,
        { m: MANIFEST, name },
      );
      return (res.data!.createSchedule as { schedule: { id: string } }).schedule.id;
    };
    scheduleId = await schedule('shared');
    const webhook = async () => {
      const res = await owner(
        `mutation { createWebhook(input: { namespace: "team", url: "http://127.0.0.1:9/hook", subscription: "subscription { buildsUpdated { id } }" }) {
          ... on CreateWebhookSuccess { webhook { id } } } }`,
      );
      return (res.data!.createWebhook as { webhook: { id: string } }).webhook.id;
    };
    webhookId = await webhook();
    for (const who of WHO) {
      secretIds.schedule[who] = await schedule(`del${who}`);
      secretIds.webhook[who] = await webhook();
    }
    const delivery = crypto.randomUUID();
    await t.orm.em
      .fork()
      .execute(
        `insert into webhook_deliveries (id, webhook_id, payload, state, attempts, created_at) values (?, ?, '{}', 'failed', 1, now())`,
        [delivery, decodeGlobalID(webhookId).id],
      );
    deliveryId = Buffer.from(`WebhookDelivery:${delivery}`).toString('base64');
  });

  afterAll(async () => {
    await t?.stop();
    if (gitDir) await rm(gitDir, { recursive: true, force: true });
  });

  const cases: Record<string, Case> = {
    'Query.viewer': {
      run: async (who) => judge('viewer', await gql(who, '{ viewer { username } }')),
      expect: { ...everyone('ok'), anonymous: 'hidden' },
    },
    'Query.build': {
      run: async (who) =>
        judge('build', await gql(who, 'query ($id: ID!) { build(id: $id) { id } }', { id: buildId })),
      expect: members,
    },
    'Query.builds': {
      run: async (who) =>
        judge('builds', await gql(who, '{ builds(namespace: "owner@team") { edges { node { id } } } }')),
      expect: members,
    },
    'Query.node': {
      run: async (who) =>
        judge('node', await gql(who, 'query ($id: ID!) { node(id: $id) { id } }', { id: buildId })),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'forbidden',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Query.runners': {
      // Admins or runner:read: the scopeless token holds only runner:read, sessions hold every scope.
      run: async (who) => judge('runners', await gql(who, '{ runners { name online } }'), false),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated' },
    },
    'Query.namespace': {
      run: async (who) => judge('namespace', await gql(who, '{ namespace(path: "owner@team") { path } }')),
      expect: members,
    },
    'Query.namespaces': {
      run: async (who) => {
        const res = await gql(who, '{ namespaces { path owner { username } } }');
        const outcome = judge('namespaces', res);
        if (outcome !== 'ok') return outcome;
        const team = (res.data!.namespaces as { path: string; owner: { username: string } }[]).some(
          (n) => n.path === 'team' && n.owner.username === 'owner',
        );
        return team ? 'ok' : 'hidden';
      },
      expect: { ...members, anonymous: 'unauthenticated' },
    },
    'Query.bootstrapTokenFile': {
      // The sign-in page names it before anyone has signed in.
      run: async (who) => judge('bootstrapTokenFile', await gql(who, '{ bootstrapTokenFile }')),
      expect: everyone('ok'),
    },
    'Query.scopes': {
      run: async (who) => judge('scopes', await gql(who, '{ scopes { name description } }')),
      expect: everyone('ok'),
    },
    'Mutation.signUp': {
      run: async (who) =>
        judge(
          'signUp',
          await gql(
            who,
            `mutation { signUp(input: { username: "new${who}", password: "long enough" }) { __typename } }`,
          ),
        ),
      expect: everyone('ok'),
    },
    'Mutation.logIn': {
      run: async (who) =>
        judge(
          'logIn',
          await gql(
            who,
            'mutation { logIn(input: { username: "inviter", password: "password-inviter" }) { __typename } }',
          ),
        ),
      expect: everyone('ok'),
    },
    'Mutation.logOut': {
      run: async (who) => {
        // A fresh session of that user, so the shared ones stay valid.
        const fresh =
          who === 'anonymous' || who === 'scopeless'
            ? token(who)
            : (
                (
                  (await t.gql(
                    `mutation { logIn(input: { username: "${who}", password: "password-${who}" }) { ... on LogInSuccess { token } } }`,
                    {},
                    null,
                  )) as Response
                ).data!.logIn as { token: string }
              ).token;
        return judge('logOut', (await t.gql('mutation { logOut }', {}, fresh)) as Response);
      },
      expect: { ...everyone('ok'), anonymous: 'unauthenticated' },
    },
    'Mutation.changePassword': {
      run: async (who) => {
        const current = who === 'scopeless' ? 'password-owner' : `password-${who}`;
        return judge(
          'changePassword',
          await gql(
            who,
            `mutation { changePassword(input: { currentPassword: "${current}", newPassword: "${current}" }) { __typename } }`,
          ),
        );
      },
      expect: { ...everyone('ok'), anonymous: 'unauthenticated', scopeless: 'refused' },
    },
    'Mutation.createToken': {
      run: async (who) =>
        judge(
          'createToken',
          await gql(who, 'mutation { createToken(input: { name: "x", scopes: [] }) { __typename } }'),
        ),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated' },
    },
    'Mutation.createRunnerToken': {
      run: async (who) =>
        judge(
          'createRunnerToken',
          await gql(who, 'mutation { createRunnerToken(input: { name: "r" }) { __typename } }'),
        ),
      // Admins only; the owner here is not one (the bootstrap admin is).
      expect: { ...everyone('forbidden'), anonymous: 'unauthenticated' },
    },
    'Mutation.revokeToken': {
      run: async (who) =>
        judge(
          'revokeToken',
          await gql(who, 'mutation ($id: ID!) { revokeToken(input: { id: $id }) { __typename } }', {
            id: ownTokens[who],
          }),
        ),
      expect: { ...ownerOnly, scopeless: 'ok' },
    },
    'Mutation.createNamespace': {
      run: async (who) =>
        judge(
          'createNamespace',
          await gql(who, `mutation { createNamespace(input: { path: "made${who}" }) { __typename } }`),
        ),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated', scopeless: 'forbidden' },
    },
    'Mutation.updateNamespace': {
      run: async (who) =>
        judge(
          'updateNamespace',
          await gql(
            who,
            'mutation { updateNamespace(input: { path: "owner@team", visibility: PRIVATE }) { __typename } }',
          ),
        ),
      expect: ownerOnly,
    },
    'Mutation.deleteNamespace': {
      run: async (who) =>
        judge(
          'deleteNamespace',
          await gql(who, `mutation { deleteNamespace(input: { path: "owner@gone${who}" }) { __typename } }`),
        ),
      expect: ownerOnly,
    },
    'Mutation.inviteCollaborator': {
      run: async (who) =>
        judge(
          'inviteCollaborator',
          await gql(
            who,
            'mutation { inviteCollaborator(input: { path: "owner@team", username: "outsider" }) { __typename } }',
          ),
        ),
      expect: ownerOnly,
    },
    'Mutation.removeCollaborator': {
      run: async (who) =>
        judge(
          'removeCollaborator',
          await gql(
            who,
            'mutation { removeCollaborator(input: { path: "owner@team", username: "nobody" }) { __typename } }',
          ),
        ),
      // The owner is told there is no such user: still an answer only the owner gets.
      expect: { ...ownerOnly, owner: 'hidden' },
    },
    'Mutation.acceptInvite': {
      run: async (who) =>
        judge(
          'acceptInvite',
          await gql(who, 'mutation ($id: ID!) { acceptInvite(input: { id: $id }) { __typename } }', {
            id: invites.accept[who] ?? 'none',
          }),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'ok',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.rejectInvite': {
      run: async (who) =>
        judge(
          'rejectInvite',
          await gql(who, 'mutation ($id: ID!) { rejectInvite(input: { id: $id }) { __typename } }', {
            id: invites.reject[who] ?? 'none',
          }),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'ok',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.submitBuild': {
      run: async (who) =>
        judge(
          'submitBuild',
          await gql(
            who,
            `mutation ($m: String!) { submitBuild(input: { manifest: $m, namespace: "owner@team" }) { __typename } }`,
            { m: 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [echo]}]\n' },
          ),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'refused',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.killBuild': {
      run: async (who) =>
        judge(
          'killBuild',
          await gql(who, 'mutation ($id: ID!) { killBuild(input: { buildId: $id }) { __typename } }', {
            id: buildId,
          }),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'hidden',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.setArtifactCleanup': {
      run: async (who) =>
        judge(
          'setArtifactCleanup',
          await gql(who, 'mutation { setArtifactCleanup(input: { bytes: 1073741824 }) { __typename } }'),
        ),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated', scopeless: 'forbidden' },
    },
    'Mutation.pinBuild': {
      run: async (who) =>
        judge(
          'pinBuild',
          await gql(who, 'mutation ($id: ID!) { pinBuild(input: { buildId: $id }) { __typename } }', {
            id: buildId,
          }),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'hidden',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.unpinBuild': {
      run: async (who) =>
        judge(
          'unpinBuild',
          await gql(who, 'mutation ($id: ID!) { unpinBuild(input: { buildId: $id }) { __typename } }', {
            id: buildId,
          }),
        ),
      expect: {
        anonymous: 'unauthenticated',
        outsider: 'hidden',
        collaborator: 'ok',
        owner: 'ok',
        scopeless: 'forbidden',
      },
    },
    'Mutation.uploadObject': {
      run: async (who) =>
        judge(
          'uploadObject',
          (await t.upload(
            `mutation ($f: File!) { uploadObject(input: { namespace: "owner@team", name: "up${who}", file: $f }) { __typename } }`,
            { f: null },
            { f: { name: 'f.txt', content: 'x' } },
            token(who),
          )) as Response,
        ),
      expect: secretRule,
    },
    'Mutation.deleteObject': {
      run: async (who) =>
        judge(
          'deleteObject',
          await gql(who, 'mutation ($id: ID!) { deleteObject(input: { id: $id }) { __typename } }', {
            id: secretIds.object[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.createVariable': {
      run: async (who) =>
        judge(
          'createVariable',
          await gql(
            who,
            `mutation { createVariable(input: { namespace: "owner@team", key: "C_${who}", value: "v" }) { __typename } }`,
          ),
        ),
      expect: secretRule,
    },
    'Mutation.deleteVariable': {
      run: async (who) =>
        judge(
          'deleteVariable',
          await gql(who, 'mutation ($id: ID!) { deleteVariable(input: { id: $id }) { __typename } }', {
            id: secretIds.variable[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.createKey': {
      run: async (who) =>
        judge(
          'createKey',
          await gql(
            who,
            `mutation ($k: String!) { createKey(input: { namespace: "owner@team", name: "c${who}", privateKey: $k }) { __typename } }`,
            { k: KEY },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.deleteKey': {
      run: async (who) =>
        judge(
          'deleteKey',
          await gql(who, 'mutation ($id: ID!) { deleteKey(input: { id: $id }) { __typename } }', {
            id: secretIds.key[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.createRepository': {
      run: async (who) =>
        judge(
          'createRepository',
          await gql(
            who,
            `mutation ($url: String!) { createRepository(input: { namespace: "owner@team", cloneUrl: $url, name: "c${who}" }) { __typename } }`,
            { url: remoteUrl },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.updateRepository': {
      run: async (who) =>
        judge(
          'updateRepository',
          await gql(
            who,
            'mutation ($id: ID!) { updateRepository(input: { id: $id, manifestPaths: [".kiln.yml"] }) { __typename } }',
            {
              id: repositoryId,
            },
          ),
        ),
      expect: secretRule,
    },
    'Query.webhookSubscriptionProblem': {
      // A check of what the caller sends: anyone may ask (a valid document answers null).
      run: async (who) => {
        const res = await gql(
          who,
          'query { webhookSubscriptionProblem(subscription: "subscription { nope }") }',
        );
        return judge('webhookSubscriptionProblem', res);
      },
      expect: everyone('ok'),
    },
    'Query.mailEnabled': {
      run: async (who) => judge('mailEnabled', await gql(who, 'query { mailEnabled }')),
      expect: everyone('ok'),
    },
    'Mutation.setEmail': {
      // This app sends no mail: a signed-in caller is refused with an InputError saying so.
      run: async (who) =>
        judge(
          'setEmail',
          await gql(who, 'mutation { setEmail(input: { email: "x@example.com" }) { __typename } }'),
        ),
      expect: { ...everyone('refused'), anonymous: 'unauthenticated' },
    },
    'Mutation.setNotify': {
      run: async (who) =>
        judge(
          'setNotify',
          await gql(who, 'mutation { setNotify(input: { notify: FAILURES }) { __typename } }'),
        ),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated' },
    },
    'Mutation.requestPasswordReset': {
      // Anyone may ask; the answer says nothing of who has an account.
      run: async (who) =>
        judge(
          'requestPasswordReset',
          await gql(who, 'mutation { requestPasswordReset(input: { login: "owner" }) }'),
        ),
      expect: everyone('ok'),
    },
    'Mutation.resetPassword': {
      run: async (who) =>
        judge(
          'resetPassword',
          await gql(
            who,
            'mutation { resetPassword(input: { token: "nope", password: "long enough pw" }) { __typename } }',
          ),
        ),
      expect: everyone('refused'),
    },
    'Query.validateManifest': {
      // A check of what the caller sends (a valid manifest answers no problems): anyone may ask.
      run: async (who) =>
        judge(
          'validateManifest',
          await gql(who, 'query { validateManifest(manifest: "stages: [") { message } }'),
        ),
      expect: everyone('ok'),
    },
    'Query.scheduleTimes': {
      // A computation on what the caller sends: anyone may ask.
      run: async (who) =>
        judge('scheduleTimes', await gql(who, 'query { scheduleTimes(cron: "@daily") { __typename } }')),
      expect: everyone('ok'),
    },
    'Mutation.createSchedule': {
      run: async (who) =>
        judge(
          'createSchedule',
          await gql(
            who,
            `mutation ($m: String!) { createSchedule(input: { namespace: "owner@team", name: "c${who}", cron: "@daily", manifest: $m }) { __typename } }`,
            { m: MANIFEST },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.updateSchedule': {
      run: async (who) =>
        judge(
          'updateSchedule',
          await gql(
            who,
            'mutation ($id: ID!) { updateSchedule(input: { id: $id, timezone: "UTC" }) { __typename } }',
            {
              id: scheduleId,
            },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.deleteSchedule': {
      run: async (who) =>
        judge(
          'deleteSchedule',
          await gql(who, 'mutation ($id: ID!) { deleteSchedule(input: { id: $id }) { __typename } }', {
            id: secretIds.schedule[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.regenerateBadgeToken': {
      run: async (who) =>
        judge(
          'regenerateBadgeToken',
          await gql(who, 'mutation { regenerateBadgeToken(namespace: "owner@team") { __typename } }'),
        ),
      expect: secretRule,
    },
    'Mutation.createWebhook': {
      run: async (who) =>
        judge(
          'createWebhook',
          await gql(
            who,
            'mutation { createWebhook(input: { namespace: "owner@team", url: "http://127.0.0.1:9/c", subscription: "subscription { buildsUpdated { id } }" }) { __typename } }',
          ),
        ),
      expect: secretRule,
    },
    'Mutation.updateWebhook': {
      run: async (who) =>
        judge(
          'updateWebhook',
          await gql(
            who,
            'mutation ($id: ID!) { updateWebhook(input: { id: $id, active: true }) { __typename } }',
            {
              id: webhookId,
            },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.deleteWebhook': {
      run: async (who) =>
        judge(
          'deleteWebhook',
          await gql(who, 'mutation ($id: ID!) { deleteWebhook(input: { id: $id }) { __typename } }', {
            id: secretIds.webhook[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.redeliverWebhookDelivery': {
      run: async (who) =>
        judge(
          'redeliverWebhookDelivery',
          await gql(
            who,
            'mutation ($id: ID!) { redeliverWebhookDelivery(input: { id: $id }) { __typename } }',
            { id: deliveryId },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.deleteRepository': {
      run: async (who) =>
        judge(
          'deleteRepository',
          await gql(who, 'mutation ($id: ID!) { deleteRepository(input: { id: $id }) { __typename } }', {
            id: secretIds.repository[who],
          }),
        ),
      expect: secretRule,
    },
    'Mutation.triggerRepository': {
      run: async (who) =>
        judge(
          'triggerRepository',
          await gql(
            who,
            'mutation ($id: ID!) { triggerRepository(input: { repositoryId: $id }) { __typename } }',
            {
              id: repositoryId,
            },
          ),
        ),
      expect: secretRule,
    },
    'Mutation.replayForgeEvent': {
      run: async (who) =>
        judge(
          'replayForgeEvent',
          await gql(who, 'mutation ($id: ID!) { replayForgeEvent(input: { id: $id }) { __typename } }', {
            id: forgeEventId,
          }),
        ),
      expect: secretRule,
    },
    'Subscription.buildLog': {
      // The killed build's log is complete: a subscriber that may see it gets it all, then the end.
      run: (who) =>
        subscribe(who, 'buildLog', 'subscription ($id: ID!) { buildLog(buildId: $id) { cursor } }', {
          id: killedBuildId,
        }),
      expect: members,
    },
    'Subscription.buildUpdated': {
      // A change of the build, announced as the ingester announces one, until the subscriber hears it.
      run: (who) =>
        subscribe(
          who,
          'buildUpdated',
          'subscription ($id: ID!) { buildUpdated(buildId: $id) { id } }',
          { id: buildId },
          async () => {
            const { status } = (
              await gql('owner', 'query ($id: ID!) { build(id: $id) { status } }', { id: buildId })
            ).data!.build as { status: BuildUpdated['status'] };
            await t.broker.publish('event', [
              {
                type: 'build.updated',
                buildId: decodeGlobalID(buildId).id,
                status,
                attempt: 0,
                lease: null,
                reason: null,
                startedAt: null,
                finishedAt: null,
                jobs: [],
                at: new Date().toISOString(),
              },
            ]);
          },
        ),
      expect: members,
    },
    'Subscription.runnersUpdated': {
      // It sends the list at once.
      run: (who) => subscribe(who, 'runnersUpdated', 'subscription { runnersUpdated { name } }', {}),
      expect: { ...everyone('ok'), anonymous: 'unauthenticated' },
    },
    'Subscription.buildsUpdated': {
      // What `who` may not see is judged next to what it may: it first hears of a public build (so
      // it is listening), then the owner submits a team build, then the publisher another public
      // one. Changes reach a subscription in the order they were announced, so once `who` hears of
      // the second public build it would already have heard of the team build.
      run: async (who) => {
        await t.listen();
        let ended = false;
        const sub = collect<{ buildsUpdated: { id: string } }>(
          t.ws(token(who)),
          'subscription { buildsUpdated { id } }',
          {},
        );
        void sub.done.then(() => {
          ended = true;
        });
        const heard = (id: string) => sub.items.some((i) => i.buildsUpdated.id === id);
        const over = () => ended || sub.errors.length > 0;
        try {
          await waitFor(`${who} to hear of a public build`, async () => {
            if (over() || sub.items.length > 0) return true;
            await submitTo('open', publisher);
            return false;
          });
          if (!over()) {
            const team = await submitTo('team', tokens.owner);
            const control = await submitTo('open', publisher);
            await waitFor(`${who} to hear of public build ${control}`, () => over() || heard(control));
            if (!over()) return heard(team) ? 'ok' : 'hidden';
          }
          return refusal('buildsUpdated', sub.errors) ?? 'hidden';
        } finally {
          sub.stop();
        }
      },
      expect: members,
    },
  };

  it('has a rule for every root field of the schema', () => {
    const schema = buildSchema(readFileSync(path.resolve(import.meta.dirname, '../schema.graphql'), 'utf8'));
    const fields = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap(
      (type) => (type ? Object.keys(type.getFields()).map((f) => `${type.name}.${f}`) : []),
    );
    expect(fields.filter((f) => !(f in cases)).sort()).toEqual([]);
  });

  for (const [field, c] of Object.entries(cases)) {
    it(`${field}: ${WHO.map((w) => `${w} → ${c.expect[w]}`).join(', ')}`, async () => {
      const got = {} as Record<Who, Outcome>;
      for (const who of WHO) got[who] = await c.run(who);
      expect(got).toEqual(c.expect);
    });
  }
});

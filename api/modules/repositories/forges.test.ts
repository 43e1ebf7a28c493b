import { describe, expect, it } from 'vitest';
import {
  githubExample,
  githubPullRequest,
  githubPush,
  gitlabPush,
  signedHeaders,
} from '../../../test/testkit/forge.ts';
import { deliveryOf, readChange, skipsCi, storableHeaders, verifyDelivery } from './forges.ts';

const SHA = 'a'.repeat(40);
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('forge deliveries', () => {
  it('checks each forge’s signature over the raw body, and refuses any other body or secret', () => {
    const raw = JSON.stringify(githubPush(SHA));
    for (const forge of ['github', 'gitea', 'forgejo', 'gitlab'] as const) {
      const headers = signedHeaders(forge, 'push', raw, 's3cret', 'd');
      const kind = forge.toUpperCase() as 'GITHUB' | 'GITEA' | 'FORGEJO' | 'GITLAB';
      expect(verifyDelivery(kind, headers, Buffer.from(raw), 's3cret')).toEqual({ ok: true });
      expect(verifyDelivery(kind, headers, Buffer.from(raw), 'other').ok).toBe(false);
      if (forge !== 'gitlab') {
        // One byte more in the body breaks an HMAC; GitLab's token does not sign the body.
        expect(verifyDelivery(kind, headers, Buffer.from(`${raw} `), 's3cret').ok).toBe(false);
      }
      expect(
        verifyDelivery(kind, { 'content-type': 'application/json' }, Buffer.from(raw), 's3cret'),
      ).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/^no X-/),
      });
    }
  });

  it('names the event and the delivery as each forge does, and keeps no secret header', () => {
    const headers = signedHeaders('gitlab', 'Push Hook', '{}', 'tok', 'uuid-1');
    expect(deliveryOf('GITLAB', headers)).toEqual({ event: 'Push Hook', deliveryId: 'uuid-1' });
    expect(deliveryOf('FORGEJO', signedHeaders('forgejo', 'push', '{}', 's', 'f-1'))).toEqual({
      event: 'push',
      deliveryId: 'f-1',
    });
    const kept = storableHeaders({
      ...headers,
      authorization: 'Bearer x',
      'x-hub-signature-256': 'sha256=1',
    });
    expect(Object.keys(kept).sort()).toEqual(['content-type', 'x-gitlab-event', 'x-gitlab-event-uuid']);
  });

  it('reads pushes, tags, deletions and pull requests into one shape', () => {
    expect(readChange('GITHUB', 'push', body(githubPush(SHA, 'refs/tags/v1')))).toMatchObject({
      kind: 'push',
      ref: 'refs/tags/v1',
      branch: null,
      commit: { sha: SHA, message: 'Initial commit' },
    });
    expect(readChange('GITHUB', 'push', body(githubExample('push', 1)))).toEqual({
      kind: 'ignored',
      reason: 'tag deleted',
    });
    expect(readChange('GITHUB', 'pull_request', body(githubPullRequest(SHA, 3)))).toMatchObject({
      kind: 'pull',
      ref: 'refs/pull/3/head',
      pullRequest: 3,
      fromFork: false,
    });
    expect(
      readChange('GITHUB', 'pull_request', body(githubPullRequest(SHA, 3, { fork: true }))),
    ).toMatchObject({
      fromFork: true,
    });
    // A review is not a pull request event (Djinn built on pull_request_review).
    expect(readChange('GITHUB', 'pull_request_review', body({}))).toEqual({
      kind: 'ignored',
      reason: 'event pull_request_review',
    });
    expect(readChange('GITHUB', 'pull_request', body(githubExample('pull_request', 1)))).toEqual({
      kind: 'ignored',
      reason: 'pull request assigned',
    });
    expect(readChange('GITLAB', 'Push Hook', body(gitlabPush(SHA)))).toMatchObject({
      kind: 'push',
      commit: { sha: SHA, author: 'GitLab dev user <gitlabdev@example.com>' },
    });
    const mr = (action: string, extra: Record<string, unknown> = {}) =>
      body({
        object_kind: 'merge_request',
        object_attributes: {
          iid: 5,
          action,
          source_project_id: 1,
          target_project_id: 2,
          source_branch: 'feature',
          url: 'https://gitlab.example.com/g/p/-/merge_requests/5',
          last_commit: { id: SHA, message: 'm', author: { name: 'A', email: 'a@x' } },
          ...extra,
        },
      });
    expect(readChange('GITLAB', 'Merge Request Hook', mr('open'))).toMatchObject({
      kind: 'pull',
      ref: 'refs/merge-requests/5/head',
      fromFork: true,
    });
    expect(readChange('GITLAB', 'Merge Request Hook', mr('update'))).toMatchObject({ kind: 'ignored' });
    expect(
      readChange('GITLAB', 'Merge Request Hook', mr('update', { oldrev: 'b'.repeat(40) })),
    ).toMatchObject({
      kind: 'pull',
    });
    expect(() => readChange('GITHUB', 'push', Buffer.from('not json'))).toThrow(SyntaxError);
  });

  it('skips [skip ci] and [ci skip] in any case', () => {
    expect(skipsCi('fix typo [skip ci]')).toBe(true);
    expect(skipsCi('x\n\n[CI SKIP]')).toBe(true);
    expect(skipsCi('skip ci')).toBe(false);
    expect(skipsCi(null)).toBe(false);
  });
});

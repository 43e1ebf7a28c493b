/**
 * (j) A forge's push to the build's first log line: a bare repository made here (file://) holds a
 * manifest, each sample commits and pushes to it, posts GitHub's own push payload for the new commit,
 * signed, to the repository's webhook URL, finds the build the event started (its ForgeEvent, asked
 * every 2 ms) and follows its log to the first line. Raw baseline: `git fetch --depth=1` of the same
 * commit from the same repository into an empty bare repository, timed from spawn to exit: the one
 * thing serve must do before it can build a commit.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { githubPush, makeRemote } from '../test/testkit/forge.ts';
import type { KilnClient } from './client.ts';
import { percentile, sleep, within } from './stats.ts';

const run = promisify(execFile);

export const WEBHOOK_NOTES = `(j) each sample pushes a commit to a bare repository (file://) whose \`.kiln.yml\` echoes a line,
and posts GitHub's own push payload for it, signed, to the repository's webhook URL; timed from the
post to the build's first log line (the event's builds are asked for every 2 ms, then its log is
followed). Raw baseline: \`git fetch --depth=1\` of the same commit from the same repository into an
empty bare repository, spawn to exit.`;

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - stage: s
    name: hello
    commands: ['echo hi']
`;

interface WebhookContext {
  client: KilnClient;
  samples: number;
  add(row: { measure: string; figure: number; baseline: number; unit: string }): void;
  log(message: string): void;
}

export async function measureWebhook(ctx: WebhookContext): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-webhook-'));
  try {
    const remote = await makeRemote(path.join(work, 'remote'));
    await remote.commit({ '.kiln.yml': MANIFEST }, 'a manifest');
    await ctx.client
      .gql('mutation { createNamespace(input: { path: "webhooks" }) { __typename } }')
      .catch(() => undefined);
    const created = await ctx.client.gql<{
      createRepository: { webhookSecret?: string; repository?: { webhookUrl: string }; message?: string };
    }>(
      `mutation ($url: String!) { createRepository(input: { namespace: "webhooks", cloneUrl: $url, forge: GITHUB }) {
        ... on CreateRepositorySuccess { webhookSecret repository { webhookUrl } } ... on Error { message } } }`,
      { url: remote.url },
    );
    const { webhookSecret: secret, repository } = created.createRepository;
    if (!secret || !repository) throw new Error(`createRepository: ${JSON.stringify(created)}`);
    ctx.log(`(j) ${ctx.samples} pushes, each posted to ${repository.webhookUrl}`);
    const kiln: number[] = [];
    const raw: number[] = [];
    const warmup = 3;
    for (let i = 0; i < warmup + ctx.samples; i++) {
      const sha = await remote.commit({ 'n.txt': String(i) }, `sample ${i}`);
      const body = JSON.stringify(githubPush(sha));
      const t0 = performance.now();
      const sent = await fetch(repository.webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': `bench-${sha}`,
          'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
        },
        body,
      });
      const { event } = (await sent.json()) as { event: string };
      const buildId = await within(
        (async () => {
          for (;;) {
            const data = await ctx.client.gql<{ node: { builds: { id: string }[]; outcome: string } }>(
              'query ($id: ID!) { node(id: $id) { ... on ForgeEvent { outcome builds { id } } } }',
              { id: event },
            );
            if (data.node.builds[0]) return data.node.builds[0].id;
            if (/^(failed|ignored|no manifest)/.test(data.node.outcome)) throw new Error(data.node.outcome);
            await sleep(2);
          }
        })(),
        30_000,
        `(j) the build of push ${sha}`,
      );
      let firstAt = 0;
      const watch = ctx.client.watchLog(buildId, () => {
        firstAt ||= performance.now();
      });
      await within(watch.done, 30_000, `(j) the log of build ${buildId}`);
      if (firstAt === 0) throw new Error(`(j) build ${buildId} ended without a log line`);
      const into = path.join(work, `fetch-${i}.git`);
      await run('git', ['init', '-q', '--bare', into]);
      const f0 = performance.now();
      await run('git', ['fetch', '-q', '--no-tags', '--depth=1', '--', remote.url, sha], { cwd: into });
      const fetched = performance.now() - f0;
      if (i >= warmup) {
        kiln.push(firstAt - t0);
        raw.push(fetched);
      }
    }
    ctx.add({
      measure: '(j) webhook → first log line p50',
      figure: percentile(kiln, 0.5),
      baseline: percentile(raw, 0.5),
      unit: 'ms',
    });
    ctx.add({
      measure: '(j) webhook → first log line p99',
      figure: percentile(kiln, 0.99),
      baseline: percentile(raw, 0.99),
      unit: 'ms',
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * `/metrics` on a real serve and runner: Prometheus text that a parser reads, counters and gauges
 * that move with a build, and the token it asks for.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogIn, startTestApp, startTestRunner, type TestApp } from '../test/testkit/app.ts';
import { available } from '../test/testkit/services.ts';
import { waitFor } from '../test/testkit/wait.ts';

interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; count?: string }[];
}

describe.runIf(available('postgres'))('/metrics', () => {
  let t: TestApp;
  let url: string;
  let alice: string;
  let dir: string;
  let runner: Awaited<ReturnType<typeof startTestRunner>>;
  const TOKEN = 'metrics-token-for-the-test';

  let lastText = '';
  const scrape = async (): Promise<Map<string, Family>> => {
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    lastText = await res.text();
    const families = parsePrometheusTextFormat(lastText) as Family[];
    return new Map(families.map((f) => [f.name, f]));
  };
  /** A histogram's count for one set of labels (the parser drops labels when `le` comes first). */
  const histogramCount = (name: string, labels: string) =>
    Number(new RegExp(`^${name}_count\\{${labels}\\} (\\d+)$`, 'm').exec(lastText)?.[1] ?? 0);
  const value = (m: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
    const found = m
      .get(name)
      ?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    return Number(found?.value ?? found?.count ?? 0);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-metrics-test-'));
    t = await startTestApp({ metricsToken: TOKEN });
    url = await t.listen();
    await mkdir(join(dir, 'w'));
    runner = await startTestRunner(t, join(dir, 'w'));
    alice = await signUpAndLogIn(t, 'alice');
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('asks for KILN_METRICS_TOKEN', async () => {
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });

  it('parses as Prometheus text, and moves with a build', async () => {
    const before = await scrape();
    for (const name of [
      'kiln_builds',
      'kiln_builds_queued',
      'kiln_runners_online',
      'kiln_dead_letters',
      'kiln_websockets_open',
    ]) {
      expect(before.get(name)?.type, name).toBe('GAUGE');
    }
    expect(before.get('kiln_log_lines_stored_total')?.type).toBe('COUNTER');
    expect(before.get('kiln_process_resident_memory_bytes')).toBeDefined();
    const res = await t.gql(
      `mutation Submit($m: String!) { submitBuild(input: { manifest: $m }) { ... on SubmitBuildSuccess { build { id } } } }`,
      { m: "driver: {type: os}\nstages: [s]\njobs:\n  - stage: s\n    commands: ['seq 1 100']\n" },
      alice,
    );
    const id = (res.data!.submitBuild as { build: { id: string } }).build.id;
    await waitFor('the build to pass', async () => {
      const b = await t.gql('query ($id: ID!) { build(id: $id) { status } }', { id }, alice);
      return (b.data!.build as { status: string }).status === 'PASSED';
    });
    const after = await waitFor('the lines to be counted', async () => {
      const m = await scrape();
      return value(m, 'kiln_log_lines_stored_total') >= value(before, 'kiln_log_lines_stored_total') + 100
        ? m
        : null;
    });
    expect(value(after, 'kiln_builds', { status: 'PASSED' })).toBe(
      value(before, 'kiln_builds', { status: 'PASSED' }) + 1,
    );
    expect(value(after, 'kiln_log_bytes_stored_total')).toBeGreaterThan(
      value(before, 'kiln_log_bytes_stored_total'),
    );
    expect(value(after, 'kiln_runners_online')).toBe(1);
    expect(after.get('kiln_graphql_operation_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(
      histogramCount('kiln_graphql_operation_duration_seconds', 'operation="Submit",type="mutation"'),
    ).toBe(1);
    expect(
      histogramCount('kiln_http_request_duration_seconds', 'method="GET",route="/metrics",status="200"'),
    ).toBeGreaterThan(0);
  });
});

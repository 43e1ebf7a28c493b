import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/testkit/app.ts';
import { available } from '../test/testkit/services.ts';

describe.runIf(available('postgres'))('the serve process', () => {
  it('answers /healthz while up and /readyz only while database and broker are reachable', async () => {
    const t = await startTestApp();
    try {
      const url = await t.listen();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ database: true, broker: true });
      await t.broker.close();
      const notReady = await fetch(`${url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual({ database: true, broker: false });
    } finally {
      await t.stop();
    }
  });

  it('on stop closes open subscriptions and stops accepting connections', async () => {
    const t = await startTestApp();
    const url = await t.listen();
    const client = t.ws();
    const closed = new Promise<number>((resolve) =>
      client.on('closed', (event) => resolve((event as { code: number }).code)),
    );
    const submitted = await t.gql<{ submitBuild: { build: { id: string } } }>(
      `mutation { submitBuild(input: { manifest: "driver: {type: os}\\nstages: [s]\\njobs: [{stage: s, commands: [echo]}]" }) {
        ... on SubmitBuildSuccess { build { id } } } }`,
    );
    const sub = client.iterate({
      query: 'subscription ($id: ID!) { buildUpdated(buildId: $id) { id } }',
      variables: { id: submitted.data!.submitBuild.build.id },
    });
    const pending = sub.next().catch(() => null);
    await new Promise((r) => setTimeout(r, 200));
    try {
      await t.app.stop();
      expect(await closed).toBe(1001);
      await pending;
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      await t.stop();
    }
  });
});

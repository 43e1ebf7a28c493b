/**
 * Fault: the serve replica a subscriber follows a build's log on is SIGKILLed mid-stream. The
 * subscriber resumes on the other replica with the cursor of the last chunk it received, and must
 * get every line once, in order; the build, submitted through the killed replica, must still end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, privateServicesAvailable, startFaultCluster } from '../testkit/fault-cluster.ts';
import type { BuildView } from '../testkit/kiln-client.ts';
import { countedLines, lineCheck } from '../testkit/log-lines.ts';
import { isRunning } from '../testkit/pids.ts';
import { waitUntil } from '../testkit/system.ts';

const ready = privateServicesAvailable();
const LINES = 20_000;

describe.runIf(ready)('a serve replica SIGKILLed under a subscriber', () => {
  let stage: FaultCluster;
  let final: BuildView;
  let first: string[];
  let resumed: string[];
  let firstError = '';

  beforeAll(async () => {
    stage = await startFaultCluster({ serves: 2, runners: 1 });
  }, 180_000);

  afterAll(async () => {
    await stage?.remove();
  }, 120_000);

  it('kills the replica mid-stream and resumes on the other with the last cursor', async () => {
    const doomed = stage.serves[0]!;
    const onDoomed = stage.client(doomed);
    const onOther = stage.client(1);
    const build = await onDoomed.submit(countedLines(LINES, { pace: { every: 1_000, seconds: 0.25 } }));
    const live = onDoomed.followLog(build.id);
    const ended = live.done.then(
      () => 'completed',
      (error: unknown) => {
        firstError = String(error);
        return 'failed';
      },
    );
    await waitUntil(() => live.lines().length >= 3_000, 'the build did not print 3,000 lines', 60_000);
    await stage.kill(doomed);
    expect(isRunning(doomed.child.pid!)).toBe(false);
    expect(await ended).toBe('failed');
    first = [...live.lines()];
    const cursor = live.lastCursor();
    const resume = onOther.followLog(build.id, { after: cursor });
    await resume.done;
    resumed = resume.lines();
    final = await onOther.waitForFinal(build.id, 60_000);
    console.log(
      `serve killed after ${first.length} lines (${firstError}); resumed with ${resumed.length} lines; ` +
        `final ${final.status} attempt ${final.attempt}; all ${JSON.stringify(lineCheck([...first, ...resumed], LINES))}`,
    );
  }, 180_000);

  it('delivers every line once, in order, across the two replicas', () => {
    expect(lineCheck([...first, ...resumed], LINES)).toEqual(lineCheck.clean(LINES));
  });

  it('ends the build PASSED on its first attempt', () => {
    expect({ status: final.status, attempt: final.attempt }).toEqual({ status: 'PASSED', attempt: 1 });
  });

  it('stores every line once, in order', async () => {
    const stored = (await stage.client(1).storedLog(final.id)).flatMap((c) => c.lines);
    expect(lineCheck(stored, LINES)).toEqual(lineCheck.clean(LINES));
  });
});

/**
 * Fault: a runner is SIGKILLed (with its job, as when its machine dies) while its build prints.
 * RabbitMQ redelivers the build to the other runner, which runs it again as attempt 2. Every line of
 * the attempt that won must be stored and delivered once, in order, and the build must end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, privateServicesAvailable, startFaultCluster } from '../testkit/fault-cluster.ts';
import type { BuildView, LogChunkView } from '../testkit/kiln-client.ts';
import { countedLines, lineCheck, linesPerAttempt } from '../testkit/log-lines.ts';

const ready = privateServicesAvailable();
const LINES = 20_000;

const linesOf = (chunks: LogChunkView[], attempt?: number) =>
  chunks.filter((c) => attempt === undefined || c.attempt === attempt).flatMap((c) => c.lines);

describe.runIf(ready)('a runner SIGKILLed mid-build', () => {
  let stage: FaultCluster;
  let final: BuildView;
  /** What a subscriber on the other replica received from the start to the stream's end. */
  let watched: LogChunkView[];
  let stored: LogChunkView[];
  let linesBeforeKill = 0;

  beforeAll(async () => {
    stage = await startFaultCluster({ serves: 2, runners: 2 });
  }, 180_000);

  afterAll(async () => {
    await stage?.remove();
  }, 120_000);

  it('kills the runner of a printing build, and the other runner runs it to its end', async () => {
    const submitter = stage.client(0);
    const watcher = stage.client(1);
    const build = await submitter.submit(countedLines(LINES, { pace: { every: 1_000, seconds: 0.25 } }));
    const runner = await stage.runnerOf(build.number);
    const live = watcher.followLog(build.id);
    const early = watcher.followLog(build.id, { until: (lines) => lines.length >= 4_000 });
    await early.done;
    linesBeforeKill = early.lines().length;
    await stage.kill(runner);
    await live.done;
    final = await submitter.waitForFinal(build.id, 90_000);
    watched = live.chunks;
    stored = await submitter.storedLog(build.id);
    console.log(
      `runner killed after ${linesBeforeKill} lines; final ${final.status} attempt ${final.attempt} ` +
        `tags ${final.tags.join(',')}; stored ${JSON.stringify(lineCheck(linesOf(stored, final.attempt), LINES))}; ` +
        `watched ${JSON.stringify(lineCheck(linesOf(watched, final.attempt), LINES))}; ` +
        `lines per attempt: stored ${JSON.stringify(linesPerAttempt(stored))}, watched ${JSON.stringify(linesPerAttempt(watched))}`,
    );
    expect(linesBeforeKill).toBeLessThan(LINES);
  }, 150_000);

  it('ends the build PASSED on attempt 2, tagged orphaned', () => {
    expect(final.status).toBe('PASSED');
    expect(final.attempt).toBe(2);
    expect(final.tags).toContain('orphaned');
  });

  it('stores every line of the attempt that won once, in order', () => {
    expect(lineCheck(linesOf(stored, final.attempt), LINES)).toEqual(lineCheck.clean(LINES));
  });

  it("stores the killed attempt's lines as a clean prefix, never interleaved with the winner's", () => {
    const killed = lineCheck(linesOf(stored, 1), LINES);
    expect({ repeated: killed.repeated, breaks: killed.breaks }).toEqual({ repeated: 0, breaks: 0 });
    const order = stored.map((c) => c.attempt);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('delivers every line of the attempt that won once, in order, to a subscriber that watched throughout', () => {
    expect(lineCheck(linesOf(watched, final.attempt), LINES)).toEqual(lineCheck.clean(LINES));
  });

  // Issue 10, defect 3: buildLog replayed every attempt's stored chunks one after the
  // other, so a subscriber got the killed attempt's head and then the winner's whole log.
  it('replays only the attempt that won to a subscriber that comes afterwards', async () => {
    const late = stage.client(1).followLog(final.id);
    await late.done;
    console.log(`late subscriber: lines per attempt ${JSON.stringify(linesPerAttempt(late.chunks))}`);
    expect(new Set(late.chunks.map((c) => c.attempt))).toEqual(new Set([final.attempt]));
    expect(lineCheck(late.lines(), LINES)).toEqual(lineCheck.clean(LINES));
  }, 60_000);
});

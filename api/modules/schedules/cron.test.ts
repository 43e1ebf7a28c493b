/**
 * The times an expression names, where cron's rules matter: daylight-saving changes (no double
 * firing, no skipped day), six fields, aliases, the latest slot at or before a time, and the
 * shortest interval.
 */
import { describe, expect, it } from 'vitest';
import { checkCron, checkZone, lastRunAtOrBefore, runsAfter, shortestGapSeconds } from './cron.ts';

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());

describe('cron times', () => {
  it('fires a daily time once on the day the clocks skip it, and once on the day they repeat it', () => {
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    expect(iso(runsAfter('30 2 * * *', 'Europe/Berlin', new Date('2026-03-28T00:00:00Z'), 3))).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST: the first instant after the skipped time, once
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, fires once.
    expect(iso(runsAfter('30 2 * * *', 'Europe/Berlin', new Date('2026-10-24T00:00:00Z'), 3))).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('reads six fields with seconds first, and the aliases', () => {
    const from = new Date('2026-12-08T02:00:00.000Z');
    expect(iso(runsAfter('*/2 * * * * *', 'UTC', from, 2))).toEqual([
      '2026-12-08T02:00:02.000Z',
      '2026-12-08T02:00:04.000Z',
    ]);
    expect(iso(runsAfter('@daily', 'America/New_York', from, 1))).toEqual(['2026-12-08T05:00:00.000Z']);
    expect(iso(runsAfter('@hourly', 'UTC', from, 1))).toEqual(['2026-12-08T03:00:00.000Z']);
  });

  it('finds the latest slot at or before a time, and the shortest interval', () => {
    expect(
      lastRunAtOrBefore('*/2 * * * * *', 'UTC', new Date('2026-12-08T02:00:05.500Z')).toISOString(),
    ).toBe('2026-12-08T02:00:04.000Z');
    expect(lastRunAtOrBefore('@hourly', 'UTC', new Date('2026-12-08T03:00:00.000Z')).toISOString()).toBe(
      '2026-12-08T03:00:00.000Z',
    );
    const from = new Date('2026-12-08T00:00:00Z');
    expect(shortestGapSeconds('0,1 * * * *', 'UTC', from)).toBe(60);
    expect(shortestGapSeconds('@daily', 'UTC', from)).toBe(86_400);
    expect(shortestGapSeconds('0,30 * * * * *', 'UTC', from)).toBe(30);
  });

  it('says what is wrong with an expression or a zone', () => {
    expect(checkCron('0 3 * * *')).toBeNull();
    expect(checkCron('@weekly')).toBeNull();
    expect(checkCron('')).toBe('the cron expression is empty');
    expect(checkCron('* * *')).toMatch(/has 3 fields/);
    expect(checkCron('0 25 * * *')).toMatch(/expected range 0-23/);
    expect(checkCron('@reboot')).toMatch(/not an alias Kiln knows/);
    expect(checkZone('Europe/Berlin')).toBeNull();
    expect(checkZone('UTC')).toBeNull();
    expect(checkZone('Nowhere/Land')).toMatch(/is not an IANA time zone/);
  });
});

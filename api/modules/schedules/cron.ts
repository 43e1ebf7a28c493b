/**
 * Cron expressions and the times they name, computed the way node-schedule computes them (through
 * cron-parser, the parser node-schedule itself uses, pinned to the version it depends on): five
 * fields (minute hour day-of-month month day-of-week), six with seconds first, or an alias. Times are
 * read in an IANA zone; across a daylight-saving change each wall-clock time fires once (a time the
 * change skips fires at the first instant after it, a time it repeats fires once), as cron does.
 */
import parser from 'cron-parser';

/** The aliases accepted, as the five fields they stand for. */
export const ALIASES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/**
 * How many coming runs the shortest interval of an expression is looked for in: a full cycle of the
 * finest field (at most 60 values) and the step into the next one. Runs past GAP_SPAN_MS are not
 * looked at: by then every month and weekday has come round, and a sparse expression (a yearly one)
 * would otherwise cost a century of iterations.
 */
const GAP_SAMPLE = 62;
const GAP_SPAN_MS = 400 * 86_400_000;

const expand = (cron: string): string => ALIASES[cron.trim().toLowerCase()] ?? cron.trim();

/** Why `cron` is not an expression Kiln takes, or null. */
export function checkCron(cron: string): string | null {
  const text = cron.trim();
  if (text === '') return 'the cron expression is empty';
  if (text.length > 256) return 'a cron expression is at most 256 characters';
  if (text.startsWith('@')) {
    return ALIASES[text.toLowerCase()]
      ? null
      : `${text.slice(0, 40)} is not an alias Kiln knows: use @hourly, @daily, @weekly, @monthly or @yearly`;
  }
  const fields = text.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `"${text.slice(0, 100)}" has ${fields} field${fields === 1 ? '' : 's'}: give five (minute hour day-of-month month day-of-week) or six (seconds first)`;
  }
  try {
    parser.parseExpression(text, { tz: 'UTC' }).next();
    return null;
  } catch (error) {
    return `"${text.slice(0, 100)}" is not a cron expression: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Why `zone` is not an IANA time zone, or null. */
export function checkZone(zone: string): string | null {
  if (zone.length === 0 || zone.length > 64) return 'a time zone is an IANA name such as Europe/Berlin';
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return null;
  } catch {
    return `${zone.slice(0, 64)} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`;
  }
}

/** The `count` times `cron` names in `zone` strictly after `after`, soonest first. */
export function runsAfter(cron: string, zone: string, after: Date, count: number): Date[] {
  const it = parser.parseExpression(expand(cron), { currentDate: after, tz: zone });
  const runs: Date[] = [];
  while (runs.length < count) {
    const next = it.next().toDate();
    // cron-parser works in whole seconds: a time equal to `after` is not "after" it.
    if (next.getTime() > after.getTime()) runs.push(next);
  }
  return runs;
}

/** The last time `cron` names in `zone` at or before `at`. */
export function lastRunAtOrBefore(cron: string, zone: string, at: Date): Date {
  const it = parser.parseExpression(expand(cron), { currentDate: new Date(at.getTime() + 1), tz: zone });
  let prev = it.prev().toDate();
  while (prev.getTime() > at.getTime()) prev = it.prev().toDate();
  return prev;
}

/**
 * Whether `cron` may fire more often than every `seconds`: an expression without seconds fires at
 * most once a minute and an alias at most once an hour, so only the others are sampled.
 */
export function firesMoreOftenThan(cron: string, zone: string, from: Date, seconds: number): number | null {
  const text = cron.trim();
  const floor = text.startsWith('@') ? 3600 : text.split(/\s+/).length === 5 ? 60 : 1;
  if (floor >= seconds) return null;
  const gap = shortestGapSeconds(text, zone, from);
  return gap < seconds ? gap : null;
}

/** The shortest time, in seconds, between two of the next runs of `cron` in `zone` after `from`. */
export function shortestGapSeconds(cron: string, zone: string, from: Date): number {
  const it = parser.parseExpression(expand(cron), { currentDate: from, tz: zone });
  let shortest = Number.POSITIVE_INFINITY;
  let previous = it.next().toDate().getTime();
  const end = previous + GAP_SPAN_MS;
  for (let i = 1; i < GAP_SAMPLE; i++) {
    const next = it.next().toDate().getTime();
    shortest = Math.min(shortest, (next - previous) / 1000);
    if (next > end) break;
    previous = next;
  }
  return shortest;
}

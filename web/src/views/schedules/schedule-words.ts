/** How a schedule and its times read to a person: its state, its address, times in a zone. */

/** A schedule's address in the console (its global id may end in `=`). */
export const scheduleHref = (id: string) => `/schedules/${encodeURIComponent(id)}`;

/**
 * What a schedule is doing: firing at its times, paused by someone, or stopped by Kiln (its owner
 * lost access, or its expression no longer computes; `problem` says which and starts `stopped:`).
 */
export type ScheduleState = 'enabled' | 'paused' | 'stopped';

export function scheduleState(s: { enabled: boolean; problem: string | null }): ScheduleState {
  if (s.enabled) return 'enabled';
  return s.problem?.startsWith('stopped') ? 'stopped' : 'paused';
}

/** The badge tone of each state (styles.css's badge-*). */
export const STATE_TONES: { readonly [S in ScheduleState]: 'ok' | 'idle' | 'bad' } = {
  enabled: 'ok',
  paused: 'idle',
  stopped: 'bad',
};

/** The zone the browser runs in: "your time". */
export const localZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

const zoneFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * `Mon, Mar 3, 2025, 04:30:00 GMT+9`: a time as the clock on the wall reads it in `zone` (24-hour,
 * so that it can be compared with the expression's hour field). Null when the browser does not know
 * the zone.
 */
export function formatInZone(iso: string, zone: string): string | null {
  let format = zoneFormats.get(zone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat(undefined, {
        timeZone: zone,
        weekday: 'short',
        year: 'numeric',
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
        timeZoneName: 'short',
      });
    } catch {
      return null;
    }
    zoneFormats.set(zone, format);
  }
  return format.format(new Date(iso));
}

/** Zones to offer while typing one, when the browser cannot list its own. */
const COMMON_ZONES = [
  'UTC',
  'Europe/London',
  'Europe/Berlin',
  'Europe/Paris',
  'Europe/Moscow',
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Los_Angeles',
  'America/Sao_Paulo',
  'Asia/Kolkata',
  'Asia/Shanghai',
  'Asia/Tokyo',
  'Asia/Singapore',
  'Australia/Sydney',
  'Pacific/Auckland',
];

let zones: string[] | null = null;

/** Every IANA zone the browser knows (UTC first), or a short list of common ones. */
export function timeZones(): string[] {
  if (!zones) {
    const known = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    zones = [...new Set(['UTC', ...(known.length > 0 ? known : COMMON_ZONES)])];
  }
  return zones;
}

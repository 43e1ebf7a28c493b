const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Milliseconds in a duration written as hours, minutes and seconds in that order (`2h`, `1h30m`,
 * `90s`, `1h0m30s`), or null when the text is not in that form. Bare numbers have no unit and are refused.
 */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (text === '' || match === null) return null;
  const [, hours = '0', minutes = '0', seconds = '0'] = match;
  return ((Number(hours) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000;
}

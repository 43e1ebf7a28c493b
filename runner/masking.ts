/**
 * Masking of secret values (masked build variables) in job logs.
 *
 * The masker works on complete lines: the log batcher splits a job's bytes into lines first, so a
 * secret that arrives split across two writes (or two pipe reads) is still one string here and is
 * caught. A secret that itself contains a newline cannot appear within one line, so it is masked per
 * line: each of its lines is a secret of its own.
 */

export const MASK = 'xxxxxx';

export interface Masker {
  /** The line with every occurrence of every secret replaced by `xxxxxx`. */
  mask(line: string): string;
  /**
   * The largest index ≤ `cut` at which `line` can be cut without splitting an occurrence of a
   * secret. The log batcher uses it to cut lines longer than its limit; it must know at least
   * `overlap` characters past `cut` for the answer to hold.
   */
  safeCut(line: string, cut: number): number;
  /** Length of the longest secret minus one (0 without secrets). */
  readonly overlap: number;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function createMasker(secrets: readonly string[]): Masker {
  const parts = [...new Set(secrets.flatMap((secret) => secret.split(/\r?\n/)))].filter((s) => s.length > 0);
  if (parts.length === 0) {
    return { mask: (line) => line, safeCut: (_line, cut) => cut, overlap: 0 };
  }
  // Longest first: at one position the alternation takes the first alternative that matches, so a
  // secret that contains a shorter one is masked whole rather than leaving its remainder visible.
  parts.sort((a, b) => b.length - a.length);
  const pattern = new RegExp(parts.map(escapeRegExp).join('|'), 'g');
  const overlap = (parts[0]?.length ?? 1) - 1;

  return {
    overlap,
    mask: (line) => (line.length === 0 ? line : line.replace(pattern, MASK)),
    safeCut(line, cut) {
      let at = cut;
      // Moving the cut left can put it inside another occurrence, so look again until it holds.
      for (let moved = true; moved && at > 0; ) {
        moved = false;
        for (const part of parts) {
          for (let start = Math.max(0, at - part.length + 1); start < at; start++) {
            if (line.startsWith(part, start)) {
              at = start;
              moved = true;
              break;
            }
          }
        }
      }
      return at;
    },
  };
}

/**
 * Builds that print numbered lines (`line 1` … `line N`), and a summary of a received or stored log
 * against them: how many came, how many twice, how many never, and whether they came in order. Fault
 * tests compare a summary with `lineCheck.clean(n)`, so a failure prints the numbers observed.
 */

export interface CountedLinesOptions {
  /** Sleep `seconds` after every `every` lines, to spread the log over time. */
  pace?: { every: number; seconds: number };
  /** Commands run before the count (e.g. to leave a marker). */
  before?: string[];
  /** Queue; default the manifest's default. */
  queue?: string;
}

/** A manifest of one job that prints `line 1` … `line n`. */
export function countedLines(n: number, opts: CountedLinesOptions = {}): string {
  const pace = opts.pace
    ? ` if [ $((i % ${opts.pace.every})) -eq 0 ]; then sleep ${opts.pace.seconds}; fi;`
    : '';
  const count = `i=0; while [ $i -lt ${n} ]; do i=$((i+1)); echo "line $i";${pace} done`;
  const commands = [...(opts.before ?? []), count].map((c) => `      - ${JSON.stringify(c)}`).join('\n');
  return `driver: {type: os}
${opts.queue ? `queue: ${opts.queue}\n` : ''}stages: [count]
jobs:
  - stage: count
    name: count
    commands:
${commands}
`;
}

export interface LineSummary {
  /** Numbered lines received, repeats included. */
  lines: number;
  /** Lines received more than once (each repeat counts). */
  repeated: number;
  /** Numbers 1…n never received. */
  missing: number;
  /** The first number never received, or null. */
  firstMissing: number | null;
  /** The last number never received, or null. */
  lastMissing: number | null;
  /** Places where a line is not the one after its predecessor (or the first is not `line 1`). */
  breaks: number;
}

const NUMBERED = /^line (\d+)$/;

/** The summary of `lines` (other lines are ignored) against `line 1` … `line n`. */
export function lineCheck(lines: readonly string[], n: number): LineSummary {
  const numbers: number[] = [];
  for (const line of lines) {
    const m = NUMBERED.exec(line);
    if (m) numbers.push(Number(m[1]));
  }
  const seen = new Set<number>();
  let repeated = 0;
  let breaks = 0;
  numbers.forEach((k, i) => {
    if (seen.has(k)) repeated += 1;
    seen.add(k);
    if (k !== (i === 0 ? 1 : numbers[i - 1]! + 1)) breaks += 1;
  });
  let missing = 0;
  let firstMissing: number | null = null;
  let lastMissing: number | null = null;
  for (let k = 1; k <= n; k++) {
    if (seen.has(k)) continue;
    missing += 1;
    firstMissing ??= k;
    lastMissing = k;
  }
  return { lines: numbers.length, repeated, missing, firstMissing, lastMissing, breaks };
}

/** What lineCheck says of a log that holds `line 1` … `line n`, each once, in order. */
lineCheck.clean = (n: number): LineSummary => ({
  lines: n,
  repeated: 0,
  missing: 0,
  firstMissing: null,
  lastMissing: null,
  breaks: 0,
});

/** How many lines each attempt contributed to `chunks`, e.g. `{ 1: 4000, 2: 20000 }`. */
export function linesPerAttempt(chunks: readonly { attempt: number; lines: readonly string[] }[]) {
  const counts: Record<number, number> = {};
  for (const c of chunks) counts[c.attempt] = (counts[c.attempt] ?? 0) + c.lines.length;
  return counts;
}

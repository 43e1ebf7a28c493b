/**
 * Search within a log over what the lines show (ANSI codes stripped): plain text or a regular
 * expression, case-insensitive unless asked otherwise.
 * Matching lines are kept per section and extended as lines arrive, so a live log is never rescanned
 * from the start; next/previous walk them in section order.
 */
import { type Accessor, createEffect, createMemo, createSignal, on } from 'solid-js';
import { visibleText } from '../../lib/ansi.ts';
import type { LogSection, LogStore } from './log-store.ts';

export interface LogMatch {
  key: string;
  line: number;
}

export interface SearchOptions {
  regex: boolean;
  caseSensitive: boolean;
}

/** A compiled search: where it matches in a line's visible text, and whether it does at all. */
export interface Matcher {
  ranges(text: string): [number, number][];
  test(text: string): boolean;
}

/**
 * The matcher for a query, null for an empty one, or the reason a regular expression does not
 * compile. Plain queries are trimmed; a pattern is taken as typed.
 */
export function compileSearch(query: string, options: SearchOptions): Matcher | { error: string } | null {
  if (options.regex) {
    if (!query) return null;
    let re: RegExp;
    try {
      re = new RegExp(query, options.caseSensitive ? 'g' : 'gi');
    } catch (err) {
      return { error: (err as Error).message };
    }
    return {
      ranges(text) {
        const out: [number, number][] = [];
        re.lastIndex = 0;
        for (let m = re.exec(text); m; m = re.exec(text)) {
          // An empty match marks nothing, and must not stall the loop.
          if (m[0].length === 0) re.lastIndex++;
          else out.push([m.index, m.index + m[0].length]);
        }
        return out;
      },
      test(text) {
        re.lastIndex = 0;
        for (let m = re.exec(text); m; m = re.exec(text)) {
          if (m[0].length > 0) return true;
          re.lastIndex++;
        }
        return false;
      },
    };
  }
  const trimmed = query.trim();
  if (!trimmed) return null;
  const needle = options.caseSensitive ? trimmed : trimmed.toLowerCase();
  const fold = (t: string) => (options.caseSensitive ? t : t.toLowerCase());
  return {
    ranges: (text) => findRanges(fold(text), needle),
    test: (text) => fold(text).includes(needle),
  };
}

export interface LogSearch {
  query: Accessor<string>;
  setQuery(q: string): void;
  options: Accessor<SearchOptions>;
  setOptions(o: Partial<SearchOptions>): void;
  /** What the lines are matched with, null when there is no query (or the pattern is invalid). */
  matcher: Accessor<Matcher | null>;
  /** Why the regular expression does not compile, or null. */
  error: Accessor<string | null>;
  /** Lines that match. */
  count: Accessor<number>;
  current: Accessor<LogMatch | null>;
  /** 1-based position of the current match, 0 when there is none. */
  position: Accessor<number>;
  next(): LogMatch | null;
  previous(): LogMatch | null;
}

interface Scan {
  scanned: number;
  hits: number[];
}

/** Occurrences of `needle` in `text` (both already case-folded as wanted), as [start, end) ranges. */
function findRanges(hay: string, needle: string): [number, number][] {
  if (!needle) return [];
  const ranges: [number, number][] = [];
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + needle.length)) {
    ranges.push([i, i + needle.length]);
  }
  return ranges;
}

const lowerBound = (a: number[], v: number) => {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
};

export function createLogSearch(store: LogStore): LogSearch {
  const [query, setQuery] = createSignal('');
  const [current, setCurrent] = createSignal<LogMatch | null>(null);
  const [count, setCount] = createSignal(0);
  const [options, setOptionsSignal] = createSignal<SearchOptions>({ regex: false, caseSensitive: false });
  const compiled = createMemo(() => compileSearch(query(), options()));
  const matcher = createMemo(() => {
    const c = compiled();
    return c && 'ranges' in c ? c : null;
  });
  const error = () => {
    const c = compiled();
    return c && 'error' in c ? c.error : null;
  };
  let scans = new WeakMap<LogSection, Scan>();
  let scanned: Matcher | null = null;

  createEffect(
    on([matcher, store.version], ([m]) => {
      if (m !== scanned) {
        scanned = m;
        scans = new WeakMap();
        setCurrent(null);
      }
      if (!m) {
        setCount(0);
        return;
      }
      let total = 0;
      for (const s of store.sections()) {
        let scan = scans.get(s);
        if (!scan) {
          scan = { scanned: 0, hits: [] };
          scans.set(s, scan);
        }
        for (let i = scan.scanned; i < s.lines.length; i++) {
          if (m.test(visibleText(s.lines[i]!))) scan.hits.push(i);
        }
        scan.scanned = s.lines.length;
        total += scan.hits.length;
      }
      setCount(total);
    }),
  );

  const hitsOf = (s: LogSection) => scans.get(s)?.hits ?? [];

  function step(direction: 1 | -1): LogMatch | null {
    const sections = store.sections();
    const cur = current();
    let si = cur ? sections.findIndex((s) => s.key === cur.key) : -1;
    if (si === -1) {
      // No current match: start from the first (or, backwards, the last) section.
      si = direction === 1 ? 0 : sections.length - 1;
      const section = sections[si];
      const hits = section ? hitsOf(section) : [];
      const first = direction === 1 ? hits[0] : hits.at(-1);
      if (first !== undefined) return select({ key: sections[si]!.key, line: first });
    } else {
      const hits = hitsOf(sections[si]!);
      const at = lowerBound(hits, cur!.line);
      const idx = direction === 1 ? (hits[at] === cur!.line ? at + 1 : at) : at - 1;
      if (idx >= 0 && idx < hits.length) return select({ key: sections[si]!.key, line: hits[idx]! });
    }
    // Walk on to the next sections with hits, wrapping around.
    for (let k = 1; k <= sections.length; k++) {
      const s = sections[(((si + direction * k) % sections.length) + sections.length) % sections.length]!;
      const hits = hitsOf(s);
      if (hits.length > 0) return select({ key: s.key, line: direction === 1 ? hits[0]! : hits.at(-1)! });
    }
    return null;
  }

  function select(m: LogMatch): LogMatch {
    setCurrent(m);
    return m;
  }

  function position(): number {
    store.version();
    count();
    const cur = current();
    if (!cur) return 0;
    let before = 0;
    for (const s of store.sections()) {
      const hits = hitsOf(s);
      if (s.key === cur.key) return before + lowerBound(hits, cur.line) + 1;
      before += hits.length;
    }
    return 0;
  }

  return {
    query,
    setQuery,
    options,
    setOptions: (o) => setOptionsSignal((cur) => ({ ...cur, ...o })),
    matcher,
    error,
    count,
    current,
    position,
    next: () => step(1),
    previous: () => step(-1),
  };
}

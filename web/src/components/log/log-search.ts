/**
 * Search within a log: case-insensitive plain text over what the lines show (ANSI codes stripped).
 * Matching lines are kept per section and extended as lines arrive, so a live log is never rescanned
 * from the start; next/previous walk them in section order.
 */
import { type Accessor, createEffect, createSignal, on } from 'solid-js';
import { visibleText } from '../../lib/ansi.ts';
import type { LogSection, LogStore } from './log-store.ts';

export interface LogMatch {
  key: string;
  line: number;
}

export interface LogSearch {
  query: Accessor<string>;
  setQuery(q: string): void;
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

/** Occurrences of `needle` (lowercase) in `text`, as [start, end) ranges. */
export function findRanges(text: string, needle: string): [number, number][] {
  if (!needle) return [];
  const ranges: [number, number][] = [];
  const hay = text.toLowerCase();
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
  let scans = new WeakMap<LogSection, Scan>();
  let needle = '';

  createEffect(
    on([query, store.version], ([q]) => {
      const n = q.trim().toLowerCase();
      if (n !== needle) {
        needle = n;
        scans = new WeakMap();
        setCurrent(null);
      }
      if (!n) {
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
          if (visibleText(s.lines[i]!).toLowerCase().includes(n)) scan.hits.push(i);
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
    count,
    current,
    position,
    next: () => step(1),
    previous: () => step(-1),
  };
}

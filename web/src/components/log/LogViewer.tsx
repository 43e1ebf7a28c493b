/**
 * The log viewer: a windowed list over a LogStore. Every row (a job's header or one line) is
 * LINE_HEIGHT pixels high, so the rows on screen follow from the scroll position alone and only they
 * (plus OVERSCAN on each side) are in the DOM, whether the log has ten lines or ten million. Past
 * MAX_SCROLL_PX the scroll range is scaled, because browsers cap an element's height.
 *
 * Anchors: `#<job>-L<n>` is line n of job <job> (job names are unique in a build); `#L<n>` is line n
 * of the first section that has lines; `#<job>-L<n>-L<m>` (or `#L<n>-L<m>`) is lines n to m. Clicking
 * a line number sets the anchor; shift-clicking another in the same job makes it a range.
 *
 * Commands: the runner prints `$ <command>` before each command; its line has a toggle that folds
 * the command's output (the lines up to the next `$ ` line) away.
 *
 * Keys: `/` (outside a text field) or Ctrl/Cmd+F focuses the search.
 *
 * Follow mode: while the view is at the bottom, new lines keep it there; scrolling up pauses it, and
 * the Follow button (or scrolling back to the bottom) resumes it.
 */
import {
  type Accessor,
  batch,
  createEffect,
  createMemo,
  createSignal,
  For,
  type JSX,
  on,
  onCleanup,
  onMount,
  Show,
  untrack,
} from 'solid-js';
import { type AnsiSegment, type AnsiStyle, parseAnsi, styleAttrs, visibleText } from '../../lib/ansi.ts';
import type { JobStatus } from '../../lib/status.ts';
import { StatusBadge } from '../StatusBadge.tsx';
import { createLogSearch, type LogMatch, type Matcher } from './log-search.ts';
import type { LogSection, LogStore } from './log-store.ts';

export const LINE_HEIGHT = 20;
const OVERSCAN = 30;
const MAX_SCROLL_PX = 8_000_000;

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'complete' | 'error' | 'idle';

export interface LogViewerProps {
  store: LogStore;
  /** The location hash without `#`. */
  hash: Accessor<string>;
  setHash: (anchor: string) => void;
  streamState?: Accessor<StreamState>;
  jobStatus?: (jobId: string) => JobStatus | undefined;
  downloadName?: string;
  /** The plain-text log on the server (`/builds/<id>/raw`), linked as "Raw log". */
  rawUrl?: string;
  /** Called on a click of the raw link, before the browser follows it; may prevent that. */
  onRawClick?: (e: MouseEvent) => void;
  /** Shown where the lines would be while the log is empty. */
  emptyText?: string;
}

type Row =
  | { kind: 'header'; section: LogSection; index: number }
  | { kind: 'line'; section: LogSection; index: number; line: number };

/** `unit-L12`, or `unit-L12-L14` for a range (lines are 0-based here, 1-based in anchors). */
export const anchorFor = (section: LogSection, line: number, end = line) =>
  end > line ? `${section.name}-L${line + 1}-L${end + 1}` : `${section.name}-L${line + 1}`;

export interface Anchor {
  name: string | null;
  /** The first line, 0-based. */
  line: number;
  /** The last line, 0-based: `line` unless the anchor is a range. */
  end: number;
}

/**
 * `unit-L12` → { name: 'unit', line: 11, end: 11 }; `L12` → { name: null, line: 11, end: 11 };
 * `L12-L14` → lines 11 to 13 (a range given backwards is put right).
 */
export function parseAnchor(hash: string): Anchor | null {
  let text: string;
  try {
    text = decodeURIComponent(hash.replace(/^#/, ''));
  } catch {
    return null;
  }
  // A range first: `L3-L5` is lines 3 to 5, not line 5 of a job called L3.
  const m = /^(?:(.+)-)?L(\d+)-L(\d+)$/.exec(text) ?? /^(?:(.+)-)?L(\d+)()$/.exec(text);
  if (!m) return null;
  const a = Number(m[2]);
  const b = m[3] ? Number(m[3]) : a;
  if (a < 1 || b < 1) return null;
  return { name: m[1] ?? null, line: Math.min(a, b) - 1, end: Math.max(a, b) - 1 };
}

/** A line the runner prints before running a command. */
const isCommand = (line: string | undefined) => line !== undefined && visibleText(line).startsWith('$ ');

/** Lines [from, to) that a folded command hides. */
type Hidden = readonly [number, number];

/** The line a section's `v`-th shown line is, with the `hidden` ranges (sorted) left out. */
function lineAt(hidden: readonly Hidden[] | undefined, v: number): number {
  let line = v;
  if (hidden)
    for (const [from, to] of hidden) {
      if (line >= from) line += to - from;
      else break;
    }
  return line;
}

/** The inverse of lineAt for a line that is shown. */
function shownIndex(hidden: readonly Hidden[] | undefined, line: number): number {
  let v = line;
  if (hidden)
    for (const [from, to] of hidden) {
      if (to <= line) v -= to - from;
      else break;
    }
  return v;
}

interface Piece {
  text: string;
  style: AnsiStyle | null;
  mark: boolean;
}

/** Splits styled segments where search matches start and end. */
function markMatches(segments: AnsiSegment[], ranges: [number, number][]): Piece[] {
  if (ranges.length === 0) return segments.map((s) => ({ ...s, mark: false }));
  const pieces: Piece[] = [];
  let offset = 0;
  let r = 0;
  for (const seg of segments) {
    let pos = 0;
    while (pos < seg.text.length) {
      const abs = offset + pos;
      while (r < ranges.length && ranges[r]![1] <= abs) r++;
      const range = ranges[r];
      let end = seg.text.length;
      let mark = false;
      if (range && range[0] <= abs) {
        mark = true;
        end = Math.min(end, range[1] - offset);
      } else if (range) end = Math.min(end, range[0] - offset);
      pieces.push({ text: seg.text.slice(pos, end), style: seg.style, mark });
      pos = end;
    }
    offset += seg.text.length;
  }
  return pieces;
}

function LineText(props: { text: string; start: AnsiStyle | null; matcher: Matcher | null }) {
  const pieces = createMemo(() => {
    const segments = parseAnsi(props.text, props.start);
    const ranges = props.matcher ? props.matcher.ranges(segments.map((s) => s.text).join('')) : [];
    return markMatches(segments, ranges);
  });
  return (
    <For each={pieces()}>
      {(p) => {
        const content = (): JSX.Element => {
          if (!p.style) return p.text;
          const a = styleAttrs(p.style);
          return (
            <span class={a.class} style={{ color: a.color, 'background-color': a.background }}>
              {p.text}
            </span>
          );
        };
        return p.mark ? <mark>{content()}</mark> : content();
      }}
    </For>
  );
}

export function LogViewer(props: LogViewerProps) {
  const { store } = props;
  const search = createLogSearch(store);
  const [collapsed, setCollapsed] = createSignal<ReadonlySet<string>>(new Set());
  const [scrollTop, setScrollTop] = createSignal(0);
  const [viewHeight, setViewHeight] = createSignal(480);
  const [follow, setFollow] = createSignal(true);
  const [target, setTarget] = createSignal<(LogMatch & { end: number }) | null>(null);
  const [pending, setPending] = createSignal<Anchor | null>(null);
  /** Folded commands: per section key, the lines of their `$ ` lines, sorted. */
  const [folded, setFolded] = createSignal<ReadonlyMap<string, readonly number[]>>(new Map());
  /** Where each folded command's output ends, found once (and extended while its job prints). */
  const commandEnds = new WeakMap<LogSection, Map<number, { end: number; done: boolean }>>();
  let viewport!: HTMLElement;
  let searchInput!: HTMLInputElement;
  /** An anchor set by clicking its line: highlight it, do not scroll. */
  let clicked: string | null = null;

  /** The end (exclusive) of the output of the command printed at `start`: the next `$ ` line. */
  function commandEnd(s: LogSection, start: number): number {
    let ends = commandEnds.get(s);
    if (!ends) {
      ends = new Map();
      commandEnds.set(s, ends);
    }
    let e = ends.get(start);
    if (!e) {
      e = { end: start + 1, done: false };
      ends.set(start, e);
    }
    if (!e.done) {
      while (e.end < s.lines.length && !isCommand(s.lines[e.end])) e.end++;
      e.done = e.end < s.lines.length;
    }
    return e.end;
  }

  const layout = createMemo(() => {
    store.version();
    const closed = collapsed();
    const folds = folded();
    const sections = [...store.sections()];
    const offsets: number[] = [];
    const hidden: (Hidden[] | undefined)[] = [];
    const shown: number[] = [];
    let rows = 0;
    for (const s of sections) {
      offsets.push(rows);
      let h: Hidden[] | undefined;
      let count = s.lines.length;
      for (const start of folds.get(s.key) ?? []) {
        if (start >= s.lines.length) continue;
        const end = commandEnd(s, start);
        if (end > start + 1) {
          h ??= [];
          h.push([start + 1, end]);
          count -= end - start - 1;
        }
      }
      hidden.push(h);
      shown.push(count);
      rows += 1 + (closed.has(s.key) ? 0 : count);
    }
    return { sections, offsets, hidden, shown, rows };
  });

  const totalPx = () => layout().rows * LINE_HEIGHT;
  const spacerPx = () => Math.min(totalPx(), MAX_SCROLL_PX);
  /** Virtual pixels per scrolled pixel: 1 until the log is taller than MAX_SCROLL_PX. */
  const scale = () => {
    const range = spacerPx() - viewHeight();
    return range > 0 ? (totalPx() - viewHeight()) / range : 1;
  };

  let rowCache = new Map<string, Row>();

  const window_ = createMemo(() => {
    const { sections, offsets, hidden, shown, rows: total } = layout();
    const top = scrollTop() * scale();
    const first = Math.min(Math.floor(top / LINE_HEIGHT), Math.max(0, total - 1));
    const start = Math.max(0, first - OVERSCAN);
    const end = Math.min(total, first + Math.ceil(viewHeight() / LINE_HEIGHT) + OVERSCAN);
    const rows: Row[] = [];
    // Find the section of `start`, then walk forward.
    let si = 0;
    for (let lo = 0, hi = offsets.length - 1; lo <= hi; ) {
      const mid = (lo + hi) >> 1;
      if (offsets[mid]! <= start) {
        si = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const closed = collapsed();
    const cache = new Map<string, Row>();
    // Rows keep their identity while they stay on screen, so <For> moves their nodes instead of
    // rebuilding them on every scroll event.
    const keep = (key: string, section: LogSection, make: () => Row): Row => {
      const prev = rowCache.get(key);
      const row = prev && prev.section === section ? prev : make();
      cache.set(key, row);
      return row;
    };
    for (let r = start; r < end && si < sections.length; ) {
      const s = sections[si]!;
      const local = r - offsets[si]!;
      const count = closed.has(s.key) ? 0 : shown[si]!;
      const index = si;
      if (local === 0) rows.push(keep(`h:${s.key}`, s, () => ({ kind: 'header', section: s, index })));
      else if (local <= count) {
        const line = lineAt(hidden[si], local - 1);
        rows.push(keep(`l:${s.key}:${line}`, s, () => ({ kind: 'line', section: s, index, line })));
      }
      if (local >= count) si++;
      r++;
    }
    rowCache = cache;
    const frac = top - first * LINE_HEIGHT;
    return { rows, y: scrollTop() - frac - (first - start) * LINE_HEIGHT };
  });

  function rowOf(key: string, line: number | null): number {
    const { sections, offsets, hidden } = layout();
    const i = sections.findIndex((s) => s.key === key);
    if (i === -1) return 0;
    return offsets[i]! + (line === null ? 0 : shownIndex(hidden[i], line) + 1);
  }

  /** The folded command whose output holds `line`, if any. */
  function foldOf(s: LogSection, line: number): number | null {
    for (const start of folded().get(s.key) ?? []) {
      if (start < line && line < commandEnd(s, start)) return start;
    }
    return null;
  }

  function toggleFold(s: LogSection, start: number) {
    const next = new Map(folded());
    const starts = next.get(s.key) ?? [];
    next.set(
      s.key,
      starts.includes(start) ? starts.filter((x) => x !== start) : [...starts, start].sort((a, b) => a - b),
    );
    setFolded(next);
  }

  function scrollToRow(row: number) {
    const v = viewHeight();
    const virtual = Math.max(0, Math.min(row * LINE_HEIGHT - (v - LINE_HEIGHT) / 2, totalPx() - v));
    const px = virtual / scale();
    viewport.scrollTop = px;
    setScrollTop(viewport.scrollTop);
  }

  function expand(key: string) {
    if (!collapsed().has(key)) return;
    const next = new Set(collapsed());
    next.delete(key);
    setCollapsed(next);
  }

  function toggle(key: string) {
    const next = new Set(collapsed());
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setCollapsed(next);
  }

  /** Shows a line: expands its section and command, stops following, puts it in the middle of the view. */
  function reveal(m: LogMatch) {
    batch(() => {
      setFollow(false);
      expand(m.key);
      const s = store.sections().find((x) => x.key === m.key);
      const start = s ? foldOf(s, m.line) : null;
      if (s && start !== null) toggleFold(s, start);
    });
    scrollToRow(rowOf(m.key, m.line));
  }

  function toBottom() {
    viewport.scrollTop = viewport.scrollHeight;
    setScrollTop(viewport.scrollTop);
  }

  onMount(() => {
    const ro = new ResizeObserver(() => setViewHeight(viewport.clientHeight || 480));
    ro.observe(viewport);
    onCleanup(() => ro.disconnect());
    // `/` searches, as on GitHub and in less: unless the key is meant for a text field.
    const onSlash = (e: KeyboardEvent) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
      const el = e.target as HTMLElement | null;
      if (el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName))) return;
      e.preventDefault();
      searchInput.focus();
      searchInput.select();
    };
    document.addEventListener('keydown', onSlash);
    onCleanup(() => document.removeEventListener('keydown', onSlash));
  });

  // A new anchor in the URL waits until its line has arrived.
  createEffect(on(props.hash, (hash) => setPending(parseAnchor(hash))));
  createEffect(() => {
    store.version();
    const p = pending();
    if (!p) return;
    const sections = store.sections();
    const s =
      p.name === null ? sections.find((x) => x.lines.length > 0) : sections.find((x) => x.name === p.name);
    if (!s || p.line >= s.lines.length) {
      // Not there (yet): do not follow past it while it may still arrive.
      if (s || p.name === null) setFollow(false);
      return;
    }
    setPending(null);
    const end = Math.min(p.end, s.lines.length - 1);
    const m = { key: s.key, line: p.line };
    setTarget({ ...m, end });
    const anchor = anchorFor(s, p.line, end);
    if (clicked === anchor) {
      clicked = null;
      setFollow(false);
      return;
    }
    reveal(m);
  });

  // Follow: after new rows render, stay at the bottom.
  createEffect(
    on([layout, viewHeight], () => {
      if (follow() && viewport) queueMicrotask(toBottom);
    }),
  );

  function onScroll() {
    setScrollTop(viewport.scrollTop);
    const atBottom = viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - LINE_HEIGHT / 2;
    setFollow(atBottom);
  }

  function goTo(m: LogMatch | null) {
    if (m) reveal(m);
  }

  function onSearchKey(e: KeyboardEvent) {
    if (e.key === 'Enter') {
      e.preventDefault();
      goTo(e.shiftKey ? search.previous() : search.next());
    } else if (e.key === 'Escape') {
      search.setQuery('');
      (e.currentTarget as HTMLInputElement).value = '';
    }
  }

  let debounce: ReturnType<typeof setTimeout> | undefined;
  function onSearchInput(value: string) {
    clearTimeout(debounce);
    debounce = setTimeout(() => search.setQuery(value), 120);
  }
  onCleanup(() => clearTimeout(debounce));

  function onKeyDown(e: KeyboardEvent) {
    // A virtualised log is not all in the page, so the browser's find cannot see it: offer ours.
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'f') {
      e.preventDefault();
      searchInput.focus();
      searchInput.select();
    }
  }

  function download() {
    const url = URL.createObjectURL(new Blob([store.text()], { type: 'text/plain;charset=utf-8' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = props.downloadName ?? 'build.log';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  const needle = () => search.matcher() !== null;
  /** Wide enough for the longest line number of any section. */
  const numberWidth = () => {
    const longest = Math.max(0, ...layout().sections.map((s) => s.lines.length));
    return Math.max(3, String(longest).length) + 2;
  };
  const headerNote = (section: LogSection) => {
    store.version();
    const n = section.lines.length;
    return n === 0 ? 'no output' : `${n.toLocaleString()} ${n === 1 ? 'line' : 'lines'}`;
  };
  const stateLabel = () => {
    switch (props.streamState?.()) {
      case 'connecting':
        return 'Connecting…';
      case 'live':
        return 'Live';
      case 'reconnecting':
        return 'Reconnecting…';
      case 'complete':
        return 'Complete';
      case 'error':
        return 'Disconnected';
      default:
        return '';
    }
  };

  return (
    <section class="log" aria-label="Build log" onKeyDown={onKeyDown}>
      <div class="log-toolbar">
        <div class="log-search">
          <label class="visually-hidden" for="log-search-input">
            Search the log
          </label>
          <input
            id="log-search-input"
            ref={searchInput}
            type="search"
            placeholder="Search log"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => onSearchInput(e.currentTarget.value)}
            onKeyDown={onSearchKey}
            aria-invalid={search.error() !== null}
            title={search.error() ?? 'Search the log (/)'}
          />
          <button
            type="button"
            class="icon-button toggle"
            aria-pressed={search.options().regex}
            aria-label="Regular expression"
            title="Regular expression"
            onClick={() => search.setOptions({ regex: !search.options().regex })}
          >
            .*
          </button>
          <button
            type="button"
            class="icon-button toggle"
            aria-pressed={search.options().caseSensitive}
            aria-label="Match case"
            title="Match case"
            onClick={() => search.setOptions({ caseSensitive: !search.options().caseSensitive })}
          >
            Aa
          </button>
          <span class="log-count" aria-live="polite" data-testid="search-count">
            <Show when={needle()}>
              {search.position()}/{search.count().toLocaleString()}
            </Show>
            <Show when={search.error()}>
              <span class="log-search-error">invalid pattern</span>
            </Show>
          </span>
          <button
            type="button"
            class="icon-button"
            aria-label="Previous match"
            title="Previous match (Shift+Enter)"
            disabled={search.count() === 0}
            onClick={() => goTo(search.previous())}
          >
            ↑
          </button>
          <button
            type="button"
            class="icon-button"
            aria-label="Next match"
            title="Next match (Enter)"
            disabled={search.count() === 0}
            onClick={() => goTo(search.next())}
          >
            ↓
          </button>
        </div>
        <div class="log-actions">
          <span class={`log-state log-state-${props.streamState?.() ?? 'idle'}`} role="status">
            {stateLabel()}
          </span>
          <span class="muted log-lines" data-testid="line-count">
            {store.lineCount().toLocaleString()} {store.lineCount() === 1 ? 'line' : 'lines'}
          </span>
          <button
            type="button"
            aria-pressed={follow()}
            class="toggle"
            onClick={() => {
              setFollow(true);
              toBottom();
            }}
          >
            Follow
          </button>
          <button type="button" onClick={download}>
            Download
          </button>
          <Show when={props.rawUrl}>
            {(url) => (
              // A plain link, not the router's: the server answers it.
              <a
                class="button"
                href={url()}
                target="_blank"
                rel="external noopener"
                data-testid="raw-log"
                onClick={(e) => props.onRawClick?.(e)}
              >
                Raw log
              </a>
            )}
          </Show>
        </div>
      </div>
      <section
        ref={viewport}
        class="log-viewport"
        tabindex="0"
        aria-label="Log lines"
        onScroll={onScroll}
        data-testid="log-viewport"
        style={{ '--log-num-width': `${numberWidth()}ch` }}
      >
        <div class="log-spacer" style={{ height: `${spacerPx()}px` }}>
          <div class="log-window" style={{ transform: `translateY(${window_().y}px)` }}>
            <For each={window_().rows}>
              {(r) => {
                if (r.kind === 'header') {
                  const open = () => !collapsed().has(r.section.key);
                  const status = () => (r.section.key ? props.jobStatus?.(r.section.key) : undefined);
                  return (
                    <div class="log-row log-header" data-section={r.section.name}>
                      <button
                        type="button"
                        class="log-toggle"
                        aria-expanded={open()}
                        onClick={() => toggle(r.section.key)}
                      >
                        <span aria-hidden="true">{open() ? '▾' : '▸'}</span> {r.section.name}
                      </button>
                      <Show when={status()}>{(s) => <StatusBadge status={s()} small />}</Show>
                      <span class="muted">{headerNote(r.section)}</span>
                    </div>
                  );
                }
                const anchor = () => anchorFor(r.section, r.line);
                const cur = () => search.current();
                const tgt = () => target();
                const command = isCommand(r.section.lines[r.line]);
                const isFolded = () => (folded().get(r.section.key) ?? []).includes(r.line);
                const hiddenCount = () => {
                  layout();
                  return isFolded() ? commandEnd(r.section, r.line) - r.line - 1 : 0;
                };
                return (
                  <div
                    class="log-row log-line"
                    classList={{
                      'log-target':
                        tgt()?.key === r.section.key && tgt()!.line <= r.line && r.line <= tgt()!.end,
                      'log-current': cur()?.key === r.section.key && cur()?.line === r.line,
                      'log-command': command,
                    }}
                    id={anchor()}
                  >
                    <a
                      class="log-num"
                      href={`#${anchor()}`}
                      tabindex="-1"
                      title="Link to this line (Shift+click: to a range)"
                      onClick={(e) => {
                        e.preventDefault();
                        const t = untrack(target);
                        const link =
                          e.shiftKey && t && t.key === r.section.key
                            ? anchorFor(r.section, Math.min(t.line, r.line), Math.max(t.line, r.line))
                            : anchor();
                        if (e.shiftKey) window.getSelection()?.removeAllRanges();
                        clicked = link;
                        props.setHash(link);
                      }}
                    >
                      {r.line + 1}
                    </a>
                    <Show when={command}>
                      <button
                        type="button"
                        class="log-fold"
                        aria-expanded={!isFolded()}
                        aria-label={isFolded() ? 'Show this command’s output' : 'Hide this command’s output'}
                        title={isFolded() ? 'Show this command’s output' : 'Hide this command’s output'}
                        onClick={() => toggleFold(r.section, r.line)}
                      >
                        {isFolded() ? '▸' : '▾'}
                      </button>
                    </Show>
                    <span class="log-text">
                      <LineText
                        text={r.section.lines[r.line] ?? ''}
                        start={r.section.carry.get(r.line) ?? null}
                        matcher={search.matcher()}
                      />
                    </span>
                    <Show when={hiddenCount() > 0}>
                      <span class="muted log-folded" data-testid="folded-note">
                        … {hiddenCount().toLocaleString()} {hiddenCount() === 1 ? 'line' : 'lines'} hidden
                      </span>
                    </Show>
                  </div>
                );
              }}
            </For>
          </div>
        </div>
        <Show when={store.lineCount() === 0}>
          <p class="log-empty">{props.emptyText ?? 'No output yet.'}</p>
        </Show>
      </section>
    </section>
  );
}

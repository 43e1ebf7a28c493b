/**
 * A build's log as plain arrays, one section per job: what the viewer windows over. It holds a
 * million lines without a DOM node per line. Appends are idempotent by line number, so a chunk
 * delivered twice (a resubscription that replays from an older cursor) adds nothing, and a newer
 * attempt of the build (its runner was lost and another one started over) replaces the old log.
 * Readers track `version()`: it changes once per animation frame at most, however many chunks came.
 */
import { type Accessor, createSignal } from 'solid-js';
import { type AnsiStyle, endStyle } from '../../lib/ansi.ts';

export interface LogSection {
  /** The job's id, or '' for lines that belong to no job. */
  readonly key: string;
  /** The job's name: unique in a build, slug-like, used in `#<name>-L<n>` anchors. */
  name: string;
  readonly lines: string[];
  /** The SGR style a line starts in, for the lines that do not start plain. */
  readonly carry: Map<number, AnsiStyle>;
  end: AnsiStyle | null;
}

export interface LogChunkInput {
  attempt: number;
  firstLine: number;
  lines: readonly string[];
  job: { id: string; name: string } | null;
}

export interface LogStore {
  version: Accessor<number>;
  attempt: Accessor<number>;
  sections(): readonly LogSection[];
  lineCount(): number;
  /** Orders (and names) sections after the build's jobs; unknown jobs keep their arrival order after them. */
  setJobs(jobs: readonly { id: string; name: string }[]): void;
  /** Adds the chunk's lines that are new; returns how many were added. */
  append(chunk: LogChunkInput): number;
  /** The whole log as text, a header line before each job. */
  text(): string;
}

export function createLogStore(): LogStore {
  const [version, setVersion] = createSignal(0);
  const [attempt, setAttempt] = createSignal(0);
  let sections: LogSection[] = [];
  let byKey = new Map<string, LogSection>();
  let jobs: readonly { id: string; name: string }[] = [];
  let total = 0;
  let scheduled = false;

  const changed = () => {
    if (scheduled) return;
    scheduled = true;
    const flush = () => {
      scheduled = false;
      setVersion((v) => v + 1);
    };
    // Hidden tabs get no animation frames: still flush, just less often.
    if (typeof document !== 'undefined' && document.visibilityState === 'visible')
      requestAnimationFrame(flush);
    else setTimeout(flush, 250);
  };

  const sectionFor = (key: string, name: string): LogSection => {
    let s = byKey.get(key);
    if (!s) {
      s = { key, name, lines: [], carry: new Map(), end: null };
      byKey.set(key, s);
      sections.push(s);
      order();
    }
    return s;
  };

  function order() {
    const rank = new Map(jobs.map((j, i) => [j.id, i]));
    sections.sort((a, b) => {
      const ra = a.key === '' ? -1 : (rank.get(a.key) ?? jobs.length);
      const rb = b.key === '' ? -1 : (rank.get(b.key) ?? jobs.length);
      return ra - rb;
    });
  }

  function reset() {
    sections = [];
    byKey = new Map();
    total = 0;
    for (const j of jobs) sectionFor(j.id, j.name);
  }

  return {
    version,
    attempt,
    sections: () => {
      version();
      return sections;
    },
    lineCount: () => {
      version();
      return total;
    },
    setJobs(next) {
      jobs = next;
      for (const j of next) sectionFor(j.id, j.name).name = j.name;
      order();
      changed();
    },
    append(chunk) {
      if (chunk.attempt < attempt()) return 0;
      if (chunk.attempt > attempt()) {
        if (attempt() !== 0) reset();
        setAttempt(chunk.attempt);
      }
      const s = chunk.job ? sectionFor(chunk.job.id, chunk.job.name) : sectionFor('', 'build');
      // Lines before what the section has are repeats; a gap cannot happen (the API never skips).
      const from = Math.max(0, s.lines.length - (chunk.firstLine - 1));
      for (let i = from; i < chunk.lines.length; i++) {
        const line = chunk.lines[i]!;
        if (s.end) s.carry.set(s.lines.length, s.end);
        s.end = endStyle(line, s.end);
        s.lines.push(line);
      }
      const added = Math.max(0, chunk.lines.length - from);
      total += added;
      if (added > 0) changed();
      return added;
    },
    text() {
      const out: string[] = [];
      for (const s of sections) {
        if (s.lines.length === 0) continue;
        // One join per section: spreading a million lines into push() would overflow the stack.
        out.push(`### ${s.name}`, s.lines.join('\n'));
      }
      return `${out.join('\n')}\n`;
    },
  };
}

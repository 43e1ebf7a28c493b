/**
 * A manifest editor: a plain textarea (so every browser feature of text editing works) with a line-number
 * gutter, and the API's manifest problems marked at their lines. `focusAt` puts the caret on a problem.
 *
 * The gutter is windowed: only the numbers in view (plus OVERSCAN on each side) are in the DOM, so a
 * pasted manifest of 40,000 lines costs a screenful of elements, not 40,000 of them on every keystroke.
 */
import { createEffect, createMemo, createSignal, For, onCleanup, onMount } from 'solid-js';

export interface ManifestProblem {
  path: string;
  line: number | null;
  column: number | null;
  message: string;
}

export interface ManifestEditorApi {
  focusAt(line: number, column: number | null): void;
}

const LINE_HEIGHT = 20;
const PADDING = 8;
const OVERSCAN = 10;

/** Lines in `text`: one more than its newlines. */
function countLines(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

export function ManifestEditor(props: {
  id: string;
  value: string;
  onInput: (value: string) => void;
  problems: readonly ManifestProblem[];
  describedBy?: string;
  ref?: (api: ManifestEditorApi) => void;
}) {
  let textarea!: HTMLTextAreaElement;
  let escaped = false;
  const [scroll, setScroll] = createSignal(0);
  const [height, setHeight] = createSignal(480);
  const lineCount = createMemo(() => countLines(props.value));
  /** The first line number drawn (1-based) and the numbers from it to the end of the view. */
  const window_ = createMemo(() => {
    const first = Math.max(1, Math.floor((scroll() - PADDING) / LINE_HEIGHT) + 1 - OVERSCAN);
    const last = Math.min(lineCount(), first + Math.ceil(height() / LINE_HEIGHT) + 2 * OVERSCAN);
    return { first, numbers: Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i) };
  });
  const byLine = createMemo(() => {
    const m = new Map<number, string[]>();
    for (const p of props.problems) {
      if (p.line === null) continue;
      m.set(p.line, [...(m.get(p.line) ?? []), p.message]);
    }
    return m;
  });

  onMount(() => {
    const ro = new ResizeObserver(() => setHeight(textarea.clientHeight || 480));
    ro.observe(textarea);
    onCleanup(() => ro.disconnect());
  });
  // Set only when it differs: writing a big manifest back into the textarea on every keystroke
  // would cost as much as pasting it again.
  createEffect(() => {
    if (textarea.value !== props.value) textarea.value = props.value;
  });

  props.ref?.({
    focusAt(line, column) {
      const lines = props.value.split('\n');
      let offset = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i]!.length + 1;
      const lineText = lines[line - 1] ?? '';
      offset += Math.min(Math.max((column ?? 1) - 1, 0), lineText.length);
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      textarea.scrollTop = Math.max(0, (line - 1) * LINE_HEIGHT - textarea.clientHeight / 2);
      setScroll(textarea.scrollTop);
    },
  });

  return (
    <div class="editor" classList={{ 'editor-invalid': props.problems.length > 0 }}>
      <div class="editor-gutter" aria-hidden="true" data-lines={lineCount()}>
        <div style={{ transform: `translateY(${(window_().first - 1) * LINE_HEIGHT - scroll()}px)` }}>
          <For each={window_().numbers}>
            {(n) => (
              <div
                class="editor-num"
                classList={{ 'editor-num-problem': byLine().has(n) }}
                title={byLine().get(n)?.join('\n')}
                data-line={n}
              >
                {n}
              </div>
            )}
          </For>
        </div>
      </div>
      <div class="editor-body">
        <div class="editor-marks" aria-hidden="true" style={{ transform: `translateY(${-scroll()}px)` }}>
          <For each={[...byLine().keys()]}>
            {(line) => <div class="editor-mark" style={{ top: `${PADDING + (line - 1) * LINE_HEIGHT}px` }} />}
          </For>
        </div>
        <textarea
          ref={textarea}
          id={props.id}
          wrap="off"
          spellcheck={false}
          autocapitalize="off"
          autocomplete="off"
          aria-invalid={props.problems.length > 0}
          aria-describedby={props.describedBy}
          onInput={(e) => props.onInput(e.currentTarget.value)}
          onScroll={(e) => setScroll(e.currentTarget.scrollTop)}
          onKeyDown={(e) => {
            // Tab indents (YAML wants spaces); Escape then Tab leaves the editor, as in other editors.
            if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !escaped) {
              e.preventDefault();
              const el = e.currentTarget;
              el.setRangeText('  ', el.selectionStart, el.selectionEnd, 'end');
              props.onInput(el.value);
            }
            escaped = e.key === 'Escape';
          }}
        />
      </div>
    </div>
  );
}

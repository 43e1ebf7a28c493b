import { createSignal } from 'solid-js';

/**
 * A value to paste elsewhere, with a Copy button. Where the clipboard API is refused (plain http
 * other than localhost, or a denied permission) the text is selected instead, for Ctrl+C.
 */
export function CopyField(props: { label: string; value: string; testId?: string }) {
  const [state, setState] = createSignal<'idle' | 'copied' | 'selected'>('idle');
  let code: HTMLElement | undefined;

  async function copy() {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(props.value);
      setState('copied');
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code!);
      const selection = window.getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
      setState('selected');
    }
  }

  return (
    <div class="copy-field">
      <span class="copy-label">{props.label}</span>
      <div class="secret">
        <code ref={code} data-testid={props.testId}>
          {props.value}
        </code>
        <button type="button" aria-label={`Copy ${props.label.toLowerCase()}`} onClick={copy}>
          {state() === 'copied' ? 'Copied' : 'Copy'}
        </button>
        <span class="muted" role="status">
          {state() === 'selected' ? 'Selected: press Ctrl+C (⌘C) to copy.' : ''}
        </span>
      </div>
    </div>
  );
}

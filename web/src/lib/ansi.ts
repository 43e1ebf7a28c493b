/**
 * A small ANSI parser for log lines: SGR colours (30–37, 90–97, 40–47, 100–107, 38/48;5;n and
 * 38/48;2;r;g;b), bold, dim, italic, underline and resets become styled segments; every other escape
 * sequence and control character is dropped. A carriage return starts the line over, as a terminal
 * does for progress bars. The output is plain text plus styles: callers render it as text nodes, never
 * as HTML.
 */

/** A colour: 0–255 from the xterm palette (0–15 follow the theme), or a `#rrggbb` string. */
export type AnsiColor = number | string;

export interface AnsiStyle {
  readonly fg: AnsiColor | null;
  readonly bg: AnsiColor | null;
  readonly bold: boolean;
  readonly dim: boolean;
  readonly italic: boolean;
  readonly underline: boolean;
}

export interface AnsiSegment {
  text: string;
  /** Null when the text is unstyled. */
  style: AnsiStyle | null;
}

const PLAIN: AnsiStyle = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };

const isPlain = (s: AnsiStyle) =>
  s.fg === null && s.bg === null && !s.bold && !s.dim && !s.italic && !s.underline;

// CSI (ESC [ … final), OSC (ESC ] … BEL or ST), and two-character escapes.
const ESCAPE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal control sequences is the point
  /\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?|\r|[\x00-\x08\x0b-\x1f\x7f]/g;

// biome-ignore lint/suspicious/noControlCharactersInRegex: a line needs parsing only when it has one
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** The xterm colour `n` (16–255) as `#rrggbb`; 0–15 stay numbers so the theme decides them. */
function xterm(n: number): AnsiColor {
  if (n < 16) return n;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `#${hex(v)}${hex(v)}${hex(v)}`;
  }
  const i = n - 16;
  const level = (c: number) => (c === 0 ? 0 : 55 + c * 40);
  return `#${hex(level(Math.floor(i / 36)))}${hex(level(Math.floor(i / 6) % 6))}${hex(level(i % 6))}`;
}

/** Applies one SGR parameter list (`1;31`) to a style. */
export function applySgr(style: AnsiStyle, params: string): AnsiStyle {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  let s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) s = { ...PLAIN };
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) {
      s.bold = false;
      s.dim = false;
    } else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c === 49) s.bg = null;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 38 || c === 48) {
      let color: AnsiColor | null = null;
      if (codes[i + 1] === 5 && codes[i + 2] !== undefined) {
        color = xterm(Math.min(255, Math.max(0, codes[i + 2]!)));
        i += 2;
      } else if (codes[i + 1] === 2 && codes[i + 4] !== undefined) {
        const [r, g, b] = [codes[i + 2]!, codes[i + 3]!, codes[i + 4]!].map((v) =>
          Math.min(255, Math.max(0, v)),
        );
        color = `#${hex(r!)}${hex(g!)}${hex(b!)}`;
        i += 4;
      } else break;
      if (c === 38) s.fg = color;
      else s.bg = color;
    }
  }
  return isPlain(s) ? PLAIN : s;
}

/** The line as styled segments, starting in `start` (the style the previous line ended in). */
export function parseAnsi(line: string, start: AnsiStyle | null = null): AnsiSegment[] {
  if (!CONTROL.test(line)) return [{ text: line, style: start }];
  let style = start ?? PLAIN;
  let segments: AnsiSegment[] = [];
  let last = 0;
  const push = (text: string) => {
    if (text === '') return;
    const st = isPlain(style) ? null : style;
    const prev = segments.at(-1);
    if (prev && prev.style === st) prev.text += text;
    else segments.push({ text, style: st });
  };
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m; m = ESCAPE.exec(line)) {
    push(line.slice(last, m.index));
    last = ESCAPE.lastIndex;
    if (m[0] === '\r') {
      // A trailing CR (CRLF output) ends the line; one in the middle starts it over.
      if (last < line.length) segments = [];
    } else if (m[2] === 'm') style = applySgr(style, m[1] ?? '');
  }
  push(line.slice(last));
  return segments;
}

/** The style a line leaves behind for the next one (terminals keep SGR state across newlines). */
export function endStyle(line: string, start: AnsiStyle | null): AnsiStyle | null {
  if (!line.includes('\x1b')) return start;
  let style = start ?? PLAIN;
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m; m = ESCAPE.exec(line)) {
    if (m[2] === 'm') style = applySgr(style, m[1] ?? '');
  }
  return isPlain(style) ? null : style;
}

/** What the line shows, without styles: what search matches and what a reader copies. */
export function visibleText(line: string): string {
  if (!CONTROL.test(line)) return line;
  return parseAnsi(line)
    .map((s) => s.text)
    .join('');
}

/**
 * The 16 colours behind text, as terminals show them (VS Code's palette): a coloured background is
 * the same in both themes, and the theme's colours (made for the log's own background) are not
 * used on it.
 */
const BACKGROUND_16 = [
  '#000000',
  '#cd3131',
  '#0dbc79',
  '#e5e510',
  '#2472c8',
  '#bc3fbc',
  '#11a8cd',
  '#e5e5e5',
  '#666666',
  '#f14c4c',
  '#23d18b',
  '#f5f543',
  '#3b8eea',
  '#d670d6',
  '#29b8db',
  '#ffffff',
];

/** WCAG's contrast for body text. */
const MIN_CONTRAST = 4.5;

const asHex = (c: AnsiColor): string =>
  typeof c === 'number' ? (c < 16 ? BACKGROUND_16[c]! : (xterm(c) as string)) : c;

function luminance(hexColor: string): number {
  const n = Number.parseInt(hexColor.slice(1), 16);
  const channel = (v: number) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel((n >> 16) & 255) + 0.7152 * channel((n >> 8) & 255) + 0.0722 * channel(n & 255);
}

function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/**
 * The text colour on a background: the one asked for when it reads there (white on blue does not,
 * with any theme's blue), else black or white, whichever stands out more.
 */
function readableOn(background: string, fg: AnsiColor | null): string {
  const wanted = fg === null ? null : asHex(fg);
  if (wanted && contrast(wanted, background) >= MIN_CONTRAST) return wanted;
  return contrast('#000000', background) >= contrast('#ffffff', background) ? '#000000' : '#ffffff';
}

/**
 * CSS classes and inline style for a segment: theme colours for 0–15 and inline for the rest; on a
 * background, both colours inline, the text's made readable on it.
 */
export function styleAttrs(style: AnsiStyle): { class: string; color?: string; background?: string } {
  const classes: string[] = [];
  let color: string | undefined;
  let background: string | undefined;
  if (style.bg !== null) {
    background = asHex(style.bg);
    color = readableOn(background, style.fg);
  } else if (typeof style.fg === 'number') classes.push(`a-f${style.fg}`);
  else if (style.fg) color = style.fg;
  if (style.bold) classes.push('a-bold');
  if (style.dim) classes.push('a-dim');
  if (style.italic) classes.push('a-italic');
  if (style.underline) classes.push('a-underline');
  return { class: classes.join(' '), color, background };
}

/**
 * YAML text to a document, for the manifest reader: yaml's parseDocument taken apart (lexer, CST
 * parser, composer) so that hostile text is refused before anything slow or recursive runs:
 * nesting is counted on the parser's stack after every token (MAX_NESTING), reading stops after
 * MAX_PROBLEMS syntax errors, and duplicate keys are found in one pass (yaml's own check compares
 * every key with every other one: 30,000 keys took seconds).
 */
import {
  type Alias,
  Composer,
  type Document,
  isAlias,
  isMap,
  isScalar,
  Lexer,
  type LineCounter,
  type Node,
  Parser,
  visit,
} from 'yaml';
import type { ManifestProblem } from './types.ts';

/**
 * Collections inside collections. A manifest needs four (the root map, `jobs`, a job, its `commands`);
 * yaml composes nodes recursively, so thousands of levels (`[[[…]]]`, 2 bytes each) overflow the
 * stack or exhaust the heap of the process. Counted while the text is parsed, before composing.
 */
export const MAX_NESTING = 64;
/** Problems returned at most; a hostile manifest can have one on every line. */
export const MAX_PROBLEMS = 100;

/** yaml's message, which may quote the text it stumbled on at any length: kept to one short line. */
export function yamlMessage(s: string): string {
  const text = s.charAt(0).toLowerCase() + s.slice(1);
  return `invalid YAML: ${text.length > 200 ? `${text.slice(0, 199)}…` : text}`;
}

type ParsedYaml =
  | { ok: true; doc: Document.Parsed; aliases: Map<Alias, Node> }
  | { ok: false; problems: ManifestProblem[] };

/** The document of `text`, its aliases resolved to their nodes, or the problems that stop reading. */
export function parseYaml(text: string, lines: LineCounter): ParsedYaml {
  const parser = new Parser(lines.addNewLine);
  const composer = new Composer({ uniqueKeys: false });
  const docs: Document.Parsed[] = [];
  lines.addNewLine(0);
  /** Syntax errors so far: past MAX_PROBLEMS the rest is not worth the time it takes to compose. */
  const syntax: { offset: number; message: string }[] = [];
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) {
      if (token.type === 'error') {
        syntax.push({ offset: token.offset, message: token.message });
        if (syntax.length > MAX_PROBLEMS) return { ok: false, problems: syntaxProblems(syntax, lines) };
      }
      docs.push(...composer.next(token));
    }
    const deepest = parser.stack.length > MAX_NESTING ? deepestCollection(parser.stack) : null;
    if (deepest !== null) {
      const { line, col } = lines.linePos(deepest.offset);
      const message = `the manifest is nested deeper than ${MAX_NESTING} levels of lists and maps`;
      return { ok: false, problems: [{ path: '', line, column: col, message }] };
    }
  }
  for (const token of parser.end()) docs.push(...composer.next(token));
  docs.push(...composer.end(true, text.length));

  const problems: ManifestProblem[] = [];
  const seen = new Set<string>();
  const report = (offset: number, message: string) => {
    const { line, col } = lines.linePos(offset);
    // yaml often reports one mistake several times at the same place; the first message is the clearest.
    if (seen.has(`${line}:${col}`)) return;
    seen.add(`${line}:${col}`);
    problems.push({ path: '', line, column: col, message: yamlMessage(message) });
  };
  const [doc, second] = docs;
  if (!doc) throw new Error('yaml composed no document, though composer.end(true) always makes one');
  if (second) report(second.range[0], 'a manifest is one document; found a second one');
  for (const error of doc.errors) report(error.pos[0], error.message);
  const { aliases, duplicateKeys } = walk(doc);
  for (const key of duplicateKeys) report(key.range?.[0] ?? 0, 'map keys must be unique');
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, doc, aliases };
}

/** The first MAX_PROBLEMS syntax errors, each once per place, and a line saying more were found. */
function syntaxProblems(
  errors: { offset: number; message: string }[],
  lines: LineCounter,
): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const seen = new Set<string>();
  for (const { offset, message } of errors.slice(0, MAX_PROBLEMS)) {
    const { line, col } = lines.linePos(offset);
    if (seen.has(`${line}:${col}`)) continue;
    seen.add(`${line}:${col}`);
    problems.push({ path: '', line, column: col, message: yamlMessage(message) });
  }
  problems.push({
    path: '',
    line: null,
    column: null,
    message: 'more invalid YAML follows; fix these first',
  });
  return problems;
}

/** The innermost collection on the CST parser's stack when more than MAX_NESTING are open, else null. */
function deepestCollection(stack: readonly { type: string; offset: number }[]): { offset: number } | null {
  let depth = 0;
  let deepest: { offset: number } | null = null;
  for (const token of stack) {
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection')
      continue;
    depth += 1;
    if (depth > MAX_NESTING) {
      deepest = token;
      break;
    }
  }
  return deepest;
}

/**
 * One pass over the document: each alias with the node it refers to (the last one with that anchor
 * before it, in document order), and each scalar key that repeats one before it in the same map.
 */
function walk(doc: Document.Parsed): { aliases: Map<Alias, Node>; duplicateKeys: Node[] } {
  const anchors = new Map<string, Node>();
  const aliases = new Map<Alias, Node>();
  const duplicateKeys: Node[] = [];
  visit(doc, {
    // One visitor for every kind: yaml calls a Map visitor instead of a Node visitor, not as well.
    Node(_key, node) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target) aliases.set(node, target);
        return;
      }
      if (node.anchor) anchors.set(node.anchor, node);
      if (!isMap(node)) return;
      const keys = new Set<unknown>();
      for (const { key } of node.items) {
        if (!isScalar(key)) continue;
        if (keys.has(key.value)) duplicateKeys.push(key);
        keys.add(key.value);
      }
    },
  });
  return { aliases, duplicateKeys };
}

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { parseManifest } from './manifest.ts';
import type { ParseResult } from './types.ts';

/**
 * parseManifest takes text from anyone who may submit a build, in the serve process. Whatever it is
 * given, it must answer (a manifest or problems) and must not throw, overflow the stack or take long.
 *
 * The time bound is the one timed assertion allowed in tests: it is a bound on pathological
 * behaviour (exponential expansion, quadratic scans), not a figure; it is generous (the slowest
 * inputs here take a few milliseconds) so a loaded machine does not trip it.
 */
const MAX_MS_PER_INPUT = 1000;

function check(text: string): void {
  const started = performance.now();
  let result: ParseResult;
  try {
    result = parseManifest(text);
  } catch (error) {
    throw new Error(`parseManifest threw on ${preview(text)}: ${String(error)}`);
  }
  const ms = performance.now() - started;
  if (ms > MAX_MS_PER_INPUT) throw new Error(`parseManifest took ${Math.round(ms)} ms on ${preview(text)}`);
  if (result.ok) return;
  if (result.problems.length === 0) throw new Error(`no problems, yet not ok, for ${preview(text)}`);
  for (const p of result.problems) {
    const clear =
      typeof p.path === 'string' &&
      (p.line === null || (Number.isInteger(p.line) && p.line >= 1)) &&
      (p.column === null || (Number.isInteger(p.column) && p.column >= 1)) &&
      p.message.length > 0 &&
      p.message.length <= 400 &&
      // yaml catches a stack overflow and reports it as a YAML error; that is a crash, not a problem.
      !/call stack|out of memory/i.test(p.message);
    if (!clear) throw new Error(`unclear problem ${JSON.stringify(p).slice(0, 600)} for ${preview(text)}`);
  }
}

function preview(text: string): string {
  return `${text.length} characters: ${JSON.stringify(text.slice(0, 120))}${text.length > 120 ? '…' : ''}`;
}

const VALID = `driver:
  type: docker
  image: node:20
  workspace: /src
env: [A=1, B=two]
stages: [build, test]
allow_failures: [test]
jobs:
  - stage: build
    name: compile
    commands:
      - &make make all
      - echo "done"
    artifacts: [out/app => app]
  - stage: test
    commands: [*make, 'npm test']
timeout: 30m
`;

/** Pieces that mean something to YAML's lexer and parser, and a few the manifest reader knows. */
const YAML_PIECES = [
  '[',
  ']',
  '{',
  '}',
  ',',
  ': ',
  ':',
  '- ',
  '-',
  '? ',
  '?',
  '\n',
  '\r\n',
  '\r',
  ' ',
  '  ',
  '\t',
  '#',
  '# c\n',
  '&a ',
  '&b ',
  '*a',
  '*b',
  '!',
  '!!str ',
  '!!map ',
  '!t ',
  '|',
  '|-',
  '>',
  '>+2',
  '"',
  "'",
  '\\',
  '\\u00e9',
  '---',
  '...',
  '%YAML 1.1\n',
  '%TAG ! tag:x,2000:\n',
  '<<: ',
  '@',
  '`',
  'driver',
  'type',
  'os',
  'docker',
  'stages',
  'jobs',
  'stage',
  'commands',
  'env',
  'timeout',
  '30m',
  'x',
  '1',
  'null',
  '~',
  'true',
  '\u0000',
  '\uFEFF',
  '\u2028',
  '\uD800',
  '\uDFFF',
  '😀',
  'é',
];

const yamlish = fc
  .array(fc.oneof(fc.constantFrom(...YAML_PIECES), fc.string({ maxLength: 6 })), { maxLength: 400 })
  .map((pieces) => pieces.join(''));

/** Collections inside collections, written each way YAML allows, thousands of levels deep. */
const deepNesting = fc
  .record({
    depth: fc.integer({ min: 1, max: 20_000 }),
    style: fc.constantFrom(
      'flow-seq',
      'flow-map',
      'block-seq',
      'explicit-key',
      'indented',
      'mixed',
      'unclosed',
    ),
    inner: fc.constantFrom('', 'x', '*a', '&a x', '[]', '{}'),
  })
  .map(({ depth, style, inner }) => {
    switch (style) {
      case 'flow-seq':
        return `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
      case 'flow-map':
        return `${'{a: '.repeat(depth)}${inner}${'}'.repeat(depth)}`;
      case 'block-seq':
        return `${'- '.repeat(depth)}${inner}`;
      case 'explicit-key':
        return `${'? '.repeat(depth)}${inner}`;
      case 'indented': {
        const levels = Math.min(depth, 600);
        return `${Array.from({ length: levels }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} ${inner}`;
      }
      case 'mixed':
        return `${'- [{a: '.repeat(depth)}${inner}`;
      default:
        return `jobs: ${'['.repeat(depth)}`;
    }
  });

/** Anchors whose lists alias the anchor before, in and out of the places the manifest reads. */
const aliasBombs = fc
  .record({
    levels: fc.integer({ min: 1, max: 30 }),
    fanOut: fc.integer({ min: 1, max: 40 }),
    use: fc.constantFrom('commands', 'jobs', 'stages', 'env', 'nowhere'),
    asMap: fc.boolean(),
  })
  .map(({ levels, fanOut, use, asMap }) => {
    const lines = [asMap ? 'a0: &a0 {stage: s, commands: [x]}' : 'a0: &a0 [x]'];
    for (let i = 1; i < levels; i++) {
      lines.push(`a${i}: &a${i} [${Array.from({ length: fanOut }, () => `*a${i - 1}`).join(', ')}]`);
    }
    const top = `*a${levels - 1}`;
    const uses: Record<string, string> = {
      commands: `jobs: [{stage: s, commands: ${top}}]`,
      jobs: `jobs: ${top}`,
      stages: `stages: ${top}`,
      env: `env: ${top}`,
      nowhere: '',
    };
    return `${lines.join('\n')}\ndriver: {type: os}\n${use === 'stages' ? '' : 'stages: [s]\n'}${uses[use]}\n`;
  });

/** Many aliases to one anchor: flat, so only their number is large. */
const manyAliases = fc
  .record({ count: fc.integer({ min: 1, max: 30_000 }), jobs: fc.integer({ min: 1, max: 300 }) })
  .map(
    ({ count, jobs }) =>
      `driver: {type: os}\nstages: [s]\nc: &c [${Array(Math.max(1, Math.floor(count / jobs)))
        .fill('make')
        .join(', ')}]\n` + `j: &j {stage: s, commands: *c}\njobs: [${Array(jobs).fill('*j').join(', ')}]\n`,
  );

/** One piece repeated into a long line, possibly inside a manifest field. */
const longLines = fc
  .record({
    piece: fc.oneof(
      fc.constantFrom('x', ' ', '"', '\\', '#', '[', ':', '- ', '\t', 'é', '😀'),
      fc.string({ maxLength: 8 }),
    ),
    times: fc.integer({ min: 1, max: 40_000 }),
    where: fc.constantFrom('alone', 'command', 'quoted', 'key', 'comment'),
  })
  .map(({ piece, times, where }) => {
    const long = piece.repeat(times);
    switch (where) {
      case 'alone':
        return long;
      case 'command':
        return `driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [${long}]}]\n`;
      case 'quoted':
        return `driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: ["${long}"]}]\n`;
      case 'key':
        return `${long}: 1\n`;
      default:
        return `# ${long}\n${VALID}`;
    }
  });

/** Any code points, lone surrogates, control characters and byte-order marks included. */
const oddUnicode = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc
    .array(
      fc.constantFrom(
        '\u0000',
        '\u0085',
        '\u00A0',
        '\u2028',
        '\u2029',
        '\uFEFF',
        '\uD800',
        '\uDC00',
        '\u202E',
        '\uFFFF',
        '\u{10FFFF}',
        '\u001B',
      ),
      { maxLength: 50 },
    )
    .map((cs) => cs.join('')),
);

/** The valid manifest with characters inserted, deleted and replaced at random places. */
const mutatedValid = fc
  .array(
    fc.record({
      at: fc.nat({ max: VALID.length }),
      cut: fc.nat({ max: 20 }),
      insert: fc.oneof(fc.constantFrom(...YAML_PIECES), fc.string({ maxLength: 4 })),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((edits) =>
    edits.reduce((text, { at, cut, insert }) => {
      const i = Math.min(at, text.length);
      return text.slice(0, i) + insert + text.slice(i + cut);
    }, VALID),
  );

describe('parseManifest under fuzzing', () => {
  it('answers every YAML-ish string with a manifest or clear problems, quickly', () => {
    fc.assert(fc.property(yamlish, check), { numRuns: 300 });
  });

  it('answers deep nesting of every kind without overflowing the stack', () => {
    fc.assert(fc.property(deepNesting, check), { numRuns: 60 });
  });

  it('answers alias bombs and many aliases without expanding them', () => {
    fc.assert(fc.property(fc.oneof(aliasBombs, manyAliases), check), { numRuns: 60 });
  });

  it('answers long lines, odd unicode and mutated manifests', () => {
    fc.assert(fc.property(fc.oneof(longLines, oddUnicode, mutatedValid), check), { numRuns: 200 });
  });
});

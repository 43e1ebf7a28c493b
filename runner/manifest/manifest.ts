/**
 * The manifest (Djinn's format plus `timeout` and `queue`) read from YAML into a Manifest, with every
 * problem at once, each with its path, line and column. Longer than most files on purpose: it is the
 * one table of the manifest's fields and their checks, kept together so that every problem is worded
 * and located the same way; the YAML layer (limits on hostile text) is in yaml.ts.
 */
import { type Alias, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, type Node } from 'yaml';
import { parseDuration } from './duration.ts';
import { SETUP_STAGE } from './plan.ts';
import {
  DEFAULT_QUEUE,
  DEFAULT_TIMEOUT_MS,
  DRIVER_TYPES,
  type DriverType,
  MAX_MANIFEST_BYTES,
  type Manifest,
  type ManifestArtifact,
  type ManifestDriver,
  type ManifestObject,
  type ManifestProblem,
  type ManifestSource,
  type ParseResult,
} from './types.ts';
import { MAX_PROBLEMS, parseYaml } from './yaml.ts';

export interface ParseOptions {
  /** Drivers enabled on the server; default: all of DRIVER_TYPES. */
  drivers?: readonly string[];
  /** A build of a repository's commit: the `setup` stage checks it out, so no stage may take the name. */
  checkout?: boolean;
}

const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
const MAX_NAMESPACE_DEPTH = 20;
const NAMESPACE_SEGMENT = /^[a-zA-Z0-9]+$/;
const NAMESPACE_OWNER = /^[a-zA-Z0-9._-]+$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const QUEUE_NAME = /^[a-zA-Z0-9._-]{1,64}$/;
/**
 * Values read, counting each pass through an alias. A 256 KiB manifest holds far fewer, so only an
 * alias bomb (anchors that refer to anchors) reaches it, and it is refused instead of expanded.
 */
const MAX_VALUES_READ = 200_000;

const DRIVER_OPTIONS: Record<DriverType, { required: string[]; optional: string[] }> = {
  os: { required: [], optional: [] },
  docker: { required: ['image', 'workspace'], optional: [] },
  qemu: { required: ['image'], optional: ['arch'] },
};

/** Checks of driver option values: a message when the value is wrong, else null. */
const DRIVER_OPTION_CHECKS: Record<string, (value: string) => string | null> = {
  image: (v) => (v.trim() === '' ? 'must not be empty' : null),
  workspace: (v) => (v.startsWith('/') ? null : `must be an absolute path like /workspace, got ${quote(v)}`),
  arch: (v) => (v === 'x86_64' ? null : `unsupported architecture ${quote(v)}; only x86_64 is supported`),
};

class ValueBudgetExceeded extends Error {
  /** The alias followed last when the budget ran out: where the expansion got out of hand. */
  constructor(readonly alias: Alias | null) {
    super('value budget exceeded');
  }
}

/** Collects problems with their positions and reads nodes through aliases. */
class Checker {
  readonly problems: ManifestProblem[] = [];
  private valuesLeft = MAX_VALUES_READ;
  private lastAlias: Alias | null = null;

  constructor(
    private readonly lines: LineCounter,
    private readonly aliases: ReadonlyMap<Alias, Node>,
    readonly drivers: readonly DriverType[],
  ) {}

  report(node: Node | null, path: string, message: string): void {
    const offset = node?.range?.[0];
    if (offset === undefined) {
      this.problems.push({ path, line: null, column: null, message });
      return;
    }
    const { line, col } = this.lines.linePos(offset);
    this.problems.push({ path, line, column: col, message });
  }

  /** The node itself, or the one an alias refers to; null for a missing value. */
  read(value: unknown): Node | null {
    this.valuesLeft -= 1;
    if (this.valuesLeft < 0) throw new ValueBudgetExceeded(this.lastAlias);
    if (isAlias(value)) {
      this.lastAlias = value;
      return this.aliases.get(value) ?? null;
    }
    return isNode(value) ? value : null;
  }
}

/** Reads one value: its result, or undefined after reporting why it is not valid. */
type Reader<T> = (node: Node | null, path: string, c: Checker) => T | undefined;

interface Located<T> {
  value: T;
  node: Node | null;
  path: string;
}

interface Field<T> {
  read: Reader<T>;
  /** What is expected, for messages: "a list of stage names". */
  expected: string;
  required?: boolean;
}

type FieldValues<T> = { [K in keyof T]?: T[K] extends Field<infer V> ? V : never };

export function parseManifest(text: string, opts: ParseOptions = {}): ParseResult {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_MANIFEST_BYTES) {
    const message = `the manifest is ${bytes} bytes; the limit is ${MAX_MANIFEST_BYTES} bytes (256 KiB)`;
    return { ok: false, problems: [{ path: '', line: null, column: null, message }] };
  }
  const lines = new LineCounter();
  const parsed = parseYaml(text, lines);
  if (!parsed.ok) return { ok: false, problems: limitProblems(sortProblems(parsed.problems)) };
  const { doc, aliases } = parsed;
  const enabled = opts.drivers;
  const drivers = enabled ? DRIVER_TYPES.filter((d) => enabled.includes(d)) : DRIVER_TYPES;
  const c = new Checker(lines, aliases, drivers);
  try {
    const manifest = readManifest(doc.contents, c, opts.checkout ?? false);
    if (manifest && c.problems.length === 0) return { ok: true, manifest };
  } catch (error) {
    if (!(error instanceof ValueBudgetExceeded)) throw error;
    const offset = error.alias?.range?.[0];
    const at = offset === undefined ? null : lines.linePos(offset);
    const message = `the manifest expands to more than ${MAX_VALUES_READ} values through aliases`;
    return { ok: false, problems: [{ path: '', line: at?.line ?? null, column: at?.col ?? null, message }] };
  }
  return { ok: false, problems: limitProblems(sortProblems(c.problems)) };
}

const MANIFEST_FIELDS = {
  namespace: { read: readNamespace, expected: 'a namespace path like "acme/api"' },
  driver: { read: readDriver, expected: 'a map with the driver type and its options', required: true },
  env: { read: listOf(readEnvVar, 'a list of KEY=value strings'), expected: 'a list of KEY=value strings' },
  objects: { read: listOf(readObject, 'a list of objects'), expected: 'a list of objects' },
  sources: { read: readSources, expected: 'a list of git sources' },
  stages: { read: readStages, expected: 'a list of stage names', required: true },
  allow_failures: {
    read: listOf(located(readNonEmptyString), 'a list of stage names'),
    expected: 'a list of stage names',
  },
  jobs: { read: readJobs, expected: 'a list of jobs', required: true },
  timeout: { read: readTimeout, expected: 'a duration like "30m" or "1h30m"' },
  queue: { read: readQueue, expected: 'a queue name' },
} satisfies Record<string, Field<unknown>>;

function readManifest(root: Node | null, c: Checker, checkout: boolean): Manifest | undefined {
  if (root === null || (isScalar(root) && root.value === null)) {
    c.report(null, '', 'the manifest is empty; expected a map with driver, stages and jobs');
    return undefined;
  }
  if (!isMap(root)) {
    c.report(root, '', `the manifest must be a map with driver, stages and jobs, got ${describe(root)}`);
    return undefined;
  }
  const v = readFields(root, '', c, MANIFEST_FIELDS);
  if (!v) return undefined;
  checkStageReferences(v, c, checkout);
  if (!v.driver || !v.stages || !v.jobs) return undefined;
  return {
    namespace: v.namespace ?? null,
    driver: v.driver,
    env: v.env ?? [],
    objects: v.objects ?? [],
    sources: (v.sources ?? []).map((s) => s.value),
    stages: v.stages.map((s) => s.value),
    allowFailures: [...new Set((v.allow_failures ?? []).map((s) => s.value))],
    jobs: v.jobs.map(({ job }) => job),
    timeoutMs: v.timeout ?? DEFAULT_TIMEOUT_MS,
    queue: v.queue ?? DEFAULT_QUEUE,
  };
}

function checkStageReferences(v: FieldValues<typeof MANIFEST_FIELDS>, c: Checker, checkout: boolean): void {
  if (!v.stages) return;
  const listed = new Set(v.stages.map((s) => s.value));
  const expected = `expected one of: ${[...listed].join(', ')}`;
  const reservedFor = checkout
    ? 'checking out the commit'
    : v.sources && v.sources.length > 0
      ? 'cloning sources'
      : null;
  if (reservedFor) {
    for (const stage of v.stages) {
      if (stage.value === SETUP_STAGE) {
        c.report(stage.node, stage.path, `stage name "${SETUP_STAGE}" is reserved for ${reservedFor}`);
      }
    }
  }
  for (const stage of v.allow_failures ?? []) {
    if (!listed.has(stage.value))
      c.report(stage.node, stage.path, `stage ${quote(stage.value)} is not in stages; ${expected}`);
  }
  for (const { stage } of v.jobs ?? []) {
    if (!listed.has(stage.value))
      c.report(stage.node, stage.path, `stage ${quote(stage.value)} is not in stages; ${expected}`);
  }
}

/** Reads a map whose keys are given by `table`; unknown and missing required keys are problems. */
function readFields<T extends Record<string, Field<unknown>>>(
  node: Node | null,
  path: string,
  c: Checker,
  table: T,
): FieldValues<T> | undefined {
  if (!isMap(node)) {
    c.report(node, path, `must be a map, got ${describe(node)}`);
    return undefined;
  }
  const values: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const pair of node.items) {
    const keyNode = c.read(pair.key);
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      c.report(keyNode ?? node, path, `keys must be strings, got ${describe(keyNode)}`);
      continue;
    }
    const key = keyNode.value;
    const keyPath = join(path, key);
    const field = Object.hasOwn(table, key) ? table[key] : undefined;
    if (!field) {
      c.report(keyNode, keyPath, unknownKey(key, Object.keys(table)));
      continue;
    }
    seen.add(key);
    const value = c.read(pair.value);
    if (value === null || (isScalar(value) && value.value === null)) {
      // An empty value (`env:`) means the default; a required key needs a real one.
      if (field.required) c.report(keyNode, keyPath, `must not be empty; expected ${field.expected}`);
      continue;
    }
    const result = field.read(value, keyPath, c);
    if (result !== undefined) values[key] = result;
  }
  for (const [key, field] of Object.entries(table)) {
    if (field.required && !seen.has(key)) {
      c.report(node, join(path, key), `missing required key "${key}" (${field.expected})`);
    }
  }
  return values as FieldValues<T>;
}

function listOf<T>(item: Reader<T>, expected: string, opts: { nonEmpty?: boolean } = {}): Reader<T[]> {
  return (node, path, c) => {
    if (!isSeq(node)) {
      c.report(node, path, `must be ${expected}, got ${describe(node)}`);
      return undefined;
    }
    if (opts.nonEmpty && node.items.length === 0) {
      c.report(node, path, `must not be empty; expected ${expected}`);
      return undefined;
    }
    const values: T[] = [];
    node.items.forEach((raw, i) => {
      const value = item(c.read(raw), `${path}[${i}]`, c);
      if (value !== undefined) values.push(value);
    });
    return values;
  };
}

function located<T>(read: Reader<T>): Reader<Located<T>> {
  return (node, path, c) => {
    const value = read(node, path, c);
    return value === undefined ? undefined : { value, node, path };
  };
}

function readString(node: Node | null, path: string, c: Checker): string | undefined {
  if (isScalar(node) && typeof node.value === 'string') return node.value;
  // `- echo a: b` is a map in YAML, a common surprise in command lists.
  const hint = isMap(node) ? ' (quote the text if it contains ": ")' : '';
  c.report(node, path, `must be a string, got ${describe(node)}${hint}`);
  return undefined;
}

function readNonEmptyString(node: Node | null, path: string, c: Checker): string | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  if (s.trim() !== '') return s;
  c.report(node, path, 'must not be empty');
  return undefined;
}

function readNamespace(node: Node | null, path: string, c: Checker): string | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  const at = s.indexOf('@');
  const owner = at < 0 ? null : s.slice(0, at);
  const segments = s.slice(at + 1).split('/');
  let problem: string | null = null;
  if (owner !== null && !NAMESPACE_OWNER.test(owner)) {
    problem = `invalid owner ${quote(owner)} before "@"; expected a user name`;
  } else if (segments.length > MAX_NAMESPACE_DEPTH) {
    problem = `namespace is ${segments.length} levels deep; the limit is ${MAX_NAMESPACE_DEPTH}`;
  } else {
    const bad = segments.find((segment) => !NAMESPACE_SEGMENT.test(segment));
    if (bad !== undefined) {
      problem = `invalid namespace segment ${quote(bad)}; expected letters and digits separated by "/", like "acme/api"`;
    }
  }
  if (problem === null) return s;
  c.report(node, path, problem);
  return undefined;
}

function readDriver(node: Node | null, path: string, c: Checker): ManifestDriver | undefined {
  if (!isMap(node)) {
    c.report(node, path, `must be a map with the driver type and its options, got ${describe(node)}`);
    return undefined;
  }
  const entries = new Map<string, Located<string> & { keyNode: Node }>();
  let valid = true;
  let hasType = false;
  for (const pair of node.items) {
    const keyNode = c.read(pair.key);
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      c.report(keyNode ?? node, path, `keys must be strings, got ${describe(keyNode)}`);
      valid = false;
      continue;
    }
    const keyPath = join(path, keyNode.value);
    if (keyNode.value === 'type') hasType = true;
    const valueNode = c.read(pair.value);
    const value = readString(valueNode, keyPath, c);
    if (value === undefined) valid = false;
    else entries.set(keyNode.value, { value, node: valueNode, path: keyPath, keyNode });
  }
  const type = entries.get('type');
  if (!type) {
    if (!hasType)
      c.report(node, join(path, 'type'), `missing required key "type" (one of: ${c.drivers.join(', ')})`);
    return undefined;
  }
  if (!isDriverType(type.value) || !c.drivers.includes(type.value)) {
    const message = isDriverType(type.value)
      ? `driver ${quote(type.value)} is not enabled on this server; enabled: ${c.drivers.join(', ') || 'none'}`
      : `unknown driver ${quote(type.value)}; expected one of: ${c.drivers.join(', ')}${didYouMean(type.value, c.drivers)}`;
    c.report(type.node, type.path, message);
    return undefined;
  }
  const { required, optional } = DRIVER_OPTIONS[type.value];
  const known = [...required, ...optional];
  const options: Record<string, string> = {};
  for (const [key, entry] of entries) {
    if (key === 'type') continue;
    if (!known.includes(key)) {
      const expected = known.length > 0 ? `expected one of: ${known.join(', ')}` : 'it takes no options';
      c.report(
        entry.keyNode,
        entry.path,
        `unknown key ${quote(key)} for the ${type.value} driver; ${expected}${didYouMean(key, known)}`,
      );
      valid = false;
      continue;
    }
    const problem = DRIVER_OPTION_CHECKS[key]?.(entry.value) ?? null;
    if (problem !== null) {
      c.report(entry.node, entry.path, problem);
      valid = false;
    }
    options[key] = entry.value;
  }
  for (const key of required) {
    if (!entries.has(key)) {
      c.report(
        node,
        join(path, key),
        `missing required key "${key}" (the ${type.value} driver needs ${required.join(' and ')})`,
      );
      valid = false;
    }
  }
  if (type.value === 'qemu') options.arch ??= 'x86_64';
  return valid ? { type: type.value, options } : undefined;
}

function isDriverType(s: string): s is DriverType {
  return (DRIVER_TYPES as readonly string[]).includes(s);
}

function readEnvVar(node: Node | null, path: string, c: Checker): { key: string; value: string } | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  const eq = s.indexOf('=');
  if (eq < 0) {
    c.report(node, path, `must be KEY=value, got ${quote(s)}`);
    return undefined;
  }
  const key = s.slice(0, eq);
  if (!ENV_KEY.test(key)) {
    c.report(
      node,
      path,
      `invalid variable name ${quote(key)}; expected letters, digits and "_", not starting with a digit`,
    );
    return undefined;
  }
  return { key, value: s.slice(eq + 1) };
}

function readObject(node: Node | null, path: string, c: Checker): ManifestObject | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  const [name, dest] = splitArrow(s);
  if (name === '' || dest === '') {
    c.report(node, path, `must be "name" or "name => /destination", got ${quote(s)}`);
    return undefined;
  }
  return { name, dest: dest ?? name };
}

function readArtifact(node: Node | null, path: string, c: Checker): ManifestArtifact | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  const [src, name] = splitArrow(s);
  const defaultName = baseName(src);
  if (src === '' || name === '' || (name === null && defaultName === '')) {
    c.report(node, path, `must be "path" or "path => name", got ${quote(s)}`);
    return undefined;
  }
  return { src, name: name ?? defaultName };
}

function readSource(node: Node | null, path: string, c: Checker): ManifestSource | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  const [spec, dirGiven] = splitArrow(s);
  const words = spec.split(/\s+/).filter((w) => w !== '');
  const [url = '', ref = ''] = words;
  const dir = dirGiven ?? baseName(url).replace(/\.git$/, '');
  let problem: string | null = null;
  if (words.length === 0 || words.length > 2 || dirGiven === '') {
    problem = `must be "url [ref] [=> directory]", got ${quote(s)}`;
  } else if (url.startsWith('-')) {
    problem = `url ${quote(url)} must not start with "-": git would read it as an option`;
  } else if (ref.startsWith('-')) {
    problem = `ref ${quote(ref)} must not start with "-": git would read it as an option`;
  } else if (dir === '') {
    problem = `cannot name a directory after ${quote(url)}; add "=> directory"`;
  } else if (dir.startsWith('/') || dir.startsWith('-') || dir.split('/').includes('..')) {
    problem = `directory ${quote(dir)} must be a relative path inside the workspace, without ".." and not starting with "-"`;
  }
  if (problem === null) return { url, ref, dir };
  c.report(node, path, problem);
  return undefined;
}

function readSources(node: Node | null, path: string, c: Checker): Located<ManifestSource>[] | undefined {
  const sources = listOf(located(readSource), 'a list of "url [ref] [=> directory]" strings')(node, path, c);
  const dirs = new Map<string, string>();
  for (const source of sources ?? []) {
    const first = dirs.get(source.value.dir);
    if (first !== undefined) {
      c.report(source.node, source.path, `directory ${quote(source.value.dir)} is already used by ${first}`);
    } else {
      dirs.set(source.value.dir, source.path);
    }
  }
  return sources;
}

function readStages(node: Node | null, path: string, c: Checker): Located<string>[] | undefined {
  const stages = listOf(located(readNonEmptyString), 'a list of stage names', { nonEmpty: true })(
    node,
    path,
    c,
  );
  const seen = new Set<string>();
  for (const stage of stages ?? []) {
    if (seen.has(stage.value)) c.report(stage.node, stage.path, `duplicate stage ${quote(stage.value)}`);
    seen.add(stage.value);
  }
  return stages;
}

const JOB_FIELDS = {
  stage: { read: located(readNonEmptyString), expected: 'the name of a stage', required: true },
  name: { read: located(readNonEmptyString), expected: 'a job name' },
  commands: {
    read: listOf(readNonEmptyString, 'a list of commands', { nonEmpty: true }),
    expected: 'a list of commands',
    required: true,
  },
  artifacts: { read: listOf(readArtifact, 'a list of artifacts'), expected: 'a list of artifacts' },
} satisfies Record<string, Field<unknown>>;

interface JobDraft {
  stage: Located<string>;
  name: Located<string> | undefined;
  commands: string[];
  artifacts: ManifestArtifact[];
  node: Node | null;
  path: string;
}

function readJob(node: Node | null, path: string, c: Checker): JobDraft | undefined {
  const v = readFields(node, path, c, JOB_FIELDS);
  if (!v?.stage || !v.commands) return undefined;
  return { stage: v.stage, name: v.name, commands: v.commands, artifacts: v.artifacts ?? [], node, path };
}

function readJobs(node: Node | null, path: string, c: Checker) {
  const drafts = listOf(readJob, 'a list of jobs', { nonEmpty: true })(node, path, c);
  if (!drafts) return undefined;
  const perStage = new Map<string, number>();
  const names = new Map<string, string>();
  return drafts.map((draft) => {
    const n = (perStage.get(draft.stage.value) ?? 0) + 1;
    perStage.set(draft.stage.value, n);
    const name = slugify(draft.name?.value ?? `${draft.stage.value}.${n}`);
    const first = names.get(name);
    if (first === undefined) {
      names.set(name, draft.path);
    } else if (draft.name) {
      c.report(draft.name.node, draft.name.path, `duplicate job name ${quote(name)}; ${first} has it too`);
    } else {
      c.report(
        draft.node,
        draft.path,
        `duplicate job name ${quote(name)} (its default name); ${first} has it too`,
      );
    }
    const job = { stage: draft.stage.value, name, commands: draft.commands, artifacts: draft.artifacts };
    return { job, stage: draft.stage };
  });
}

function readTimeout(node: Node | null, path: string, c: Checker): number | undefined {
  if (!isScalar(node) || typeof node.value !== 'string') {
    c.report(node, path, `must be a duration string like "30m" or "1h30m", got ${describe(node)}`);
    return undefined;
  }
  const ms = parseDuration(node.value);
  if (ms === null) {
    c.report(
      node,
      path,
      `invalid duration ${quote(node.value)}; expected hours, minutes and seconds like "1h30m", "45m" or "90s"`,
    );
  } else if (ms <= 0) {
    c.report(node, path, 'must be longer than 0s');
  } else if (ms > MAX_TIMEOUT_MS) {
    c.report(node, path, `must be at most 24h, got ${quote(node.value)}`);
  } else {
    return ms;
  }
  return undefined;
}

function readQueue(node: Node | null, path: string, c: Checker): string | undefined {
  const s = readString(node, path, c);
  if (s === undefined) return undefined;
  if (QUEUE_NAME.test(s)) return s;
  c.report(node, path, `invalid queue name ${quote(s)}; expected 1 to 64 letters, digits, ".", "_" or "-"`);
  return undefined;
}

/** `left => right` split on the first `=>`, both sides trimmed; right is null without an arrow. */
function splitArrow(s: string): [string, string | null] {
  const arrow = s.indexOf('=>');
  if (arrow < 0) return [s.trim(), null];
  return [s.slice(0, arrow).trim(), s.slice(arrow + 2).trim()];
}

/** The last segment of a path or git URL (`host:owner/repo.git` too), ignoring trailing slashes. */
function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf(':')) + 1);
}

/** Djinn's job-name slug: every character but letters, digits and `.` becomes `-`, then lower case. */
function slugify(name: string): string {
  return name.replace(/[^a-zA-Z0-9.]/g, '-').toLowerCase();
}

function unknownKey(key: string, known: string[]): string {
  const sorted = [...known].sort();
  return `unknown key ${quote(key)}; expected one of: ${sorted.join(', ')}${didYouMean(key, known)}`;
}

function didYouMean(word: string, candidates: readonly string[]): string {
  const match = candidates.find((candidate) => isOneEditAway(word.toLowerCase(), candidate));
  return match === undefined ? '' : ` (did you mean "${match}"?)`;
}

/** One insertion, deletion, substitution or swap of neighbours turns `a` into `b`. */
function isOneEditAway(a: string, b: string): boolean {
  if (a === b) return true;
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i += 1;
  if (a.length === b.length) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true;
    return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  return a.length > b.length ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

function describe(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node)) return 'an unsupported value';
  const value = node.value;
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number' || typeof value === 'bigint')
    return `the number ${clip(node.source ?? String(value), 40)}`;
  if (typeof value === 'boolean') return `the boolean ${String(value)}`;
  return 'an unsupported value';
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A user's text in a message: JSON-quoted, and shortened so one problem stays one line. */
function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function sortProblems(problems: ManifestProblem[]): ManifestProblem[] {
  return [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/** The first MAX_PROBLEMS problems, and one saying how many more there are. */
function limitProblems(problems: ManifestProblem[]): ManifestProblem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const more = problems.length - MAX_PROBLEMS;
  const message = `${more} more problem${more === 1 ? '' : 's'} not shown`;
  return [...problems.slice(0, MAX_PROBLEMS), { path: '', line: null, column: null, message }];
}

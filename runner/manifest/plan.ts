import type { Manifest, ManifestArtifact, ManifestSource } from './types.ts';

/**
 * What a runner executes for one build: stages in order, each with its jobs in order. Every job's
 * `commands` become one script through `jobScript`. When the manifest has `sources`, a `setup`
 * stage that clones them comes first (parseManifest refuses a user stage of that name then).
 */
export interface PlannedBuild {
  stages: PlanStage[];
}

export interface PlanStage {
  name: string;
  /** Listed in `allow_failures`: a failed job gives PASSED_WITH_FAILURES and the build goes on. */
  canFail: boolean;
  jobs: PlanJob[];
}

export interface PlanJob {
  name: string;
  commands: string[];
  artifacts: ManifestArtifact[];
  /** The job that checks the repository's commit out (it alone gets the repository's SSH key). */
  checkout?: boolean;
}

/** The stage that checks a repository's commit out and clones `sources`; reserved when there is either. */
export const SETUP_STAGE = 'setup';

/**
 * A repository's commit to check out as the workspace itself, before anything else: the `checkout`
 * job of the setup stage fetches that one commit (not the whole history) into the workspace root,
 * with its submodules, and leaves `.git` there so jobs can run git.
 */
export interface Checkout {
  url: string;
  /** The ref the commit was built for; fetched when the remote will not hand out a bare commit. */
  ref: string;
  sha: string;
  /** Lines printed before the checkout (e.g. why a fork's pull request has no secrets). */
  notices?: string[];
}

export function planBuild(manifest: Manifest, opts: { checkout?: Checkout } = {}): PlannedBuild {
  const allowed = new Set(manifest.allowFailures);
  const stages: PlanStage[] = manifest.stages.map((name) => ({
    name,
    canFail: allowed.has(name),
    jobs: manifest.jobs
      .filter((job) => job.stage === name)
      .map((job) => ({ name: job.name, commands: [...job.commands], artifacts: [...job.artifacts] })),
  }));
  // Counted from 1, as the default names of a stage's jobs are (`test.1`).
  const setupJobs: PlanJob[] = manifest.sources.map((source, n) => ({
    name: `clone.${n + 1}`,
    commands: cloneCommands(source),
    artifacts: [],
  }));
  if (opts.checkout) {
    setupJobs.unshift({
      name: 'checkout',
      commands: checkoutCommands(opts.checkout),
      artifacts: [],
      checkout: true,
    });
  }
  if (setupJobs.length === 0) return { stages };
  return { stages: [{ name: SETUP_STAGE, canFail: false, jobs: setupJobs }, ...stages] };
}

const FULL_SHA = /^[0-9a-f]{40}$/;

function checkoutCommands({ url, ref, sha, notices = [] }: Checkout): string[] {
  if (!FULL_SHA.test(sha)) throw new Error(`"${sha}" is not a full commit id`);
  if (ref.startsWith('-')) throw new Error(`ref "${ref}" starts with "-": git would read it as an option`);
  if (url.startsWith('-')) throw new Error(`URL "${url}" starts with "-": git would read it as an option`);
  const remote = shellQuote(url);
  return [
    ...notices.map((line) => `echo ${shellQuote(line)}`),
    // origin is the remote, so that submodules with relative URLs resolve against it.
    `git init -q . && git remote add origin ${remote}`,
    // One commit, not the history. A remote that hands out only refs' heads gets the ref instead
    // (the commit is its head, or in its history when the ref has moved on since).
    `git fetch -q --depth=1 origin ${sha} || git fetch -q origin ${shellQuote(`+${ref}:refs/kiln/built`)}`,
    `git -c advice.detachedHead=false checkout -q ${sha} --`,
    'git submodule -q update --init --recursive --depth=1',
    'git log -1 --format="%H %s"',
  ];
}

function cloneCommands({ url, ref, dir }: ManifestSource): string[] {
  // Before the URL, `--` keeps it from being read as an option. After the ref, `--` makes git take
  // it as a revision and never as a path, but options are parsed before `--` too: a ref starting
  // with "-" would still be one, so parseManifest refuses it, and a plan made without it is a bug.
  if (ref.startsWith('-')) throw new Error(`ref "${ref}" starts with "-": git would read it as an option`);
  const commands = [`git clone -q -- ${shellQuote(url)} ${shellQuote(dir)}`];
  if (ref !== '') commands.push(`cd ${shellQuote(dir)} && git checkout -q ${shellQuote(ref)} --`);
  return commands;
}

const SHELL_SAFE = /^[A-Za-z0-9_./:@%+,-]+$/;

/** One POSIX shell word that expands to exactly `s`: single quotes, with each `'` written as `'\''`. */
export function shellQuote(s: string): string {
  if (SHELL_SAFE.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * One `sh -e` script for a job's commands. Before each command it prints `$ <command>` (the first
 * line only, plus ` …` when there are more), as text rather than `set -x`, so variables are shown
 * unexpanded and secrets are not echoed. `set -e` stops the script at the first failing command.
 */
export function jobScript(commands: string[]): string {
  const lines = ['set -e'];
  for (const raw of commands) {
    // A YAML block scalar (`- |`) ends with a newline that is not a further line of the command.
    const command = raw.replace(/\n+$/, '');
    const [first = '', ...rest] = command.split('\n');
    const shown = `$ ${first}${rest.length > 0 ? ' …' : ''}`;
    lines.push(`printf '%s\\n' ${shellQuote(shown)}`, command);
  }
  return `${lines.join('\n')}\n`;
}

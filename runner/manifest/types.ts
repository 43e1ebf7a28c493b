/**
 * A validated build manifest (Djinn CI's format plus `timeout` and `queue`), and the problems
 * found when it is not valid. `parseManifest` (manifest.ts) turns YAML text into one or the other;
 * `planBuild` (plan.ts) turns a manifest into the ordered stages and jobs a runner executes.
 */

/** Where and what is wrong in a manifest. `path` is like `jobs[2].commands`; line and column are 1-based. */
export interface ManifestProblem {
  path: string;
  line: number | null;
  column: number | null;
  message: string;
}

export const DRIVER_TYPES = ['os', 'docker', 'qemu'] as const;
export type DriverType = (typeof DRIVER_TYPES)[number];

export interface ManifestDriver {
  type: DriverType;
  /** Every other key of the `driver` map (docker: image, workspace; qemu: image, arch). */
  options: Record<string, string>;
}

export interface ManifestSource {
  url: string;
  /** Empty: stay on the default branch. */
  ref: string;
  /** Directory inside the workspace; default: the repository's base name without `.git`. */
  dir: string;
}

export interface ManifestObject {
  name: string;
  /** Destination path; default: the object's name. */
  dest: string;
}

export interface ManifestArtifact {
  src: string;
  name: string;
}

export interface ManifestJob {
  stage: string;
  /** Slugified; defaults to `<stage>.<n>` (n counts from 1 within the stage). */
  name: string;
  commands: string[];
  artifacts: ManifestArtifact[];
}

export interface Manifest {
  namespace: string | null;
  driver: ManifestDriver;
  env: { key: string; value: string }[];
  objects: ManifestObject[];
  sources: ManifestSource[];
  stages: string[];
  allowFailures: string[];
  jobs: ManifestJob[];
  /** From `timeout` (e.g. `30m`, `1h30m`, `90s`); default 60 minutes. */
  timeoutMs: number;
  /** From `queue`; default `default`. */
  queue: string;
}

export type ParseResult = { ok: true; manifest: Manifest } | { ok: false; problems: ManifestProblem[] };

/** Manifests larger than this are refused before parsing. */
export const MAX_MANIFEST_BYTES = 256 * 1024;
export const DEFAULT_TIMEOUT_MS = 60 * 60 * 1000;
export const DEFAULT_QUEUE = 'default';

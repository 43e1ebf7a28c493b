/**
 * The one way a parsed manifest becomes the BuildJob message a runner executes, used by the api's
 * submit and by `kiln run`: they differ only in what they know (ids, stored secrets, where objects
 * and artifacts travel), never in how the plan is laid out.
 */
import type { BuildJob, Variable } from '../contract/messages.ts';
import type { PlannedBuild } from './plan.ts';
import type { Manifest } from './types.ts';

export interface BuildJobParts {
  buildId: string;
  number: number;
  /** An id for each job, in plan order: the api's row ids, or `job-N` offline. */
  jobId(stage: string, job: string, index: number): string;
  /** Stored variables that come before the manifest's `env` (none offline). */
  variables?: Variable[];
  keys?: BuildJob['keys'];
  checkoutKey?: BuildJob['checkoutKey'];
  submittedAt: Date;
  objects?: BuildJob['objects'];
  artifacts?: BuildJob['artifacts'];
}

export function toBuildJob(manifest: Manifest, plan: PlannedBuild, parts: BuildJobParts): BuildJob {
  let index = 0;
  return {
    kind: 'build',
    buildId: parts.buildId,
    number: parts.number,
    queue: manifest.queue,
    driver: { ...manifest.driver.options, type: manifest.driver.type },
    stages: plan.stages.map((stage) => ({
      name: stage.name,
      canFail: stage.canFail,
      jobs: stage.jobs.map((job) => ({
        id: parts.jobId(stage.name, job.name, index++),
        name: job.name,
        commands: job.commands,
        artifacts: job.artifacts,
        ...(job.checkout ? { checkout: true } : {}),
      })),
    })),
    variables: [
      ...(parts.variables ?? []),
      ...manifest.env.map(({ key, value }) => ({ key, value, masked: false })),
    ],
    ...(parts.keys ? { keys: parts.keys } : {}),
    ...(parts.checkoutKey ? { checkoutKey: parts.checkoutKey } : {}),
    timeoutMs: manifest.timeoutMs,
    submittedAt: parts.submittedAt.toISOString(),
    ...(parts.objects ? { objects: parts.objects } : {}),
    ...(parts.artifacts ? { artifacts: parts.artifacts } : {}),
  };
}

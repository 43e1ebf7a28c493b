/**
 * The drivers a runner offers, by type name (`KILN_DRIVERS`): `os` and `docker`; `qemu` is a valid
 * manifest type whose driver comes later. A requested type that is not available (no driver yet, or
 * no Docker engine socket) is left out and reported to `onUnavailable`, so a build that asks for it
 * fails with a reason instead of the runner refusing to start.
 */
import { hostname } from 'node:os';
import { dockerSettingsFrom } from '../config.ts';
import { DRIVER_TYPES } from '../manifest/types.ts';
import { createDockerDriver, type DockerSettings, dockerUnavailableReason } from './docker/docker-driver.ts';
import { type Driver, DriverError } from './driver.ts';
import { createOsDriver } from './os/os-driver.ts';

export interface DriverRegistryOptions {
  /** The runner's own PATH, HOME, LANG…, the only host variables jobs see. */
  baseEnv: Record<string, string>;
  /** Where the os driver makes workspaces; default: the system's temporary directory. */
  workspaceDir?: string;
  /**
   * The runner's name (KILN_RUNNER_NAME): labels the docker driver's containers and volumes, and
   * the docker driver removes what an earlier process of this name left behind (a crash) before
   * its first build. Without it, a name unique to this process is used and nothing is cleaned up.
   */
  runnerName?: string;
  /** The docker driver's engine and limits; default: read from KILN_DOCKER_* (runner/config.ts). */
  docker?: DockerSettings;
  onUnavailable?: (name: string, reason: string) => void;
  /** Told about the drivers' leftover cleanup: what it removed, or why it failed. */
  onNotice?: (name: string, message: string) => void;
}

/** Driver types this build of kiln can run. */
export const AVAILABLE_DRIVERS: readonly string[] = ['os', 'docker'];

export function createDrivers(names: readonly string[], opts: DriverRegistryOptions): Map<string, Driver> {
  const drivers = new Map<string, Driver>();
  for (const name of new Set(names)) {
    switch (name) {
      case 'os':
        drivers.set(
          name,
          createOsDriver({
            baseEnv: opts.baseEnv,
            workspaceDir: opts.workspaceDir,
            cleanupLeftovers: true,
            onCleanup: (result) => {
              if (result instanceof Error) {
                opts.onNotice?.('os', `could not remove leftover workspaces: ${result.message}`);
              } else if (result.workspaces > 0) {
                opts.onNotice?.(
                  'os',
                  `removed ${result.workspaces} workspace(s) of runners that died, killing ${result.processes} process(es) still running in them`,
                );
              }
            },
          }),
        );
        break;
      case 'docker': {
        const docker = createDockerFromOptions(opts);
        if (typeof docker === 'string') opts.onUnavailable?.(name, docker);
        else drivers.set(name, docker);
        break;
      }
      default:
        opts.onUnavailable?.(
          name,
          (DRIVER_TYPES as readonly string[]).includes(name)
            ? `the ${name} driver is not available in this version of kiln`
            : `unknown driver type "${name}"`,
        );
    }
  }
  return drivers;
}

/** The docker driver, or why it is unavailable. */
function createDockerFromOptions(opts: DriverRegistryOptions): Driver | string {
  let settings = opts.docker;
  if (!settings) {
    const parsed = dockerSettingsFrom();
    if (!parsed.ok) return `invalid configuration: ${parsed.problems.join('; ')}`;
    settings = parsed.settings;
  }
  const unavailable = dockerUnavailableReason(settings.host);
  if (unavailable !== null) return unavailable;
  const named = opts.runnerName !== undefined;
  return createDockerDriver({
    ...settings,
    runnerName: opts.runnerName ?? `${hostname()}-${process.pid}`,
    cleanupLeftovers: named,
    onCleanup: (result) => {
      if (result instanceof Error) {
        opts.onNotice?.('docker', `could not remove leftover containers and volumes: ${result.message}`);
      } else if (result.containers + result.volumes > 0) {
        opts.onNotice?.(
          'docker',
          `removed ${result.containers} leftover container(s) and ${result.volumes} volume(s) of runner ${opts.runnerName}`,
        );
      }
    },
  });
}

/** Why a build cannot run on a runner without a driver of its type: the text of its FAILED reason. */
export function driverNotEnabled(type: string): string {
  return `driver "${type}" is not enabled on this runner`;
}

/**
 * A stand-in for a driver this runner lacks: creating an environment fails with the reason, so the
 * executor fails the build through its ordinary driver-error path (first job FAILED, rest SKIPPED).
 * `why` (e.g. "no Docker engine socket at …") is added to the reason when known.
 */
export function unavailableDriver(type: string, why?: string): Driver {
  const reason = why ? `${driverNotEnabled(type)}: ${why}` : driverNotEnabled(type);
  return {
    type,
    create: () => Promise.reject(new DriverError(reason)),
  };
}

/**
 * The drivers a runner offers, by type name (`KILN_DRIVERS`). Only `os` exists so far; `docker` and
 * `qemu` are valid manifest types whose drivers come later. A requested type that is not available
 * is left out (and reported to `onUnavailable`), so a build that asks for it fails with a reason
 * instead of the runner refusing to start.
 */
import { DRIVER_TYPES } from '../manifest/types.ts';
import { type Driver, DriverError } from './driver.ts';
import { createOsDriver } from './os/os-driver.ts';

export interface DriverRegistryOptions {
  /** The runner's own PATH, HOME, LANG…, the only host variables jobs see. */
  baseEnv: Record<string, string>;
  /** Where the os driver makes workspaces; default: the system's temporary directory. */
  workspaceDir?: string;
  onUnavailable?: (name: string, reason: string) => void;
}

/** Driver types this build of kiln can run. */
export const AVAILABLE_DRIVERS: readonly string[] = ['os'];

export function createDrivers(names: readonly string[], opts: DriverRegistryOptions): Map<string, Driver> {
  const drivers = new Map<string, Driver>();
  for (const name of new Set(names)) {
    switch (name) {
      case 'os':
        drivers.set(name, createOsDriver({ baseEnv: opts.baseEnv, workspaceDir: opts.workspaceDir }));
        break;
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

/** Why a build cannot run on a runner without a driver of its type: the text of its FAILED reason. */
export function driverNotEnabled(type: string): string {
  return `driver "${type}" is not enabled on this runner`;
}

/**
 * A stand-in for a driver this runner lacks: creating an environment fails with the reason, so the
 * executor fails the build through its ordinary driver-error path (first job FAILED, rest SKIPPED).
 */
export function unavailableDriver(type: string): Driver {
  return {
    type,
    create: () => Promise.reject(new DriverError(driverNotEnabled(type))),
  };
}

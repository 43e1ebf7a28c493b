/**
 * What a runner killed with SIGKILL leaves of its os-driver builds: workspace directories, and job
 * processes still running in them (a job is its own process group, so it outlives the runner).
 *
 * Each workspace root is named after the runner process that made it, by pid and start time
 * (`kiln-<pid>-<start>-XXXXXX`, `rootPrefix`): no file to write on the way to a build's first line.
 * A root whose owner is no longer that process is a leftover: every process whose working directory
 * is inside it is killed with SIGKILL, then the directory is removed. Roots of live runners, and
 * directories not named so, are never touched, so runners may share a workspace directory.
 * Processes are found through /proc; where there is none (not Linux) nothing is cleaned up.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** `kiln-<pid>-<start time>-` and mkdtemp's six characters. */
const MARKED_ROOT = /^kiln-(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

export interface LeftoverResult {
  workspaces: number;
  processes: number;
}

/** `<pid> <start time>` of a process, from /proc; null when there is no /proc. */
function processMark(pid: number | 'self', text?: string): string | null {
  try {
    const stat = text ?? readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces and parentheses): the start time is the 22nd.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const started = fields[19];
    const own = pid === 'self' ? process.pid : pid;
    return started ? `${own} ${started}` : null;
  } catch {
    return null;
  }
}

/** This process's mark: its pid and start time. */
export function ownerMark(): string | null {
  return processMark('self');
}

/** The prefix of the workspace roots this process makes (for mkdtemp): it names their owner. */
export function rootPrefix(): string {
  const mark = ownerMark();
  return mark ? `kiln-${mark.replace(' ', '-')}-` : 'kiln-';
}

async function ownerAlive(mark: string): Promise<boolean> {
  const pid = Number(mark.split(' ')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  // A zombie is as dead as a runner gets; a different start time is another process with its pid.
  if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') return false;
  return processMark(pid, stat) === mark;
}

/** Pids whose working directory is `dir` or inside it. */
async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => null);
    if (cwd !== null && (cwd === dir || cwd.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

/** Kills what dead runners left in `baseDir` and removes their workspaces. */
export async function cleanupOsLeftovers(baseDir: string): Promise<LeftoverResult> {
  const result: LeftoverResult = { workspaces: 0, processes: 0 };
  if (ownerMark() === null) return result;
  const killed = new Set<number>();
  const entries = await readdir(baseDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const named = MARKED_ROOT.exec(entry.name);
    if (!entry.isDirectory() || !named || (await ownerAlive(`${named[1]} ${named[2]}`))) continue;
    const root = join(baseDir, entry.name);
    // Killed until none is left: a dying job may still start a process or two.
    for (let round = 0; round < 5; round++) {
      const pids = await processesIn(root);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.add(pid);
        } catch {
          // Gone already.
        }
      }
      await delay(50);
    }
    await rm(root, { recursive: true, force: true, maxRetries: 2 }).catch(() => undefined);
    result.workspaces++;
  }
  result.processes = killed.size;
  return result;
}

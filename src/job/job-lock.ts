// One perstack process at a time works on a job: two `--continue` of the same job at once would both read job.json,
// both run from the same checkpoint, and the last to finish would overwrite the other's result. The lock is a file,
// perstack/jobs/<jobId>/lock, naming its process. It is written aside and then hard-linked into place, which fails if
// the name exists: one creator wins, and a reader never sees a lock half written. A lock whose process is gone (a
// crash, kill -9) is stale and taken over (takeOverStale).
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { CannotContinueError } from "../errors.js";

export const LOCK_FILE = "lock";

export interface LockHolder {
  pid: number;
  host: string;
  since: number;
  /** Tells this lock from a later one of the same process. */
  nonce: string;
  /** The run the holder started: the one to take over if the holder dies (recover-run.ts). */
  runId?: string;
}
type Holder = LockHolder;

/** The job is in use by another perstack process: nothing was started. Exit code 2, like any other refusal. */
export class JobInUseError extends CannotContinueError {}

export class JobLock {
  private constructor(
    private readonly path: string,
    private readonly nonce: string,
  ) {}

  /** Takes job `jobId`'s lock in `jobDir`, or throws JobInUseError naming who holds it. */
  static acquire(jobDir: string, jobId: string, options: { runId?: string; now?: () => number } = {}): JobLock {
    mkdirSync(jobDir, { recursive: true });
    const path = join(jobDir, LOCK_FILE);
    const holder: Holder = {
      pid: process.pid,
      host: hostname(),
      since: (options.now ?? Date.now)(),
      nonce: randomBytes(8).toString("hex"),
      ...(options.runId !== undefined ? { runId: options.runId } : {}),
    };
    const mine = `${path}.${holder.nonce}`;
    writeFileSync(mine, `${JSON.stringify(holder)}\n`, { mode: 0o644 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        if (tryLink(mine, path)) return new JobLock(path, holder.nonce);
        const current = readHolder(path);
        if (current && !isStale(current)) throw inUse(jobId, current);
        takeOverStale(path, mine, current, jobId);
      }
      throw inUse(jobId, readHolder(path));
    } finally {
      rmSync(mine, { force: true });
    }
  }

  /** Gives the lock up, if it is still this one's. */
  release(): void {
    if (readHolder(this.path)?.nonce === this.nonce) rmSync(this.path, { force: true });
  }
}

/**
 * Removes a stale lock (`stale`, as read; undefined when it was not a lock at all). Only the process that holds the
 * takeover file may remove a lock, and only the one it examined: a process that takes a free lock never removes one,
 * so a live lock is never removed. A takeover file left by a process killed in that instant is named for removal.
 */
function takeOverStale(path: string, mine: string, stale: Holder | undefined, jobId: string): void {
  const takeover = `${path}.takeover`;
  if (!tryLink(mine, takeover)) {
    const other = readHolder(takeover);
    if (other && isStale(other)) throw new JobInUseError(`job ${jobId}: a takeover of its stale lock was cut short; remove ${takeover} and run again`);
    throw inUse(jobId, stale);
  }
  try {
    const again = readHolder(path);
    if (again?.nonce === stale?.nonce) rmSync(path, { force: true });
  } finally {
    rmSync(takeover, { force: true });
  }
}

/** Links `from` to `to`; false when `to` exists. */
function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

/** Who holds job `jobDir`'s lock; undefined when nobody does (or the file is not a lock). */
export function lockHolder(jobDir: string): LockHolder | undefined {
  return readHolder(join(jobDir, LOCK_FILE));
}

function readHolder(path: string): Holder | undefined {
  try {
    const value = JSON.parse(readFileSync(path, "utf8")) as Partial<Holder>;
    if (typeof value.pid !== "number" || typeof value.host !== "string" || typeof value.nonce !== "string") return undefined;
    return {
      pid: value.pid,
      host: value.host,
      since: typeof value.since === "number" ? value.since : 0,
      nonce: value.nonce,
      ...(typeof value.runId === "string" ? { runId: value.runId } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A lock of a process on this host that no longer exists. A lock from another host is never taken for stale. */
export function isStale(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function inUse(jobId: string, holder: Holder | undefined): JobInUseError {
  const who = holder ? `perstack process ${holder.pid} on ${holder.host}, since ${new Date(holder.since).toISOString()}` : "another perstack process";
  return new JobInUseError(`job ${jobId} is in use by ${who}; wait until it ends, then run again`);
}

// A lock file that names the process holding it: one process at a time may own what it guards (a job, a server's data
// directory). It is written aside and then hard-linked into place, which fails if the name exists: one creator wins,
// and a reader never sees a lock half written. A lock whose process is gone (a crash, kill -9) is stale and taken over
// (takeOverStale).
import { randomBytes } from "node:crypto";
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";

export interface LockHolder {
  pid: number;
  host: string;
  since: number;
  /** Tells this lock from a later one of the same process. */
  nonce: string;
  /** The run the holder started: the one to take over if the holder dies (recover-run.ts). */
  runId?: string;
}

/** How a lock names itself in its refusals. */
export interface LockRefusals {
  /** The lock is held by a live process (`holder`, undefined when its file is unreadable). */
  inUse(holder: LockHolder | undefined): Error;
  /** A takeover of a stale lock was cut short: its file is left at `takeoverPath`. */
  takeoverCutShort(takeoverPath: string): Error;
}

export class ProcessLock {
  private constructor(
    readonly path: string,
    private readonly nonce: string,
  ) {}

  /** Takes the lock at `path` (its directory exists), or throws the refusal naming who holds it. */
  static acquire(path: string, refusals: LockRefusals, options: { runId?: string; now?: () => number } = {}): ProcessLock {
    const holder: LockHolder = {
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
        if (tryLink(mine, path)) return new ProcessLock(path, holder.nonce);
        const current = readLockHolder(path);
        if (current && !isStale(current)) throw refusals.inUse(current);
        takeOverStale(path, mine, current, refusals);
      }
      throw refusals.inUse(readLockHolder(path));
    } finally {
      rmSync(mine, { force: true });
    }
  }

  /** Gives the lock up, if it is still this one's. */
  release(): void {
    if (readLockHolder(this.path)?.nonce === this.nonce) rmSync(this.path, { force: true });
  }
}

/**
 * Removes a stale lock (`stale`, as read; undefined when it was not a lock at all). Only the process that holds the
 * takeover file may remove a lock, and only the one it examined: a process that takes a free lock never removes one,
 * so a live lock is never removed. A takeover file left by a process killed in that instant is named for removal.
 */
function takeOverStale(path: string, mine: string, stale: LockHolder | undefined, refusals: LockRefusals): void {
  const takeover = `${path}.takeover`;
  if (!tryLink(mine, takeover)) {
    const other = readLockHolder(takeover);
    if (other && isStale(other)) throw refusals.takeoverCutShort(takeover);
    throw refusals.inUse(stale);
  }
  try {
    const again = readLockHolder(path);
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

/** Who holds the lock at `path`; undefined when nobody does (or the file is not a lock). */
export function readLockHolder(path: string): LockHolder | undefined {
  try {
    const value = JSON.parse(readFileSync(path, "utf8")) as Partial<LockHolder>;
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

/** "perstack process 123 on host, since …": who holds a lock, for a refusal. */
export function describeHolder(holder: LockHolder | undefined): string {
  return holder ? `perstack process ${holder.pid} on ${holder.host}, since ${new Date(holder.since).toISOString()}` : "another perstack process";
}

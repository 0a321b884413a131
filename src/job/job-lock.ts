// One perstack process at a time works on a job: two `--continue` of the same job at once would both read job.json,
// both run from the same checkpoint, and the last to finish would overwrite the other's result. The lock is a file,
// perstack/jobs/<jobId>/lock, naming its process (storage/process-lock.ts).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { CannotContinueError } from "../errors.js";
import { describeHolder, isStale, ProcessLock, readLockHolder, type LockHolder } from "../storage/process-lock.js";

export { isStale, type LockHolder };

export const LOCK_FILE = "lock";

/** The job is in use by another perstack process: nothing was started. Exit code 2, like any other refusal. */
export class JobInUseError extends CannotContinueError {}

export class JobLock {
  private constructor(private readonly lock: ProcessLock) {}

  /** Takes job `jobId`'s lock in `jobDir`, or throws JobInUseError naming who holds it. */
  static acquire(jobDir: string, jobId: string, options: { runId?: string; now?: () => number } = {}): JobLock {
    mkdirSync(jobDir, { recursive: true });
    const lock = ProcessLock.acquire(
      join(jobDir, LOCK_FILE),
      {
        inUse: (holder) => new JobInUseError(`job ${jobId} is in use by ${describeHolder(holder)}; wait until it ends, then run again`),
        takeoverCutShort: (path) => new JobInUseError(`job ${jobId}: a takeover of its stale lock was cut short; remove ${path} and run again`),
      },
      options,
    );
    return new JobLock(lock);
  }

  /** Gives the lock up, if it is still this one's. */
  release(): void {
    this.lock.release();
  }
}

/** Who holds job `jobDir`'s lock; undefined when nobody does (or the file is not a lock). */
export function lockHolder(jobDir: string): LockHolder | undefined {
  return readLockHolder(join(jobDir, LOCK_FILE));
}

// Labels mark everything a run creates, so that cleanup finds it after success, failure, Ctrl-C, or a crash of
// an earlier run (whose owner process is gone).
import { hostname } from "node:os";
import { teardownProcessOf } from "./teardown-handoff.js";

export const MANAGED_LABEL = "perstack.managed";
export const OWNER_PID_LABEL = "perstack.owner-pid";
export const OWNER_HOST_LABEL = "perstack.owner-host";
/** The perstack/jobs directory the run records into: a later process finds an orphaned run's record there. */
export const JOBS_DIR_LABEL = "perstack.jobs-dir";
export const JOB_LABEL = "perstack.job";
export const RUN_LABEL = "perstack.run";

export function ownerLabels(): Record<string, string> {
  return { [OWNER_PID_LABEL]: String(process.pid), [OWNER_HOST_LABEL]: hostname() };
}

/**
 * True when the labels name a process on this host that no longer exists, and that did not hand its sandbox to a
 * teardown process still at work (teardown-handoff.ts).
 */
export function ownerIsGone(labels: Record<string, string> | undefined): boolean {
  if (!labels) return false;
  const pid = Number(labels[OWNER_PID_LABEL]);
  if (labels[OWNER_HOST_LABEL] !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH" && teardownProcessOf(pid) === undefined;
  }
}

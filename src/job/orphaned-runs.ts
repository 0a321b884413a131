// Jobs whose perstack process died mid-run: job.json still says `running`, and the job's lock names a process of this
// host that is gone (job-lock.ts). Cheap enough for every `run`, `log` and `jobs`: a stat per job, and a read of the
// few that hold a lock. Taking one over is recover-run.ts, loaded only when there is one.
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { isSafeId } from "../model/ids.js";
import { jobsDir, readJob } from "../storage/job-reader.js";
import { isStale, LOCK_FILE, lockHolder } from "./job-lock.js";
import { JOB_LABEL, JOBS_DIR_LABEL } from "../sandbox/labels.js";

/** A job whose perstack process is gone while job.json still says it runs. */
export interface OrphanedRun {
  jobId: string;
  /** The run the process started (its lock says); undefined for a lock that does not say. */
  runId?: string;
  pid: number;
}

/** Jobs under `perstackDir` whose lock names a process of this host that is gone, and that still say `running`. */
export function findOrphanedRuns(perstackDir: string): OrphanedRun[] {
  const dir = jobsDir(perstackDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const orphans: OrphanedRun[] = [];
  for (const jobId of names) {
    // A lock is there only while a process works on the job (or after it died doing so): most jobs cost one stat.
    if (!isSafeId(jobId) || !existsSync(join(dir, jobId, LOCK_FILE))) continue;
    const holder = lockHolder(join(dir, jobId));
    if (!holder || !isStale(holder)) continue;
    let status: string;
    try {
      status = readJob(perstackDir, jobId).status;
    } catch {
      continue;
    }
    if (status !== "running") continue;
    orphans.push({ jobId, pid: holder.pid, ...(holder.runId !== undefined && isSafeId(holder.runId) ? { runId: holder.runId } : {}) });
  }
  return orphans;
}


/**
 * For the sweep of leftovers: the containers of a dead process's run are not leftovers while its job still says
 * `running`. They hold what the agent did since, and a command in that job's directory takes the run over.
 */
export function awaitsTakeOver(labels: Record<string, string>): boolean {
  const dir = labels[JOBS_DIR_LABEL];
  const jobId = labels[JOB_LABEL];
  if (!dir || !isSafeId(jobId)) return false;
  try {
    return readJob(dirname(dir), jobId).status === "running";
  } catch {
    return false;
  }
}

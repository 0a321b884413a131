// The disk half of continuing a job: find the job and its checkpoint under perstack/jobs, then let the pure
// planner (continuation.ts) decide. Runs before Docker is touched, so bad flags fail fast.
import { latestJobId, readCheckpoint, readJob } from "../storage/job-reader.js";
import { checkpointIdToContinue, continueRuntime, planContinuation, type Continuation, type RunFlags } from "./continuation.js";

export function loadContinuation(
  perstackDir: string,
  target: { jobId?: string; checkpointId?: string },
  flags: RunFlags & { expertKey: string },
  cwd = process.cwd(),
): Continuation {
  const jobId = target.jobId ?? latestJobId(perstackDir);
  const job = readJob(perstackDir, jobId, cwd);
  continueRuntime(job, flags.runtime);
  const checkpoint = readCheckpoint(perstackDir, job.id, checkpointIdToContinue(job, target.checkpointId), cwd);
  return planContinuation(job, checkpoint, flags);
}

// The disk half of continuing a job: find the job and its checkpoint under perstack/jobs, then let the pure
// planner (continuation.ts) decide. Runs before Docker is touched, so bad flags fail fast.
import type { Checkpoint } from "../model/perstack.js";
import { latestJobId, readCheckpoint, readJob } from "../storage/job-reader.js";
import { checkpointIdToContinue, continueRuntime, planContinuation, type Continuation, type RunFlags } from "./continuation.js";

export function loadContinuation(
  perstackDir: string,
  target: { jobId?: string; checkpointId?: string },
  flags: RunFlags & { expertKey: string },
): Continuation {
  const jobId = target.jobId ?? latestJobId(perstackDir);
  const job = readJob(perstackDir, jobId);
  continueRuntime(job, flags.runtime);
  const checkpoint = readCheckpoint(perstackDir, job.id, checkpointIdToContinue(job, target.checkpointId));
  const continuation = planContinuation(job, checkpoint, flags);
  if (continuation.start.kind !== "answer") return continuation;
  const delegated = waitingDelegates(checkpoint, (id) => readCheckpoint(perstackDir, job.id, id));
  return delegated.length > 0 ? { ...continuation, start: { ...continuation.start, delegated } } : continuation;
}

/**
 * The checkpoints of the delegated runs a stopped checkpoint waits on (its delegateTo[].checkpointId), and theirs,
 * depth first: when a delegate asked the question, answering resumes each of them from its own checkpoint.
 */
export function waitingDelegates(checkpoint: Checkpoint, read: (id: string) => Checkpoint): Checkpoint[] {
  const out: Checkpoint[] = [];
  const seen = new Set<string>([checkpoint.id]);
  const visit = (from: Checkpoint) => {
    for (const to of from.delegateTo ?? []) {
      if (!to.checkpointId || seen.has(to.checkpointId)) continue;
      seen.add(to.checkpointId);
      const child = read(to.checkpointId);
      out.push(child);
      visit(child);
    }
  };
  visit(checkpoint);
  return out;
}

// A job's checkpoints as GET /v1/runs/{jobId}/checkpoints lists them, for `perstack serve` and `perstack ui` alike.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readCheckpoint, RunHistoryFiles } from "../storage/job-reader.js";

/** The job's checkpoints: the files runs stopped on, and each run's step checkpoints. */
export function listCheckpoints(perstackDir: string, jobId: string): Array<{ id: string; runId: string; stepNumber?: number; status?: string }> {
  const out: Array<{ id: string; runId: string; stepNumber?: number; status?: string }> = [];
  const history = new RunHistoryFiles(perstackDir, jobId);
  for (const id of history.checkpointIds()) {
    const value = history.checkpoint(id)?.value;
    if (!value) continue;
    out.push({ id, runId: String(value.runId), ...(typeof value.stepNumber === "number" ? { stepNumber: value.stepNumber } : {}), ...(typeof value.status === "string" ? { status: value.status } : {}) });
  }
  let files: string[];
  try {
    files = readdirSync(join(perstackDir, "jobs", jobId, "checkpoints")).filter((name) => name.endsWith(".json"));
  } catch {
    files = [];
  }
  for (const name of files) {
    try {
      const checkpoint = readCheckpoint(perstackDir, jobId, name.slice(0, -".json".length), history);
      out.push({ id: checkpoint.id, runId: checkpoint.runId, stepNumber: checkpoint.stepNumber, status: checkpoint.status });
    } catch {
      // An unreadable file is left out of the list; asked for by id, it answers why.
    }
  }
  return out;
}

// Before `run`, `log` and `jobs` read or add to perstack/jobs: a job whose perstack process died is taken over
// (job/recover-run.ts), so that no command shows, continues or compares a job as `running` for a process that is
// gone. A run whose agent still works is left to it, and named with the command that follows it.
import type Docker from "dockerode";
import { findOrphanedRuns, type OrphanedRun } from "../job/orphaned-runs.js";
import { recoverRun } from "../job/recover-run.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { terminalSafe } from "./terminal-text.js";

/** Takes over the orphaned jobs under `perstackDir`; says on stderr what it did. Never throws. */
export async function takeOverOrphans(perstackDir: string, stderr: (text: string) => void = (text) => process.stderr.write(text), docker?: Docker): Promise<void> {
  const orphans = findOrphanedRuns(perstackDir);
  if (orphans.length === 0) return;
  const say = (text: string) => stderr(`${terminalSafe(text)}\n`);
  let engine = docker;
  if (!engine) {
    try {
      engine = await connectDocker();
    } catch (error) {
      for (const orphan of orphans) say(`perstack: job ${orphan.jobId}: ${gone(orphan)}; it cannot be taken over now (${(error as Error).message}); run \`perstack attach ${orphan.jobId}\` once the engine answers`);
      return;
    }
  }
  for (const orphan of orphans) {
    try {
      const recovery = await recoverRun(engine, perstackDir, orphan, { follow: false });
      if (recovery.state === "running") say(`perstack: job ${orphan.jobId}: ${gone(orphan)}, but its agent is still running; follow it with: perstack attach ${orphan.jobId}`);
      if (recovery.state === "recorded") say(`perstack: job ${orphan.jobId}: ${gone(orphan)}; the rest of the run was collected and recorded: ${recovery.outcome.status}`);
    } catch (error) {
      say(`perstack: job ${orphan.jobId}: ${gone(orphan)}; taking it over failed: ${(error as Error).message}`);
    }
  }
}

function gone(orphan: OrphanedRun): string {
  return `its perstack process (pid ${orphan.pid}) stopped during the run`;
}

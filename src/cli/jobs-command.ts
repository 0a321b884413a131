// `perstack jobs`: the jobs under perstack/jobs, newest first. A directory that is not a readable job is skipped
// with a one-line warning: one broken job must not hide the others.
import type { Command } from "commander";
import { takeOverOrphansIn } from "./orphans-first.js";
import { formatJobTable, jobListEntry, noJobsMessage, type JobListEntry } from "../history/job-list.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { jobsDir, listJobs, listRunIds, readCheckpoint, runRuntimeName } from "../storage/job-reader.js";
import { perstackStorageDir } from "../storage/storage-dir.js";
import { processIo, type CommandIo } from "./command-io.js";
import { addServerOptions } from "./server-options.js";
import { serverTarget, type ServerFlags } from "../remote/server-target.js";
import { jsonTerminalSafe, terminalSafe } from "./terminal-text.js";

/** The checkpoint a waiting job stopped at; a missing or unreadable one only costs the better answer command. */
function waitingCheckpoint(perstackDir: string, job: Job): Checkpoint | undefined {
  if (job.status !== "stoppedByInteractiveTool" || !job.latestCheckpointId) return undefined;
  try {
    return readCheckpoint(perstackDir, job.id, job.latestCheckpointId);
  } catch {
    return undefined;
  }
}

export function readJobList(perstackDir: string): { entries: JobListEntry[]; warnings: string[] } {
  const { jobs, skipped } = listJobs(perstackDir);
  const entries = jobs.map((job) => {
    const runtimes = listRunIds(perstackDir, job.id)
      .map((runId) => runRuntimeName(perstackDir, job.id, runId))
      .filter((name): name is string => name !== undefined);
    return jobListEntry(job, runtimes, waitingCheckpoint(perstackDir, job));
  });
  return { entries, warnings: skipped.map((s) => `skipped ${s.path}: ${s.reason}`) };
}

export function runJobsCommand(options: { json?: boolean }, io: CommandIo = processIo()): number {
  const perstackDir = perstackStorageDir(io.cwd, io.env);
  const { entries, warnings } = readJobList(perstackDir);
  for (const warning of warnings) io.stderr(`perstack: warning: ${terminalSafe(warning)}\n`);
  if (options.json) {
    io.stdout(`${jsonTerminalSafe(JSON.stringify(entries))}\n`);
  } else if (entries.length === 0) {
    io.stdout(`${terminalSafe(noJobsMessage(jobsDir(perstackDir)))}\n`);
  } else {
    io.stdout(`${terminalSafe(formatJobTable(entries))}\n`);
  }
  return 0;
}

export function registerJobsCommand(program: Command): void {
  addServerOptions(program.command("jobs"))
    .description("list the jobs in ./perstack/jobs (or on --server), newest first, with the command that answers a waiting one")
    .option("--json", "print a JSON array of the jobs (job.json fields plus runtimes, durationMs, continueCommand)")
    .addHelpText("after", "\nExamples:\n  perstack jobs\n  perstack jobs --json\n  PERSTACK_TOKEN=pst_… perstack jobs --server https://perstack.example.com")
    .action(async (options: { json?: boolean } & ServerFlags) => {
      const server = serverTarget(options, process.env);
      if (server) {
        const { runRemoteJobsCommand } = await import("../remote/remote-jobs.js");
        process.exitCode = await runRemoteJobsCommand(options, server, processIo());
        return;
      }
      await takeOverOrphansIn(process.cwd(), process.env);
      process.exitCode = runJobsCommand(options);
    });
}

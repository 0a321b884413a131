// `perstack jobs`: one line per job, newest first, and for a job waiting for input the command that answers it.
// Pure: the jobs, their runtimes and checkpoints are read by the caller.
import { answerCommand, expertToRun } from "../job/continuation.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { clip, formatCount, formatDateTime, formatDuration } from "./display-units.js";

export interface JobListEntry extends Job {
  /** Every runtime the job's runs ran on, first the job's own (its latest invocation's). */
  runtimes: string[];
  durationMs?: number;
  /** For a job waiting for input: the command that answers it. */
  continueCommand?: string;
}

/**
 * `runRuntimes`: the runtimes the runs' run-setting.json files name. `waitingAt`: the checkpoint a job waiting for
 * input stopped at (its latestCheckpointId), when it could be read: a job stopped in a delegated run is answered
 * through its coordinator. `server`: the job is on that perstack serve (`perstack jobs --server`).
 */
export function jobListEntry(job: Job, runRuntimes: readonly string[], waitingAt?: Checkpoint, server?: string): JobListEntry {
  const runtimes = [...new Set([job.runtime, ...runRuntimes])];
  const entry: JobListEntry = { ...job, runtimes };
  if (job.finishedAt !== undefined) entry.durationMs = Math.max(0, job.finishedAt - job.startedAt);
  if (job.status === "stoppedByInteractiveTool") {
    entry.continueCommand = answerCommand(waitingAt ? expertToRun(job, waitingAt) : job.coordinatorExpertKey, job.id, server);
  }
  return entry;
}

const COLUMNS = ["JOB", "EXPERT", "RUNTIME", "STATUS", "STEPS", "TOKENS", "STARTED", "DURATION"] as const;
/** Columns of numbers line up on the right. */
const RIGHT = new Set(["STEPS", "TOKENS"]);

/** The table `perstack jobs` prints; a waiting job's line ends with the command that answers it. */
export function formatJobTable(entries: readonly JobListEntry[]): string {
  const rows = entries.map((e) => [
    e.id,
    clip(e.coordinatorExpertKey, 30),
    clip(e.runtimes.join(","), 30),
    e.status,
    String(e.totalSteps),
    formatCount(e.usage.totalTokens),
    formatDateTime(e.startedAt),
    e.durationMs !== undefined ? formatDuration(e.durationMs) : e.status === "running" ? "running" : "-",
  ]);
  const widths = COLUMNS.map((name, i) => Math.max(name.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (RIGHT.has(COLUMNS[i]!) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ");
  return [
    line(COLUMNS).trimEnd(),
    ...rows.map((row, i) => {
      const command = entries[i]!.continueCommand;
      return command ? `${line(row)}  answer: ${command}` : line(row).trimEnd();
    }),
  ].join("\n");
}

export function noJobsMessage(jobsDir: string): string {
  return `no jobs in ${jobsDir} yet; start one with \`perstack run <expert> "<query>"\``;
}

// Reads back what job-store.ts wrote: job.json, checkpoints and the list of jobs and runs, validated, for continuing
// a job and for `perstack log` / `perstack jobs`. Every failure is one error that names the file and says how to
// find the right one.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CheckpointNotFoundError, JobNotFoundError } from "../errors.js";
import { isSafeId } from "../model/ids.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { checkpointSchema, usageSchema } from "../model/perstack-schema.js";
import { CHECKPOINTS_FILE } from "./run-history-log.js";
import { RunHistoryFiles } from "./run-history-files.js";

export { RunHistoryFiles } from "./run-history-files.js";

const jobSchema = z.looseObject({
  id: z.string().min(1),
  status: z.enum(["running", "completed", "stoppedByMaxSteps", "stoppedByInteractiveTool", "stoppedByError"]),
  coordinatorExpertKey: z.string(),
  totalSteps: z.number().int().min(0),
  maxSteps: z.number().optional(),
  usage: usageSchema,
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  runtime: z.string(),
  latestCheckpointId: z.string().optional(),
});

export function jobsDir(perstackDir: string): string {
  return join(perstackDir, "jobs");
}

function readJson(path: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    return { ok: false, reason: (error as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : (error as Error).message };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `not JSON (${(error as Error).message})` };
  }
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return `${issue.path.length ? `${issue.path.join(".")}: ` : ""}${issue.message}`;
}

const LIST_JOBS = "list jobs with `perstack jobs`";

export function readJob(perstackDir: string, jobId: string): Job {
  if (!isSafeId(jobId)) {
    throw new JobNotFoundError(`job "${jobId}" not found: job ids are letters, digits, '-' and '_'; ${LIST_JOBS}`);
  }
  const path = join(jobsDir(perstackDir), jobId, "job.json");
  const read = readJson(path);
  if (!read.ok) {
    if (read.reason === "missing") throw new JobNotFoundError(`job ${jobId} not found: ${path} does not exist; ${LIST_JOBS}`);
    throw new JobNotFoundError(`${path}: cannot read job: ${read.reason}`);
  }
  const parsed = jobSchema.safeParse(read.value);
  if (!parsed.success) throw new JobNotFoundError(`${path}: not a valid job (${firstIssue(parsed.error)})`);
  return parsed.data as Job;
}

/** A directory under perstack/jobs that is not a readable job, and why. */
export interface SkippedJob {
  /** The directory's name as found (may be hostile: print it through terminalSafe). */
  name: string;
  path: string;
  reason: string;
}

/** Every valid job, newest first (by job.json startedAt); the directories that are not valid jobs, with why. */
export function listJobs(perstackDir: string): { jobs: Job[]; skipped: SkippedJob[] } {
  const dir = jobsDir(perstackDir);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // no jobs directory: same as no jobs
  }
  const jobs: Job[] = [];
  const skipped: SkippedJob[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    // A name that is not an id was not written by this project; it never names a path we read.
    if (!isSafeId(name)) {
      skipped.push({ name, path, reason: "not a job id (letters, digits, '-' and '_')" });
      continue;
    }
    const read = readJson(join(path, "job.json"));
    if (!read.ok) {
      skipped.push({ name, path, reason: read.reason === "missing" ? "no job.json" : `job.json: ${read.reason}` });
      continue;
    }
    const parsed = jobSchema.safeParse(read.value);
    if (!parsed.success) {
      skipped.push({ name, path, reason: `job.json is not a valid job (${firstIssue(parsed.error)})` });
    } else if (parsed.data.id !== name) {
      skipped.push({ name, path, reason: `job.json belongs to job ${JSON.stringify(parsed.data.id)}` });
    } else {
      jobs.push(parsed.data as Job);
    }
  }
  // Newest first; equal start times keep a stable order by id.
  jobs.sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { jobs, skipped };
}

/** The id of the job started last (by job.json startedAt), for --continue. */
export function latestJobId(perstackDir: string): string {
  const [latest] = listJobs(perstackDir).jobs;
  if (!latest) {
    throw new JobNotFoundError(`--continue: no jobs in ${jobsDir(perstackDir)}; start one with \`perstack run <expert> "<query>"\` (run it in the directory that holds perstack/)`);
  }
  return latest.id;
}

/** The run ids of a job (runs/<runId>/ directories), sorted; directory names that are not ids are left out. */
export function listRunIds(perstackDir: string, jobId: string): string[] {
  if (!isSafeId(jobId)) return [];
  try {
    return readdirSync(join(jobsDir(perstackDir), jobId, "runs"), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && isSafeId(entry.name))
      .map((entry) => entry.name)
      .sort();
  } catch {
    return [];
  }
}

/** The runtime name a run's run-setting.json records, if it is readable. */
export function runRuntimeName(perstackDir: string, jobId: string, runId: string): string | undefined {
  if (!isSafeId(jobId) || !isSafeId(runId)) return undefined;
  const read = readJson(join(jobsDir(perstackDir), jobId, "runs", runId, "run-setting.json"));
  if (!read.ok || typeof read.value !== "object" || read.value === null) return undefined;
  const runtime = (read.value as { runtime?: unknown }).runtime;
  const name = typeof runtime === "string" ? runtime : typeof runtime === "object" && runtime !== null ? (runtime as { name?: unknown }).name : undefined;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/**
 * A checkpoint whole, in Perstack's shape: checkpoints/<id>.json (the one a run stopped on), or a step's line of a
 * run's checkpoints.jsonl, its messages read from the run's messages.jsonl (run-history-log.ts). `runs` caches those
 * files, so reading many checkpoints of one job reads each once. Files are trusted no more than the agent: the result
 * is validated whole.
 */
export function readCheckpoint(perstackDir: string, jobId: string, checkpointId: string, runs: RunHistoryFiles = new RunHistoryFiles(perstackDir, jobId)): Checkpoint {
  const dir = join(jobsDir(perstackDir), jobId, "checkpoints");
  // A checkpoint id is a file name: anything that could leave the directory is simply not one of this job's.
  const path = join(dir, `${checkpointId}.json`);
  const safe = isSafeId(checkpointId) && isSafeId(jobId);
  let read = safe ? readJson(path) : { ok: false as const, reason: "missing" };
  let where = path;
  if (!read.ok && read.reason === "missing" && safe) {
    const logged = runs.checkpoint(checkpointId);
    if (logged) {
      read = { ok: true, value: logged.value };
      where = `${logged.path} (checkpoint ${checkpointId})`;
    }
  }
  if (!read.ok) {
    if (read.reason === "missing") {
      throw new CheckpointNotFoundError(`checkpoint ${checkpointId} is not in job ${jobId}: no ${path}, nor a line of a run's ${CHECKPOINTS_FILE}; list the job's checkpoints with \`perstack log --job ${jobId} --summary\``);
    }
    throw new CheckpointNotFoundError(`${path}: cannot read checkpoint: ${read.reason}`);
  }
  const parsed = checkpointSchema.safeParse(withLoggedMessages(read.value, where, runs));
  if (!parsed.success) throw new CheckpointNotFoundError(`${where}: not a valid checkpoint (${firstIssue(parsed.error)})`);
  const checkpoint = parsed.data as unknown as Checkpoint;
  if (checkpoint.jobId !== jobId) {
    throw new CheckpointNotFoundError(`${where}: checkpoint belongs to job ${checkpoint.jobId}, not ${jobId}`);
  }
  return checkpoint;
}

/** Whether job `jobId` has checkpoint `checkpointId`, as a file or a line. */
export function hasCheckpoint(perstackDir: string, jobId: string, checkpointId: string): boolean {
  if (!isSafeId(checkpointId) || !isSafeId(jobId)) return false;
  return existsSync(join(jobsDir(perstackDir), jobId, "checkpoints", `${checkpointId}.json`)) || new RunHistoryFiles(perstackDir, jobId).checkpoint(checkpointId) !== undefined;
}

/** A checkpoint's content with `messagesLog` replaced by the messages it names, in Perstack's place. */
function withLoggedMessages(value: unknown, where: string, runs: RunHistoryFiles): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("messagesLog" in value)) return value;
  const { messagesLog, ...rest } = value as Record<string, unknown>;
  if ("messages" in rest) throw new CheckpointNotFoundError(`${where}: not a valid checkpoint (both messages and messagesLog)`);
  const count = (messagesLog as { count?: unknown } | null)?.count;
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
    throw new CheckpointNotFoundError(`${where}: not a valid checkpoint (messagesLog.count: not a whole number)`);
  }
  if (typeof rest.runId !== "string" || !isSafeId(rest.runId)) throw new CheckpointNotFoundError(`${where}: not a valid checkpoint (runId)`);
  const messages = runs.messages(rest.runId, count);
  if (!messages.ok) throw new CheckpointNotFoundError(`${where}: cannot read its ${count} messages: ${messages.reason}`);
  const { id, jobId, status, stepNumber, runId, ...tail } = rest;
  return { id, jobId, runId, status, stepNumber, messages: messages.value, ...tail };
}

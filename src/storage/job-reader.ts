// Reads back what job-store.ts wrote: job.json and checkpoints, validated, for continuing a job. Every failure is
// one error that names the file and says how to find the right one.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { z } from "zod";
import { CheckpointNotFoundError, JobNotFoundError } from "../errors.js";
import { isSafeId } from "../model/ids.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { checkpointSchema, usageSchema } from "../model/perstack-schema.js";

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

/** How to list what exists, as a command relative to the current directory when that is shorter. */
function listHint(dir: string, cwd: string): string {
  const rel = relative(cwd, dir);
  return `ls ${rel && !rel.startsWith("..") ? rel : dir}`;
}

export function readJob(perstackDir: string, jobId: string, cwd = process.cwd()): Job {
  if (!isSafeId(jobId)) {
    throw new JobNotFoundError(`job "${jobId}" not found: job ids are letters, digits, '-' and '_'; list jobs with \`${listHint(jobsDir(perstackDir), cwd)}\``);
  }
  const path = join(jobsDir(perstackDir), jobId, "job.json");
  const read = readJson(path);
  if (!read.ok) {
    if (read.reason === "missing") {
      throw new JobNotFoundError(`job ${jobId} not found: ${path} does not exist; list jobs with \`${listHint(jobsDir(perstackDir), cwd)}\``);
    }
    throw new JobNotFoundError(`${path}: cannot read job: ${read.reason}`);
  }
  const parsed = jobSchema.safeParse(read.value);
  if (!parsed.success) throw new JobNotFoundError(`${path}: not a valid job (${firstIssue(parsed.error)})`);
  return parsed.data as Job;
}

/** The id of the job started last (by job.json startedAt), for --continue. */
export function latestJobId(perstackDir: string): string {
  const dir = jobsDir(perstackDir);
  let ids: string[] = [];
  try {
    ids = readdirSync(dir);
  } catch {
    // no jobs directory: same as no jobs
  }
  let latest: { id: string; startedAt: number } | undefined;
  for (const id of ids) {
    if (!isSafeId(id)) continue;
    const read = readJson(join(dir, id, "job.json"));
    if (!read.ok) continue;
    const parsed = jobSchema.safeParse(read.value);
    if (!parsed.success) continue;
    if (!latest || parsed.data.startedAt > latest.startedAt) latest = { id, startedAt: parsed.data.startedAt };
  }
  if (!latest) {
    throw new JobNotFoundError(`--continue: no jobs in ${dir}; start one with \`perstack run <expert> "<query>"\` (run it in the directory that holds perstack/)`);
  }
  return latest.id;
}

export function readCheckpoint(perstackDir: string, jobId: string, checkpointId: string, cwd = process.cwd()): Checkpoint {
  const dir = join(jobsDir(perstackDir), jobId, "checkpoints");
  // A checkpoint id is a file name: anything that could leave the directory is simply not one of this job's.
  const path = join(dir, `${checkpointId}.json`);
  const read = isSafeId(checkpointId) && isSafeId(jobId) ? readJson(path) : { ok: false as const, reason: "missing" };
  if (!read.ok) {
    if (read.reason === "missing") {
      throw new CheckpointNotFoundError(`checkpoint ${checkpointId} is not in job ${jobId}: no ${path}; list the job's checkpoints with \`${listHint(dir, cwd)}\``);
    }
    throw new CheckpointNotFoundError(`${path}: cannot read checkpoint: ${read.reason}`);
  }
  const parsed = checkpointSchema.safeParse(read.value);
  if (!parsed.success) throw new CheckpointNotFoundError(`${path}: not a valid checkpoint (${firstIssue(parsed.error)})`);
  const checkpoint = parsed.data as unknown as Checkpoint;
  if (checkpoint.jobId !== jobId) {
    throw new CheckpointNotFoundError(`${path}: checkpoint belongs to job ${checkpoint.jobId}, not ${jobId}`);
  }
  return checkpoint;
}

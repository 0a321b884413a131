// PURE: which job a `perstack run` continues and how the engine starts again, from the flags, the job.json and
// the checkpoint read back from disk (storage/job-reader.ts reads them). Every refusal is one line that says what
// to run instead.
import { CannotContinueError, InvalidOptionError } from "../errors.js";
import type { EngineStart } from "../engine/engine-input.js";
import type { Checkpoint, Job } from "../model/perstack.js";

export interface RunFlags {
  query?: string;
  /** --continue: the most recent job. */
  continue?: boolean;
  continueJob?: string;
  resumeFrom?: string;
  /** -i: the query is the answer to the pending interactive tool call. */
  interactive?: boolean;
  runtime?: string;
}

/** What the flags ask for, before anything is read from disk. */
export type JobTarget =
  | { kind: "new"; query: string }
  | { kind: "continue"; /** undefined: the most recent job. */ jobId?: string; checkpointId?: string };

const CONTINUE_RUNTIMES = ["perstack", "local", "docker"] as const;
export type ContinueRuntime = (typeof CONTINUE_RUNTIMES)[number];

export function jobTarget(flags: RunFlags): JobTarget {
  if (flags.continue && flags.continueJob !== undefined) {
    throw new InvalidOptionError("--continue and --continue-job both pick a job; give one of them");
  }
  if (flags.resumeFrom !== undefined && flags.continueJob === undefined) {
    throw new InvalidOptionError(`--resume-from ${flags.resumeFrom} needs --continue-job <jobId>: the job the checkpoint belongs to`);
  }
  const continuing = Boolean(flags.continue) || flags.continueJob !== undefined;
  if (!continuing) {
    if (flags.interactive) {
      throw new InvalidOptionError("-i answers a job's pending interactive tool call; add --continue or --continue-job <jobId>");
    }
    if (flags.query === undefined) {
      throw new InvalidOptionError('missing query: perstack run <expert> "<query>" (only --continue, --continue-job or --resume-from may leave it out)');
    }
    return { kind: "new", query: flags.query };
  }
  if (flags.interactive && flags.query === undefined) {
    throw new InvalidOptionError("-i needs the answer as the query argument, e.g. -i 'yes'");
  }
  return {
    kind: "continue",
    ...(flags.continueJob !== undefined ? { jobId: flags.continueJob } : {}),
    ...(flags.resumeFrom !== undefined ? { checkpointId: flags.resumeFrom } : {}),
  };
}

export interface Continuation {
  job: Job;
  checkpoint: Checkpoint;
  runtime: ContinueRuntime;
  start: EngineStart;
  stepsBefore: number;
  /** The text this invocation adds: the new query or the answer; empty when resuming. */
  query: string;
}

/** The expert argument a job's checkpoint must be run with: a delegated run continues under its coordinator. */
export function expertToRun(job: Job, checkpoint: Checkpoint): string {
  return checkpoint.delegatedBy ? job.coordinatorExpertKey : checkpoint.expert.key;
}

/**
 * The command that answers a checkpoint's pending interactive tool call; `server`: the job is on that perstack serve
 * (the token comes from PERSTACK_TOKEN, never from a command line).
 */
export function answerCommand(expertKey: string, jobId: string, server?: string): string {
  return `perstack run ${expertKey} --continue-job ${jobId} -i '<answer>'${server !== undefined ? ` --server ${server}` : ""}`;
}

/** The runtime a continuation runs on: only the built-in engine can pick a job up again. */
export function continueRuntime(job: Job, flagRuntime: string | undefined): ContinueRuntime {
  if (!(CONTINUE_RUNTIMES as readonly string[]).includes(job.runtime)) {
    throw new CannotContinueError(`job ${job.id} ran on runtime ${job.runtime}; only the built-in perstack runtime can continue a job`);
  }
  if (flagRuntime !== undefined && !(CONTINUE_RUNTIMES as readonly string[]).includes(flagRuntime)) {
    throw new InvalidOptionError(
      `--runtime ${flagRuntime}: only the built-in perstack runtime (perstack or docker) can continue job ${job.id}; drop --runtime`,
    );
  }
  return (flagRuntime ?? job.runtime) as ContinueRuntime;
}

/** The checkpoint a continuation starts from: --resume-from's, else the one the job last stopped at. */
export function checkpointIdToContinue(job: Job, resumeFrom: string | undefined): string {
  if (resumeFrom !== undefined) return resumeFrom;
  if (job.latestCheckpointId) return job.latestCheckpointId;
  throw new CannotContinueError(
    `job ${job.id} recorded no checkpoint to continue from (status ${job.status}); pick one with --continue-job ${job.id} --resume-from <checkpointId>`,
  );
}

export function planContinuation(
  job: Job,
  checkpoint: Checkpoint,
  flags: RunFlags & { expertKey: string },
): Continuation {
  const runtime = continueRuntime(job, flags.runtime);
  const expected = expertToRun(job, checkpoint);
  if (flags.expertKey !== expected) {
    const whose = checkpoint.delegatedBy ? `job ${job.id}'s coordinator is expert "${expected}"` : `job ${job.id}'s checkpoint is expert "${expected}"`;
    throw new CannotContinueError(`${whose}, not "${flags.expertKey}"; run it with expert "${expected}"`);
  }
  const base = { job, checkpoint, runtime, stepsBefore: job.totalSteps };
  if (flags.interactive) {
    if (checkpoint.status !== "stoppedByInteractiveTool") {
      throw new CannotContinueError(
        `-i: checkpoint ${checkpoint.id} of job ${job.id} is ${checkpoint.status}, not waiting for an interactive answer; continue it with a query instead of -i`,
      );
    }
    const answer = flags.query ?? "";
    return { ...base, start: { kind: "answer", checkpoint, answer }, query: answer };
  }
  if (checkpoint.status === "stoppedByInteractiveTool") {
    throw new CannotContinueError(
      `job ${job.id} is waiting for the answer to ${pendingToolNames(checkpoint)}; answer it with \`${answerCommand(expected, job.id)}\``,
    );
  }
  if (flags.query !== undefined) return { ...base, start: { kind: "continue", checkpoint, query: flags.query }, query: flags.query };
  if (flags.resumeFrom !== undefined) return { ...base, start: { kind: "resume", checkpoint }, query: "" };
  throw new InvalidOptionError(
    `missing query: continuing job ${job.id} needs one (perstack run ${expected} --continue-job ${job.id} "<query>"), or --resume-from <checkpointId> to carry on without one`,
  );
}

function pendingToolNames(checkpoint: Checkpoint): string {
  const names = (checkpoint.pendingToolCalls ?? []).map((call) => call.toolName);
  return names.length ? `its interactive tool call ${names.join(", ")}` : "an interactive tool call";
}

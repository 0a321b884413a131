// `perstack log`: finds the job (and run or checkpoint) the flags name, streams its events once through the
// selection and the summary counters, and returns Perstack's log output. Reads the disk; formats nothing.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CheckpointNotFoundError, InvalidOptionError, RunNotFoundError } from "../errors.js";
import { isSafeId } from "../model/ids.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { hasCheckpoint, jobsDir, listJobs, listRunIds, readCheckpoint, readJob } from "../storage/job-reader.js";
import { expandRecord } from "../model/event-messages.js";
import { CheckpointFileMessages } from "./checkpoint-messages.js";
import { EventPage, selectsEvent, type EventSelector, type Paging } from "./event-selection.js";
import { mergeByTimestamp, newReadProblems, readEventsFile } from "./events-stream.js";
import { EventTotalsCounter, shownCounts, type EventTotals, type ShownCounts } from "./job-summary.js";
import { checkpointHeader, savedCheckpointOf, type CheckpointHeader, type LoggedEvent, type LoggedUsage } from "./logged-event.js";

export interface LogQuery {
  jobId?: string;
  runId?: string;
  checkpointId?: string;
  selector: EventSelector;
  paging: Paging;
  /** --messages: show a checkpoint's history (--checkpoint's, else the job's latest). */
  messages?: boolean;
}

/**
 * The summary: Perstack's counts over the events shown (totalEvents ... stepRange), then what the whole scope
 * (the job, or the run of --run / --checkpoint) amounted to, before any filter or paging.
 */
export interface LogSummary extends ShownCounts {
  scope: "job" | "run";
  /** The run of a run's summary. */
  runId?: string;
  status: string;
  steps: number;
  usage: LoggedUsage;
  /** Undefined while the job is still running (or never recorded its end). */
  durationMs?: number;
  runs: number;
  eventsInScope: number;
  toolCalls: EventTotals["toolCalls"];
  errors: EventTotals["errors"];
  blockedEgress: EventTotals["blockedEgress"];
  checkpoints: number;
  latestCheckpointId?: string;
  /** Lines of events.jsonl skipped because they are not events. */
  malformedLines: number;
}

export interface JobLog {
  job: Job;
  events: LoggedEvent[];
  summary: LogSummary;
  /** --checkpoint (or --messages): the checkpoint, read and validated from its file. */
  checkpoint?: Checkpoint;
  /** The job's checkpoints, without their messages, when the whole job is shown. */
  checkpoints?: CheckpointHeader[];
  /** No job was named: this is the latest. */
  isLatestJob?: boolean;
  storagePath: string;
  totalEventsBeforeLimit: number;
  matchedAfterPagination: number;
  /** What could not be read (malformed lines, unreadable files): one line each. */
  warnings: string[];
}

const LIST_JOBS = "list jobs with `perstack jobs`";

/** The newest job holding `relativePath` (a run directory). */
function findJobHolding(perstackDir: string, relativePath: string): Job | undefined {
  return listJobs(perstackDir).jobs.find((job) => existsSync(join(jobsDir(perstackDir), job.id, relativePath)));
}

function pickJob(perstackDir: string, query: LogQuery): { job: Job; isLatest: boolean } | undefined {
  if (query.jobId !== undefined) return { job: readJob(perstackDir, query.jobId), isLatest: false };
  // A run or checkpoint id names one job: find it rather than assume the latest.
  if (query.runId !== undefined) {
    const job = isSafeId(query.runId) ? findJobHolding(perstackDir, join("runs", query.runId)) : undefined;
    if (!job) throw new RunNotFoundError(`run ${JSON.stringify(query.runId)} is in no job in ${jobsDir(perstackDir)}; ${LIST_JOBS}, then pass --job <jobId>`);
    return { job, isLatest: false };
  }
  if (query.checkpointId !== undefined) {
    const id = query.checkpointId;
    const job = listJobs(perstackDir).jobs.find((candidate) => hasCheckpoint(perstackDir, candidate.id, id));
    if (!job) throw new CheckpointNotFoundError(`checkpoint ${JSON.stringify(query.checkpointId)} is in no job in ${jobsDir(perstackDir)}; ${LIST_JOBS}, then pass --job <jobId>`);
    return { job, isLatest: false };
  }
  const [latest] = listJobs(perstackDir).jobs;
  return latest ? { job: latest, isLatest: true } : undefined;
}

function pickCheckpoint(perstackDir: string, job: Job, query: LogQuery): Checkpoint | undefined {
  if (query.checkpointId !== undefined) return readCheckpoint(perstackDir, job.id, query.checkpointId);
  if (!query.messages) return undefined;
  if (!job.latestCheckpointId) {
    throw new InvalidOptionError(`--messages: job ${job.id} has no checkpoint yet; name one with --checkpoint <checkpointId>`);
  }
  return readCheckpoint(perstackDir, job.id, job.latestCheckpointId);
}

/** The runs whose events are read: one (--run, --checkpoint) or all of the job's. */
function pickRuns(perstackDir: string, job: Job, query: LogQuery, checkpoint: Checkpoint | undefined): string[] {
  const runs = listRunIds(perstackDir, job.id);
  const byCheckpoint = query.checkpointId !== undefined ? checkpoint?.runId : undefined;
  if (query.runId !== undefined && byCheckpoint !== undefined && query.runId !== byCheckpoint) {
    throw new InvalidOptionError(`--run ${query.runId} and --checkpoint ${query.checkpointId}: the checkpoint belongs to run ${byCheckpoint}; give one of them`);
  }
  const runId = query.runId ?? byCheckpoint;
  if (runId === undefined) return runs;
  if (!runs.includes(runId)) {
    const listed = runs.length > 0 ? `its runs: ${runs.slice(0, 10).join(", ")}${runs.length > 10 ? ", …" : ""}` : "it has no runs";
    throw new RunNotFoundError(`run ${JSON.stringify(runId)} is not in job ${job.id} (${listed})`);
  }
  return [runId];
}

/** Fields whose messages events.jsonl holds by reference (model/event-messages.ts). */
const REFERENCED_FIELDS = new Set(["messages", "checkpoint", "nextCheckpoint", "initialCheckpoint"]);

/** Whether the selector's --filter looks into messages or checkpoints, which events name by reference. */
export function filterReadsMessages(selector: EventSelector): boolean {
  const first = selector.filter?.segments[0];
  return first !== undefined && first.kind === "field" && REFERENCED_FIELDS.has(first.name);
}

/**
 * Whether an event is selected. A --filter that looks into messages or checkpoints is matched against Perstack's
 * shape, the messages read back from the checkpoint files, as users of Perstack's `perstack log --filter` expect;
 * other filters are matched against the event as recorded, without reading any file.
 */
function eventMatcher(perstackDir: string, jobId: string, selector: EventSelector): (event: LoggedEvent) => boolean {
  if (!filterReadsMessages(selector)) return (event) => selectsEvent(selector, event);
  const files = new CheckpointFileMessages(perstackDir, jobId);
  return (event) => {
    let shaped: LoggedEvent = event;
    try {
      shaped = expandRecord(event, files.resolve) as LoggedEvent;
    } catch {
      // A reference that cannot be read back: matched as recorded (the --json output says why).
    }
    return selectsEvent(selector, shaped);
  };
}

/** undefined: there are no jobs at all. */
export async function readJobLog(perstackDir: string, query: LogQuery): Promise<JobLog | undefined> {
  const picked = pickJob(perstackDir, query);
  if (!picked) return undefined;
  const { job } = picked;
  const checkpoint = pickCheckpoint(perstackDir, job, query);
  const runIds = pickRuns(perstackDir, job, query, checkpoint);
  const wholeJob = query.runId === undefined && query.checkpointId === undefined;

  const problems = newReadProblems();
  const files = runIds.map((runId) => ({ runId, path: join(jobsDir(perstackDir), job.id, "runs", runId, "events.jsonl") }));
  const page = new EventPage(eventMatcher(perstackDir, job.id, query.selector), query.paging);
  const totals = new EventTotalsCounter();
  const checkpoints: CheckpointHeader[] = [];
  for await (const event of mergeByTimestamp(files.map((file) => readEventsFile(file, problems)))) {
    page.push(event);
    totals.add(event);
    if (wholeJob) {
      const header = checkpointHeader(savedCheckpointOf(event));
      if (header) checkpoints.push(header);
    }
  }

  const counted = totals.result();
  const malformedLines = [...problems.malformedLines.values()].reduce((sum, n) => sum + n, 0);
  const warnings = [
    ...[...problems.malformedLines].map(([runId, n]) => `skipped ${n} line(s) of runs/${runId}/events.jsonl that are not events`),
    ...problems.unreadable.map((u) => `could not read ${u.path} (${u.reason}); its events are left out`),
  ];
  const events = [...page.events];
  const summary: LogSummary = {
    ...shownCounts(events),
    scope: wholeJob ? "job" : "run",
    ...(wholeJob ? {} : { runId: runIds[0] }),
    // A job's own record is the authority for the job; a run has only its events.
    status: wholeJob ? job.status : (counted.lastStop ?? "running"),
    steps: wholeJob ? job.totalSteps : counted.steps,
    usage: wholeJob ? { ...job.usage } : counted.usage,
    ...durationOf(wholeJob, job, counted),
    runs: counted.runs,
    eventsInScope: counted.events,
    toolCalls: counted.toolCalls,
    errors: counted.errors,
    blockedEgress: counted.blockedEgress,
    checkpoints: counted.checkpoints,
    ...(counted.latestCheckpoint ? { latestCheckpointId: counted.latestCheckpoint.id } : {}),
    malformedLines,
  };
  return {
    job,
    events,
    summary,
    ...(checkpoint ? { checkpoint } : {}),
    ...(wholeJob ? { checkpoints } : {}),
    ...(picked.isLatest ? { isLatestJob: true } : {}),
    storagePath: perstackDir,
    totalEventsBeforeLimit: page.matched,
    matchedAfterPagination: page.shownMatches,
    warnings,
  };
}

function durationOf(wholeJob: boolean, job: Job, counted: EventTotals): { durationMs?: number } {
  if (wholeJob) return job.finishedAt !== undefined ? { durationMs: Math.max(0, job.finishedAt - job.startedAt) } : {};
  return counted.firstTimestamp !== undefined && counted.lastTimestamp !== undefined ? { durationMs: counted.lastTimestamp - counted.firstTimestamp } : {};
}

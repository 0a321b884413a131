// `perstack jobs --server <url>`: the tenant's jobs on perstack serve, in the table and JSON of a local `perstack
// jobs` (history/job-list.ts), newest first; a waiting job's line ends with the command that answers it there.
import type { CommandIo } from "../cli/command-io.js";
import { jsonTerminalSafe, terminalSafe } from "../cli/terminal-text.js";
import { formatJobTable, jobListEntry, type JobListEntry } from "../history/job-list.js";
import type { Checkpoint, Job } from "../model/perstack.js";
import { fetchCheckpoint } from "./remote-checkpoints.js";
import { ServerClient, type RunView } from "./server-client.js";
import type { ServerTarget } from "./server-target.js";

/** Pages of 200 runs read at most: the newest 10,000 submissions. */
const MAX_PAGES = 50;

/** job.json's fields as the server's record of a run gives them (a queued or cancelled run has no job.json yet). */
export function jobOfView(view: RunView): Job {
  const usage = view.usage ?? {};
  return {
    id: view.jobId,
    // queued and cancelled are the server's, not job.json's: shown as they are.
    status: view.status as Job["status"],
    coordinatorExpertKey: view.expert ?? "-",
    totalSteps: view.totalSteps ?? 0,
    usage: {
      inputTokens: usage.inputTokens ?? 0,
      outputTokens: usage.outputTokens ?? 0,
      reasoningTokens: usage.reasoningTokens ?? 0,
      totalTokens: usage.totalTokens ?? 0,
      cachedInputTokens: usage.cachedInputTokens ?? 0,
    },
    startedAt: view.startedAt ?? view.submittedAt,
    ...(view.finishedAt !== undefined ? { finishedAt: view.finishedAt } : {}),
    runtime: view.runtime ?? "-",
    ...(view.latestCheckpointId !== undefined ? { latestCheckpointId: view.latestCheckpointId } : {}),
  };
}

/** The tenant's jobs, newest first: one per job (a continued job's latest invocation). */
export async function remoteJobList(client: ServerClient): Promise<JobListEntry[]> {
  const latest = new Map<string, RunView>();
  let before: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const { runs, next } = await client.listRuns({ limit: 200, ...(before !== undefined ? { before } : {}) });
    for (const run of runs) if (!latest.has(run.jobId)) latest.set(run.jobId, run);
    if (next === undefined) break;
    before = next;
  }
  const entries: JobListEntry[] = [];
  for (const view of latest.values()) {
    const job = jobOfView(view);
    let waitingAt: Checkpoint | undefined;
    if (job.status === "stoppedByInteractiveTool" && job.latestCheckpointId) {
      // Only for the better answer command (a delegate's question is answered through its coordinator).
      waitingAt = await fetchCheckpoint(client, job.id, job.latestCheckpointId).catch(() => undefined);
    }
    entries.push(jobListEntry(job, view.runtime !== undefined ? [view.runtime] : [], waitingAt, client.base));
  }
  return entries;
}

export async function runRemoteJobsCommand(options: { json?: boolean }, target: ServerTarget, io: CommandIo): Promise<number> {
  const client = new ServerClient(target);
  const entries = await remoteJobList(client);
  if (options.json) io.stdout(`${jsonTerminalSafe(JSON.stringify(entries))}\n`);
  else if (entries.length === 0) io.stdout(`${terminalSafe(`no jobs on ${client.base} yet; start one with \`perstack run <expert> "<query>" --server ${client.base}\``)}\n`);
  else io.stdout(`${terminalSafe(formatJobTable(entries))}\n`);
  return 0;
}

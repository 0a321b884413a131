// `perstack log --server <url>`: a job of perstack serve shown exactly as a local `perstack log` shows one, every
// option included. Its record is fetched into a temporary perstack/ of the local layout (job.json from the server's
// record, each run's events.jsonl from the event stream, the checkpoints the output needs from the checkpoint route)
// and read back by the local log's own reader and printer (history/job-log.ts, cli/log-command.ts), then removed.
//
// Events come from GET /v1/runs/{jobId}/events: every event the job has recorded, to its end (for a job still going,
// what it has recorded until the stream goes quiet: a snapshot, as a local log of a running job is). They are held to
// the event schema before they are written, and checkpoints to the checkpoint schema; ids that name files are ids.
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandIo } from "../cli/command-io.js";
import { logQueryFromOptions, printJobLog, type LogCommandOptions } from "../cli/log-command.js";
import { terminalSafe } from "../cli/terminal-text.js";
import { InvalidOptionError, JobNotFoundError, ServerRefusedError } from "../errors.js";
import { filterReadsMessages, readJobLog } from "../history/job-log.js";
import { isSafeId } from "../model/ids.js";
import { fetchCheckpoint, referencedCheckpoints } from "./remote-checkpoints.js";
import { checkRemoteEvent, followRunEvents } from "./remote-events.js";
import { jobOfView } from "./remote-jobs.js";
import { GOING_STATUSES, ServerClient, type RunView } from "./server-client.js";
import type { ServerTarget } from "./server-target.js";

/** A job still going is read until its stream has been quiet this long. */
const SNAPSHOT_QUIET_MS = 1_500;
/** Event text held before it is written out. */
const FLUSH_CHARS = 8 * 1024 * 1024;

export async function runRemoteLogCommand(options: LogCommandOptions, target: ServerTarget, io: CommandIo): Promise<number> {
  if (options.messages && options.summary) throw new InvalidOptionError("--messages and --summary are two views of a job; give one of them");
  const query = logQueryFromOptions(options);
  if (options.job === undefined && (options.run !== undefined || options.checkpoint !== undefined)) {
    throw new InvalidOptionError(`--${options.run !== undefined ? "run" : "checkpoint"} with --server needs --job <jobId>: the server is not searched run by run (perstack jobs --server lists the jobs)`);
  }
  const client = new ServerClient(target);
  const warn = (text: string) => io.stderr(`perstack: warning: ${terminalSafe(text)}\n`);
  let view: RunView;
  if (options.job === undefined) {
    const [latest] = (await client.listRuns({ limit: 1 })).runs;
    if (!latest) {
      io.stderr(`perstack: ${terminalSafe(`no jobs on ${client.base} yet; start one with \`perstack run <expert> "<query>" --server ${client.base}\``)}\n`);
      return 0;
    }
    view = latest;
  } else {
    view = await existing(client, options.job);
  }
  const jobId = view.jobId;
  if (view.startedAt === undefined) {
    io.stderr(`perstack: ${terminalSafe(`job ${jobId} is ${view.status} on ${client.base}${view.reason ? ` (${view.reason})` : ""}: it has recorded nothing yet`)}\n`);
    return 0;
  }

  const mirror = await mkdtemp(join(tmpdir(), "perstack-log-"));
  try {
    const perstackDir = join(mirror, "perstack");
    const jobDir = join(perstackDir, "jobs", jobId);
    mkdirSync(join(jobDir, "checkpoints"), { recursive: true });
    writeFileSync(join(jobDir, "job.json"), JSON.stringify(jobOfView(view)));

    const everyReference = filterReadsMessages(query.selector);
    const wanted = new Set<string>();
    const pending = new Map<string, string[]>();
    let held = 0;
    const flush = () => {
      for (const [runId, lines] of pending) appendFileSync(join(jobDir, "runs", runId, "events.jsonl"), lines.join(""));
      pending.clear();
      held = 0;
    };
    for await (const message of followRunEvents(client, jobId, GOING_STATUSES.has(view.status) ? { snapshotIdleMs: SNAPSHOT_QUIET_MS } : {})) {
      const checked = checkRemoteEvent(message.data, jobId);
      if (!checked.ok) {
        warn(`ignored an event from ${client.base}: ${checked.reason}`);
        continue;
      }
      const runId = checked.event.runId;
      let lines = pending.get(runId);
      if (!lines) {
        mkdirSync(join(jobDir, "runs", runId), { recursive: true });
        pending.set(runId, (lines = []));
      }
      // As events.jsonl records it (JSON.stringify leaves no newline in the line).
      const line = `${JSON.stringify(checked.record)}\n`;
      lines.push(line);
      held += line.length;
      if (held > FLUSH_CHARS) flush();
      if (everyReference) for (const id of referencedCheckpoints(checked.record)) wanted.add(id);
    }
    flush();

    const fetchInto = async (ids: Iterable<string>) => {
      for (const id of ids) {
        if (!isSafeId(id)) continue;
        try {
          writeFileSync(join(jobDir, "checkpoints", `${id}.json`), JSON.stringify(await fetchCheckpoint(client, jobId, id)));
        } catch (error) {
          // The log says which references it could not resolve, as it does for a missing file.
          if (error instanceof ServerRefusedError && error.status === 404) continue;
          warn(`checkpoint ${id}: ${(error as Error).message}`);
        }
      }
    };
    if (options.checkpoint !== undefined) wanted.add(options.checkpoint);
    else if (options.messages && view.latestCheckpointId !== undefined) wanted.add(view.latestCheckpointId);
    await fetchInto(wanted);

    const log = await readJobLog(perstackDir, { ...query, jobId });
    if (!log) throw new JobNotFoundError(`job ${jobId} could not be read from ${client.base}`);
    if (options.json || options.pretty) {
      const shown = new Set<string>();
      for (const event of log.events) for (const id of referencedCheckpoints(event)) if (!wanted.has(id)) shown.add(id);
      await fetchInto(shown);
    }
    const named = { ...log, storagePath: `${client.base}/v1/runs/${jobId}`, ...(options.job === undefined ? { isLatestJob: true } : {}) };
    printJobLog(named, options, perstackDir, io);
    return 0;
  } finally {
    await rm(mirror, { recursive: true, force: true });
  }
}

async function existing(client: ServerClient, jobId: string): Promise<RunView> {
  try {
    return await client.getRun(jobId);
  } catch (error) {
    if (error instanceof ServerRefusedError && error.status === 404) throw new JobNotFoundError(`job ${jobId} not found on ${client.base}; list its jobs with perstack jobs --server ${client.base}`);
    throw error;
  }
}

// `perstack run --server <url>`: the run goes to perstack serve instead of this machine's Docker engine, and looks
// and ends as a local run does. The workspace is packed as for a local copy-mode run and uploaded with perstack.toml
// (remote-workspace.ts); the job's events come back over SSE (remote-events.ts), are checked like the agent's own
// output, and go through the local run's printer (cli/event-printer.ts: the live view, or --json's lines in Perstack's
// shape); the exit code comes from the job's final status as a local run's does (cli/exit-codes.ts); and the run's
// workspace is applied to the local one through the local copy-back, conflicts reported.
//
// --continue-job <jobId> (with a query, or -i and the answer, and --resume-from) continues a job of the server. Ctrl-C
// cancels the job on the server and waits for it to stop (its changes so far are applied, as a local interrupted
// run's are); a second Ctrl-C stops waiting and skips the workspace; a third quits.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../config/load.js";
import { DEFAULTS } from "../config/schema.js";
import { CannotContinueError, JobNotFoundError, PerstackError, ServerRefusedError } from "../errors.js";
import { RUN_EXIT as EXIT } from "../cli/exit-codes.js";
import { runEventPrinter } from "../cli/event-printer.js";
import { formatWaiting } from "../cli/live-view.js";
import type { RunOptions } from "../cli/run-options.js";
import { terminalSafe } from "../cli/terminal-text.js";
import { jobTarget } from "../job/continuation.js";
import { newId } from "../model/ids.js";
import { HOST_ONLY_EVENT_TYPES, type CheckpointRef, type PerstackEvent, type RuntimeEvent } from "../model/perstack.js";
import { perstackStorageDir } from "../storage/storage-dir.js";
import { copyBackNotices } from "../workspace/copy-back-notices.js";
import type { WorkspaceSnapshot } from "../workspace/workspace-snapshot.js";
import { RemoteCheckpointMessages } from "./remote-checkpoints.js";
import { checkRemoteEvent, cursorAtEnd, followRunEvents } from "./remote-events.js";
import { remoteContinueBody, remoteRunFields } from "./remote-options.js";
import { applyServerWorkspace, localSnapshot, packUpload, remoteWorkspace, serverBaseline, type RemoteWorkspace } from "./remote-workspace.js";
import { GOING_STATUSES, ServerClient, type RunView, type Submitted } from "./server-client.js";
import type { ServerTarget } from "./server-target.js";

/** How long the run may take to stop on the server after Ctrl-C before this command stops waiting for it. */
const CANCEL_WAIT_MS = 60_000;
/** How long a cancellation still on its way may hold up the end of the command. */
const SETTLE_MS = 10_000;

/** The exit code of a run that ended with `status` (the job's status, or the server's `cancelled`). */
export function exitCodeOf(status: string): number {
  if (status === "completed") return EXIT.completed;
  if (status === "stoppedByInteractiveTool") return EXIT.waitingForInput;
  return EXIT.failed;
}

export async function runRemote(expertKey: string, queryArg: string | undefined, options: RunOptions, target: ServerTarget): Promise<number> {
  const continuing = options.continueJob !== undefined;
  // Flags first, as a local run checks them: nothing is read or sent for a command that cannot run.
  const fields = continuing ? undefined : remoteRunFields(options);
  const continueBody = continuing ? remoteContinueBody(options, queryArg) : undefined;
  const wanted = jobTarget({
    ...(queryArg !== undefined ? { query: queryArg } : {}),
    ...(options.continueJob !== undefined ? { continueJob: options.continueJob } : {}),
    ...(options.resumeFrom !== undefined ? { resumeFrom: options.resumeFrom } : {}),
    ...(options.interactiveToolCallResult ? { interactive: true } : {}),
  });
  const say = (text: string) => void process.stderr.write(`${terminalSafe(text)}\n`);
  const cwd = process.cwd();
  const loaded = loadConfig({ cwd, ...(options.config ? { configPath: options.config } : {}) });
  for (const warning of loaded.warnings) say(`warning: ${warning}`);
  const workspace = remoteWorkspace({
    cwd,
    ...(options.workspace !== undefined ? { workspace: options.workspace } : {}),
    configPath: loaded.path,
    configExplicit: options.config !== undefined,
    envPath: loaded.file.envPath ?? DEFAULTS.envPath,
    perstackDir: perstackStorageDir(cwd, process.env),
    ...(options.copyLimit !== undefined ? { maxBytes: options.copyLimit } : {}),
  });
  const client = new ServerClient(target);
  // This submission's Idempotency-Key: a Ctrl-C before the server's answer cancels by it whatever the server took.
  const submissionKey = randomBytes(16).toString("hex");
  const interrupts = remoteInterrupts(client, submissionKey);
  try {
    let jobId: string;
    let snapshot: WorkspaceSnapshot;
    let after: string | undefined;
    let submitted: Submitted;
    if (wanted.kind === "new") {
      const packed = await packUpload(workspace);
      try {
        submitted = await client.submitRun({ config: readFileSync(loaded.path, "utf8"), expert: expertKey, query: wanted.query, ...fields }, packed.file, interrupts.submitting, submissionKey);
      } finally {
        await packed.dispose();
      }
      jobId = submitted.jobId;
      snapshot = packed.snapshot;
    } else {
      jobId = wanted.jobId!;
      const view = await existingJob(client, jobId);
      if (GOING_STATUSES.has(view.status)) throw new CannotContinueError(`job ${jobId} is ${view.status} on ${client.base}; continue it once it has ended (perstack log --server ${client.base} --job ${jobId})`);
      if (view.expert !== undefined && view.expert !== expertKey) {
        throw new CannotContinueError(`job ${jobId} on ${client.base} belongs to expert ${view.expert}; continue it with perstack run ${view.expert} --continue-job ${jobId} --server ${client.base}`);
      }
      // The baseline is the server's workspace as the last invocation left it, taken before this one can change it.
      const local = await localSnapshot(workspace);
      snapshot = await serverBaseline(await client.downloadWorkspace(jobId, interrupts.submitting), workspace, local);
      after = await cursorAtEnd(client, jobId, interrupts.submitting);
      submitted = await client.continueRun(jobId, continueBody!, interrupts.submitting, submissionKey);
    }
    interrupts.started(jobId);
    if (!options.json) say(`job ${jobId} ${continuing ? "continues" : "submitted"} on ${client.base}: ${submitted.status}${submitted.position > 1 ? ` (position ${submitted.position})` : ""}`);

    const followed = await followJob(client, jobId, after, options, interrupts.hurry);
    const view = await client.getRun(jobId);
    const interrupted = interrupts.cancelled;
    if (view.status === "stoppedByInteractiveTool" && followed.lastRootCheckpoint) {
      say(formatWaiting(followed.lastRootCheckpoint, view.expert ?? expertKey, jobId, followed.askers, client.base));
    }
    let copyError: string | undefined;
    if (interrupts.hurry.aborted) {
      say(`perstack: the run's changes were not copied back (interrupted again); they stay on the server: ${client.base}/v1/runs/${jobId}/diff shows them, /workspace has them`);
    } else if (view.startedAt !== undefined) {
      copyError = await applyChanges(client, jobId, workspace, snapshot, followed, options, interrupts.hurry);
    }
    // Why a run ended as it did when its events cannot say (cancelled before it began: a spent daily budget).
    if (!options.json || view.reason !== undefined) say(`job ${jobId}: ${view.status}${view.reason !== undefined ? ` (${view.reason})` : ""} · ${client.base}`);
    if (interrupted || interrupts.hurry.aborted) return EXIT.interrupted;
    if (copyError !== undefined) return EXIT.failed;
    return exitCodeOf(view.status);
  } catch (error) {
    // Ctrl-C: the submission was abandoned, or the job cancelled; what failed after it is its consequence.
    if (interrupts.cancelled || interrupts.hurry.aborted) return EXIT.interrupted;
    throw error;
  } finally {
    // A cancellation asked for must reach the server before the process ends.
    await interrupts.settled();
    interrupts.dispose();
  }
}

/** The job on the server; a missing one is the caller's mistake, named as a local one would be. */
async function existingJob(client: ServerClient, jobId: string): Promise<RunView> {
  try {
    return await client.getRun(jobId);
  } catch (error) {
    if (error instanceof ServerRefusedError && error.status === 404) throw new JobNotFoundError(`job ${jobId} not found on ${client.base}; list its jobs with perstack jobs --server ${client.base}`);
    throw error;
  }
}

interface Followed {
  /** The run this invocation started: the one with the host's events (its first), or a startRun delegated by none. */
  rootRunId: string | undefined;
  /** The last checkpoint of that run (where it stopped). */
  lastRootCheckpoint: CheckpointRef | undefined;
  askers: CheckpointRef[];
  print(event: PerstackEvent, expanded: () => unknown): void;
}

/** Prints the job's events from `after` on until the run is over (or `hurry` aborts). */
async function followJob(client: ServerClient, jobId: string, after: string | undefined, options: RunOptions, hurry: AbortSignal): Promise<Followed> {
  const warn = (text: string) => void process.stderr.write(`perstack: warning: ${terminalSafe(text)}\n`);
  let rootRunId: string | undefined;
  let lastRootCheckpoint: CheckpointRef | undefined;
  const printer = runEventPrinter({ ...(options.json ? { json: true } : {}), isRoot: (runId) => runId === rootRunId });
  const messages = options.json ? new RemoteCheckpointMessages(client, jobId) : undefined;
  const stream = followRunEvents(client, jobId, {
    ...(after !== undefined ? { after } : {}),
    signal: hurry,
    stillGoing: async () => GOING_STATUSES.has((await client.getRun(jobId)).status),
    onReconnect: (attempt, reason) => warn(`the event stream of job ${jobId} dropped (${reason}); reconnecting (attempt ${attempt})`),
  });
  for await (const message of stream) {
    const checked = checkRemoteEvent(message.data, jobId);
    if (!checked.ok) {
      warn(`ignored an event from ${client.base}: ${checked.reason}`);
      continue;
    }
    const { event, record } = checked;
    if (rootRunId === undefined && startsRoot(event)) rootRunId = event.runId;
    if (event.runId === rootRunId && "checkpoint" in event) lastRootCheckpoint = event.checkpoint;
    let shaped: unknown = record;
    if (messages) {
      try {
        shaped = await messages.expand(record);
      } catch (error) {
        warn(`event ${event.id} (${event.type}) is printed with its messages by reference: ${(error as Error).message}`);
      }
    }
    printer.print(event, () => shaped);
  }
  return { rootRunId, lastRootCheckpoint, askers: printer.askers, print: (event, expanded) => printer.print(event, expanded) };
}

/** Whether an event belongs to the run the invocation started: the host's events, and a startRun no run delegated. */
function startsRoot(event: PerstackEvent): boolean {
  if (HOST_ONLY_EVENT_TYPES.has(event.type) || event.type === "initializeRuntime") return true;
  return event.type === "startRun" && event.initialCheckpoint.delegatedBy === undefined;
}

/**
 * Downloads the run's workspace and applies its changes here, printing what was not applied as the run's
 * sandboxWarning events (as a local run records them). Returns why nothing was applied, if it was not.
 */
async function applyChanges(client: ServerClient, jobId: string, workspace: RemoteWorkspace, snapshot: WorkspaceSnapshot, followed: Followed, options: RunOptions, hurry: AbortSignal): Promise<string | undefined> {
  const say = (text: string) => void process.stderr.write(`${terminalSafe(text)}\n`);
  const keepDir = join(perstackStorageDir(process.cwd(), process.env), "remote", jobId, newId());
  const warning = (code: Extract<RuntimeEvent, { type: "sandboxWarning" }>["code"], message: string, path?: string) => {
    const event: RuntimeEvent = { type: "sandboxWarning", code, message, ...(path !== undefined ? { path } : {}), id: newId(), timestamp: Date.now(), jobId, runId: followed.rootRunId ?? jobId };
    followed.print(event, () => event);
  };
  try {
    const result = await applyServerWorkspace(workspace, snapshot, await client.downloadWorkspace(jobId, hurry), keepDir);
    for (const notice of copyBackNotices(result, workspace.protected.files, process.cwd())) warning(notice.code, notice.message, notice.path);
    if (!options.json) say(`workspace: copied back ${result.created.length} created, ${result.modified.length} modified, ${result.deleted.length} deleted`);
    return undefined;
  } catch (error) {
    if (!(error instanceof PerstackError)) throw error;
    warning("workspace-change-rejected", `the agent's changes were not copied back, the workspace is as it was before the run: ${error.message}`);
    say(`perstack: the agent's changes were not copied back (your workspace is as before the run): ${error.message}`);
    return error.message;
  }
}

interface RemoteInterrupts {
  /** Aborted by a Ctrl-C before the server has the job: the submission (upload) is abandoned. */
  readonly submitting: AbortSignal;
  /** Aborted by a second Ctrl-C, or when the run does not stop in time: stop waiting, skip the workspace. */
  readonly hurry: AbortSignal;
  /** Whether a Ctrl-C asked the server to cancel the job. */
  readonly cancelled: boolean;
  /** The server has the job now: a Ctrl-C cancels it there. */
  started(jobId: string): void;
  /** Resolves once a cancellation asked for has been answered (or has failed, or taken too long). */
  settled(): Promise<void>;
  dispose(): void;
}

function remoteInterrupts(client: ServerClient, submissionKey: string): RemoteInterrupts {
  const submitting = new AbortController();
  const hurry = new AbortController();
  let jobId: string | undefined;
  let signals = 0;
  let cancelled = false;
  let waitTimer: NodeJS.Timeout | undefined;
  let cancelling: Promise<void> = Promise.resolve();
  const say = (text: string) => void process.stderr.write(`${terminalSafe(text)}\n`);
  const cancel = () => {
    if (jobId === undefined || cancelled) return;
    cancelled = true;
    const id = jobId;
    cancelling = client.cancelRun(id).then(
      (status) => say(`job ${id}: ${status} on ${client.base}`),
      (error: unknown) => say(`perstack: could not cancel job ${id} on ${client.base}: ${(error as Error).message}`),
    );
    waitTimer = setTimeout(() => {
      say(`perstack: job ${id} did not stop within ${CANCEL_WAIT_MS / 1000} s; no longer waiting for it (perstack jobs --server ${client.base})`);
      hurry.abort();
    }, CANCEL_WAIT_MS);
    waitTimer.unref();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      if (jobId === undefined) {
        say(`\n${signal}: stopping the submission to ${client.base}…`);
        submitting.abort();
        // The server may have taken it all the same (the upload done, the answer on its way): cancelled by its key,
        // the run it made stops, and a submission still being taken, or arriving later, is refused.
        cancelled = true;
        cancelling = client.cancelSubmission(submissionKey).then(
          (result) => say(result.jobId !== undefined ? `job ${result.jobId}: ${result.status} on ${client.base}` : `the submission was cancelled on ${client.base}; nothing of it runs`),
          (error: unknown) => say(`perstack: could not cancel the submission on ${client.base}: ${(error as Error).message}; see perstack jobs --server ${client.base}`),
        );
        return;
      }
      say(`\n${signal}: cancelling job ${jobId} on ${client.base}… (again to stop waiting for it and skip copying the workspace back)`);
      cancel();
    } else if (signals === 2) {
      say(`${signal}: no longer waiting${jobId !== undefined ? `; job ${jobId} may still be stopping on ${client.base}` : ""} (again to quit)`);
      hurry.abort();
      submitting.abort();
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    submitting: submitting.signal,
    hurry: hurry.signal,
    get cancelled() {
      return cancelled || submitting.signal.aborted;
    },
    started(id: string) {
      jobId = id;
      // A Ctrl-C while the submission was on its way: the server took it all the same, so it is cancelled now.
      if (signals > 0) cancel();
    },
    async settled() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([cancelling, new Promise<void>((resolve) => (timer = setTimeout(resolve, SETTLE_MS)))]);
      clearTimeout(timer);
    },
    dispose() {
      clearTimeout(waitTimer);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

// Takes over a run whose perstack process died (kill -9, a crash, an OOM kill) while its agent kept working. Such a
// job still says `running`, and its lock names a process that is gone (job-lock.ts). The engine kept everything the
// agent printed in the container's log: it is read again from the start through a parser made as the first one was
// (collector-record.ts), and what the job's files already hold is recognised and not written twice
// (storage/recorded-run.ts). The run then ends as the first process would have ended it: the agent's real outcome,
// job.json finished, the sandbox removed.
//
// `perstack attach` follows an agent that is still running; `run`, `log` and `jobs` take over only runs whose agent
// has exited (or ran past its --max-duration), and name the others.
import { createReadStream, createWriteStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type Docker from "dockerode";
import { RunCollector, type RunOutcome } from "../collector/run-collector.js";
import { isGatewayControlLine } from "../collector/gateway-log.js";
import { emptyUsage, type ExpandedEvent, type PerstackEvent } from "../model/perstack.js";
import { SHELL_CLAIM_ROLE, SHELL_LABEL } from "../plan/warm-shell.js";
import { JOB_LABEL, MANAGED_LABEL, RUN_LABEL } from "../sandbox/labels.js";
import { removeLeftovers } from "../sandbox/leftovers.js";
import { readWorkspace } from "../sandbox/workspace-volume.js";
import { jobsDir, readJob } from "../storage/job-reader.js";
import { JobStore } from "../storage/job-store.js";
import { readRecordedRun } from "../storage/recorded-run.js";
import { LineSplitter } from "../stream/line-splitter.js";
import { readCollectorRecord, parserFor, type CollectorRecord } from "./collector-record.js";
import { diskFullMessage } from "./disk-full.js";
import { JobInUseError, JobLock } from "./job-lock.js";
import type { OrphanedRun } from "./orphaned-runs.js";
import { newId } from "./prepare-run.js";
import { finishJob, meteredFor } from "./run-job.js";

export interface RecoverOptions {
  /** Follow an agent that is still running until it exits (`attach`). Otherwise such a run is left to it. */
  follow: boolean;
  /** Events recorded now (not those recorded before the process died). */
  onEvent?(event: PerstackEvent, expanded?: () => ExpandedEvent): void;
  /** Events are wanted in Perstack's shape: `expanded` is given (RunJobHooks.expandEvents). */
  expandEvents?: boolean;
  /** Stops following and leaves the agent running, its job still open to another take-over (Ctrl-C in attach). */
  detach?: AbortSignal;
  now?: () => number;
}

export type Recovery =
  /** The agent still runs and was not followed. */
  | { state: "running"; jobId: string; runId: string }
  /** Another process took the job meanwhile (it holds the lock, or has recorded it). */
  | { state: "taken"; jobId: string }
  /** Following stopped on request; the agent still runs. */
  | { state: "detached"; jobId: string; runId: string }
  | { state: "recorded"; jobId: string; runId: string; outcome: RunOutcome; jobDir: string; newEvents: number };

/** The names a taken-over run's stop gives when nothing of the agent's is left to read. */
const SANDBOX_GONE = "SandboxGone";

export async function recoverRun(docker: Docker, perstackDir: string, orphan: OrphanedRun, options: RecoverOptions): Promise<Recovery> {
  const jobDir = join(jobsDir(perstackDir), orphan.jobId);
  let lock: JobLock;
  try {
    lock = JobLock.acquire(jobDir, orphan.jobId, orphan.runId !== undefined ? { runId: orphan.runId } : {});
  } catch (error) {
    if (error instanceof JobInUseError) return { state: "taken", jobId: orphan.jobId };
    throw error;
  }
  let release = true;
  try {
    const job = readJob(perstackDir, orphan.jobId);
    if (job.status !== "running") return { state: "taken", jobId: orphan.jobId };
    const store = new JobStore(perstackDir, orphan.jobId);
    const runId = orphan.runId;
    const record = runId !== undefined ? readCollectorRecord(store.runDir(runId)) : "its lock names no run";
    const containers = await runContainers(docker, orphan.jobId, runId);
    const agentInfo = containers.find((c) => c.Labels["perstack.role"] === "agent");
    const now = options.now ?? Date.now;
    let pastDeadline = false;
    if (agentInfo?.State === "running" && typeof record !== "string" && now() > record.startedAt + record.maxDurationMs) pastDeadline = true;
    if (agentInfo?.State === "running" && !options.follow && !pastDeadline) return { state: "running", jobId: orphan.jobId, runId: runId! };
    if (runId === undefined || typeof record === "string") {
      // Nothing to read the output with: the job is closed as failed, and its sandbox removed.
      await finishJob(store, job, { status: "stoppedByError", usage: emptyUsage(), steps: 0 }, job.metered);
      await removeRunContainers(docker, orphan.jobId, runId);
      return { state: "recorded", jobId: orphan.jobId, runId: runId ?? "", outcome: { status: "stoppedByError", usage: emptyUsage(), steps: 0 }, jobDir, newEvents: 0 };
    }
    const taken = await takeOver(docker, store, job, runId, record, agentInfo && docker.getContainer(agentInfo.Id), containers, orphan, options, pastDeadline);
    if (taken === "detached") {
      // The lock stays free for the next take-over; the job still says running, which it is.
      return { state: "detached", jobId: orphan.jobId, runId };
    }
    await removeRunContainers(docker, orphan.jobId, runId);
    return { state: "recorded", jobId: orphan.jobId, runId, outcome: taken.outcome, jobDir, newEvents: taken.newEvents };
  } catch (error) {
    // A job that cannot be recorded now keeps its stale lock: the next command tries again.
    release = false;
    throw error;
  } finally {
    if (release) lock.release();
  }
}

async function takeOver(
  docker: Docker,
  store: JobStore,
  job: ReturnType<typeof readJob>,
  runId: string,
  record: CollectorRecord,
  agent: Docker.Container | undefined,
  containers: Docker.ContainerInfo[],
  orphan: OrphanedRun,
  options: RecoverOptions,
  pastDeadline: boolean,
): Promise<{ outcome: RunOutcome; newEvents: number } | "detached"> {
  const runDir = store.runDir(runId);
  const files = store.openRun(runId, { resumed: readRecordedRun(runDir) });
  const kill = () => void agent?.kill({ signal: "SIGKILL" }).catch(() => undefined);
  let newEvents = 0;
  const collector = new RunCollector({
    jobId: store.jobId,
    runId,
    store,
    files,
    childRunSetting: childRunSettingOf(runDir),
    parser: parserFor(record, store.jobId, runId),
    newId,
    now: Date.now,
    onEvent: (event, expanded) => {
      newEvents += 1;
      options.onEvent?.(event, expanded);
    },
    ...(options.expandEvents ? { expandEvents: true } : {}),
    experts: new Set(record.experts),
    maxOutputBytes: record.maxOutputBytes,
    onOutputLimit: kill,
    onBudgetExceeded: kill,
    resumed: { recordedRun: (id) => readRecordedRun(store.runDir(id)) },
  });
  files.onFailure(kill);
  const warn = (message: string) => collector.warn("run-taken-over", message);
  let timedOut = pastDeadline;
  let exitCode: number | undefined;
  if (agent) {
    if (pastDeadline) await agent.kill({ signal: "SIGKILL" }).catch(() => undefined);
    const remaining = record.startedAt + record.maxDurationMs - Date.now();
    const deadline = setTimeout(() => {
      timedOut = true;
      kill();
    }, Math.max(0, remaining));
    try {
      const ended = await readOutput(docker, agent, collector.stdout, collector.stderr, options.detach);
      if (!ended) {
        await collector.closeWithoutEnding();
        await files.close();
        return "detached";
      }
    } finally {
      clearTimeout(deadline);
    }
    exitCode = ((await agent.inspect()) as { State: { ExitCode: number } }).State.ExitCode;
    warn(`perstack process ${orphan.pid} stopped while the agent ran; another took the run over and collected the rest of the agent's output from its container's log`);
    await readSidecars(docker, containers, collector);
    if (record.workspaceMode === "copy") await keepWorkspace(agent, runDir, record.maxOutputBytes, warn);
  } else {
    // What was collected is all there is: read again only to know where the run stood.
    await replayFile(join(runDir, "raw.log"), collector.stdout);
    await replayFile(join(runDir, "stderr.log"), collector.stderr);
  }
  const outcome = timedOut
    ? await collector.fail({ name: "DeadlineExceeded", message: `the agent ran longer than --max-duration (${Math.round(record.maxDurationMs / 1000)} s) and was stopped`, isRetryable: false })
    : collector.budgetExceeded
      ? await collector.fail({ name: "BudgetExceeded", message: "the run spent its budget; the provider gateway refused further model calls and the run was stopped", isRetryable: false })
      : collector.outputLimitExceeded
        ? await collector.fail({ name: "OutputLimitExceeded", message: `the agent's output passed ${record.maxOutputBytes} bytes (--max-output) and the run was stopped; what was collected is kept`, isRetryable: false })
        : files.failure
          ? await collector.fail({ name: "DiskFull", message: diskFullMessage(store.jobDir, files.failure), isRetryable: false })
          : exitCode === undefined
            ? await collector.fail({
                name: SANDBOX_GONE,
                message: `perstack process ${orphan.pid} stopped during the run and the run's containers were gone when another took it over; what was collected is kept`,
                isRetryable: true,
              })
            : await collector.finish(exitCode);
  const unpriced = new Set<string>();
  await finishJob(store, job, outcome, meteredFor(record, job.metered, collector, unpriced));
  await files.close();
  return { outcome, newEvents };
}

/**
 * Streams the agent's whole log (stdout and stderr apart) into the collector, following it until the container
 * stops. False when `detach` stopped it first.
 */
async function readOutput(docker: Docker, agent: Docker.Container, stdout: Writable, stderr: Writable, detach: AbortSignal | undefined): Promise<boolean> {
  const logs = (await agent.logs({ follow: true, stdout: true, stderr: true })) as NodeJS.ReadableStream & { destroy(): void };
  let detached = false;
  const onDetach = () => {
    detached = true;
    logs.destroy();
  };
  detach?.addEventListener("abort", onDetach, { once: true });
  try {
    await new Promise<void>((resolve) => {
      // The demuxer writes into the collector's streams, which hold the log back when the disk is slow.
      docker.modem.demuxStream(logs, stdout, stderr);
      logs.on("end", () => resolve());
      logs.on("close", () => resolve());
      logs.on("error", () => resolve());
    });
  } finally {
    detach?.removeEventListener("abort", onDetach);
  }
  // Chunks written into the collector's streams are handled in order; one more turn lets the last ones through.
  await new Promise<void>((resolve) => stdout.write(Buffer.alloc(0), () => stderr.write(Buffer.alloc(0), () => resolve())));
  return !detached;
}

/** The proxy's decisions and the gateway's metered calls: their logs, read whole once they have stopped. */
async function readSidecars(docker: Docker, containers: Docker.ContainerInfo[], collector: RunCollector): Promise<void> {
  for (const role of ["proxy", "gateway"] as const) {
    const info = containers.find((c) => c.Labels["perstack.role"] === role);
    if (!info) continue;
    const container = docker.getContainer(info.Id);
    // Squid writes each decision at once, and the proxy's entrypoint relays its log to stdout every 50 ms: a moment
    // after the agent's exit every line is in the container's log, and stopping it loses none.
    await new Promise((resolve) => setTimeout(resolve, 250));
    await container.kill({ signal: "SIGKILL" }).catch(() => undefined);
    const out = new PassThrough();
    const splitter = new LineSplitter(
      (line) => (role === "proxy" ? collector.proxyLine(line) : isGatewayControlLine(line) ? undefined : collector.gatewayLine(line)),
      () => {},
      65_536,
    );
    out.on("data", (chunk: Buffer) => splitter.push(chunk));
    const logs = (await container.logs({ follow: true, stdout: true, stderr: false })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve) => {
      docker.modem.demuxStream(logs, out, new PassThrough().resume());
      logs.on("end", () => resolve());
      logs.on("close", () => resolve());
      logs.on("error", () => resolve());
    });
    splitter.end();
  }
}

/**
 * Copy mode: the agent's work is in the run's volume, and what it would be copied back over (the workspace as it was
 * when the run began) died with the process. Nothing is applied; the agent's /workspace is kept as a tar file.
 */
async function keepWorkspace(agent: Docker.Container, runDir: string, maxBytes: number, warn: (message: string) => void): Promise<void> {
  const path = join(runDir, "workspace.tar");
  let bytes = 0;
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback(bytes > maxBytes ? new Error(`it is larger than ${maxBytes} bytes`) : null, chunk);
    },
  });
  try {
    await pipeline(await readWorkspace(agent), bounded, createWriteStream(path, { mode: 0o600 }));
    warn(`the agent's changes were not copied back (the workspace as the run found it was lost with the process); its /workspace is kept in ${path}`);
  } catch (error) {
    warn(`the agent's changes were not copied back, and its /workspace could not be kept: ${(error as Error).message}`);
  }
}

async function replayFile(path: string, into: Writable): Promise<void> {
  if (!existsSync(path)) return;
  await pipeline(createReadStream(path), into, { end: false });
}

/** The run's containers (agent, proxy, gateway), found by the labels its process gave them. */
/** The run's containers: those with its labels and, when it ran on a claimed warm shell, that shell's sidecars. */
async function runContainers(docker: Docker, jobId: string, runId: string | undefined): Promise<Docker.ContainerInfo[]> {
  if (runId === undefined) return [];
  const own = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`, `${JOB_LABEL}=${jobId}`, `${RUN_LABEL}=${runId}`] } });
  const shells = own.filter((c) => c.Labels["perstack.role"] === SHELL_CLAIM_ROLE).map((c) => c.Labels[SHELL_LABEL]);
  if (shells.length === 0) return own;
  const parts = await docker.listContainers({ all: true, filters: { label: shells.map((id) => `${SHELL_LABEL}=${id}`) } });
  return [...own, ...parts.filter((c) => !own.some((o) => o.Id === c.Id))];
}

async function removeRunContainers(docker: Docker, jobId: string, runId: string | undefined): Promise<void> {
  if (runId === undefined) return;
  await removeLeftovers(docker, (labels) => labels[JOB_LABEL] === jobId && labels[RUN_LABEL] === runId);
}

/** What a delegated run's run-setting.json shares with its root run, from the root run's. */
function childRunSettingOf(runDir: string): Record<string, unknown> {
  try {
    const setting = JSON.parse(readFileSync(join(runDir, "run-setting.json"), "utf8")) as Record<string, unknown>;
    return { model: setting.model, provider: setting.provider, runtime: setting.runtime };
  } catch {
    return {};
  }
}


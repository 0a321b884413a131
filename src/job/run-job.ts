// Runs a prepared plan: job.json and run-setting.json first, then the sandbox with the collector attached, then
// the final job.json. Whatever happens, what was collected stays on disk and the sandbox is removed.
import { join } from "node:path";
import type Docker from "dockerode";
import { RunCollector, type BudgetSpent, type RunOutcome } from "../collector/run-collector.js";
import { costOf, loadPriceTable, priceTableInfo } from "../gateway/pricing.js";
import { DiskFullError, PerstackError } from "../errors.js";
import { addMeteredUsage, addUsage, emptyMeteredUsage, emptyUsage, type ExpandedEvent, type Job, type JobMetered, type PerstackEvent } from "../model/perstack.js";
import { explainDockerError, isDockerFailure } from "../sandbox/docker-errors.js";
import { runSandbox, type SandboxResult } from "../sandbox/run-sandbox.js";
import type { SandboxResources } from "../sandbox/sandbox-resources.js";
import { jobsDir, readJob } from "../storage/job-reader.js";
import { JobStore, writeJsonAtomic } from "../storage/job-store.js";
import { JOBS_DIR_LABEL } from "../sandbox/labels.js";
import { COLLECTOR_FILE, collectorRecordOf, parserFor, type CollectorRecord } from "./collector-record.js";
import { diskFullMessage, isDiskFull } from "./disk-full.js";
import { JobInUseError, JobLock } from "./job-lock.js";
import { newId, type PreparedRun } from "./prepare-run.js";
import { rejectedDir, WorkspaceSession, type WorkspaceOutcome } from "./workspace-session.js";

export interface RunJobHooks {
  /**
   * Each event as recorded (checkpoints by reference); with expandEvents, `expanded` gives it in Perstack's shape,
   * messages in place.
   */
  onEvent(event: PerstackEvent, expanded?: () => ExpandedEvent): void;
  /** Events are wanted in Perstack's shape (`--json`): the runs' conversations stay in memory (run-collector.ts). */
  expandEvents?: boolean;
  /** First interrupt: stop the agent, copy its work back (copy mode), remove everything. */
  signal: AbortSignal;
  /** Second interrupt: skip the copy-back and remove everything at once. */
  hurry?: AbortSignal;
  /**
   * Shared with the caller, which can then name what is left if removal cannot finish. When given, the sandbox's
   * removal may still be under way when runJob returns: the caller awaits `resources.removeAll()` before it exits.
   */
  resources?: SandboxResources;
  /** With `resources`: the caller removes the sandbox once the agent has exited (run-sandbox.ts). */
  leaveRemovalToCaller?: boolean;
  /** Every run slot on the engine is taken: this run waits for one (called once). */
  onWaitingForSlot?(running: number, limit: number): void;
}

/** Copy mode: files and directories the workspace (and the agent's copy of it) may hold. */
const MAX_COPY_ENTRIES = 500_000;

export interface JobResult {
  jobId: string;
  runId: string;
  jobDir: string;
  outcome: RunOutcome;
  interrupted: boolean;
  imagesBuilt: string[];
  workspace: WorkspaceOutcome;
  /** Models the gateway metered that the price table has no price for: job.json's metered.costUsd is null. */
  unpricedModels: string[];
}

export async function runJob(docker: Docker, prepared: PreparedRun, hooks: RunJobHooks): Promise<JobResult> {
  const lock = lockFor(prepared);
  try {
    return await runLockedJob(docker, prepared, hooks);
  } finally {
    // A job that could not be recorded (a full disk) keeps its lock: once this process is gone, the next command
    // finds it orphaned and records it (recover-run.ts) instead of leaving it `running`.
    if (!stillRunning(prepared)) lock.release();
  }
}

function stillRunning(prepared: PreparedRun): boolean {
  try {
    return readJob(prepared.perstackDir, prepared.plan.jobId).status === "running";
  } catch {
    return false;
  }
}

/**
 * The job's lock (job-lock.ts). A continued job must still be as it was read: a process that held the lock meanwhile
 * has moved it on, and carrying on from the old state would overwrite what that process recorded.
 */
function lockFor(prepared: PreparedRun): JobLock {
  const { plan, continuation } = prepared;
  const jobDir = join(jobsDir(prepared.perstackDir), plan.jobId);
  let lock: JobLock;
  try {
    lock = JobLock.acquire(jobDir, plan.jobId, { runId: plan.runId });
  } catch (error) {
    throw isDiskFull(error) ? new DiskFullError(diskFullMessage(jobDir, error as NodeJS.ErrnoException)) : error;
  }
  if (continuation && JSON.stringify(readJob(prepared.perstackDir, plan.jobId)) !== JSON.stringify(continuation.job)) {
    lock.release();
    throw new JobInUseError(`job ${plan.jobId} was moved on by another perstack process while this one prepared to continue it; run again to continue from where it is now`);
  }
  return lock;
}

async function runLockedJob(docker: Docker, prepared: PreparedRun, hooks: RunJobHooks): Promise<JobResult> {
  const { plan } = prepared;
  const store = new JobStore(prepared.perstackDir, plan.jobId);
  const files = store.openRun(plan.runId);
  const startedAt = Date.now();
  const previous = prepared.continuation?.job;
  // A continued job keeps its id, coordinator, start time and what earlier invocations used.
  const job: Job = previous
    ? { ...withoutFinish(previous), status: "running", maxSteps: prepared.loaded.file.maxSteps ?? previous.maxSteps ?? 100, runtime: plan.runtime.name }
    : {
        id: plan.jobId,
        status: "running",
        coordinatorExpertKey: plan.expert.key,
        totalSteps: 0,
        maxSteps: prepared.loaded.file.maxSteps ?? 100,
        usage: emptyUsage(),
        startedAt,
        runtime: plan.runtime.name,
      };
  await store.writeJob(job);
  const continuation = prepared.continuation;
  // Before the agent starts: another perstack process can then take the run over if this one dies (recover-run.ts).
  const record = collectorRecordOf(prepared, startedAt);
  await Promise.all([
    writeJsonAtomic(join(files.dir, COLLECTOR_FILE), record),
    files.writeSetting({
      jobId: plan.jobId,
      runId: plan.runId,
      expertKey: plan.expert.key,
      expert: plan.expert,
      query: plan.query,
      model: plan.model,
      provider: plan.provider,
      runtime: plan.runtime,
      workspace: prepared.workspace,
      images: plan.images.map((image) => ({ role: image.role, ref: image.ref, baseImage: image.baseImage })),
      allowlist: plan.proxy.allowlist,
      upstreams: plan.proxy.upstreams,
      env: plan.agent.env.map((entry) => ({ name: entry.name, source: entry.source, reason: entry.reason })),
      limits: plan.agent.limits,
      user: plan.agent.user,
      ...(continuation ? { continuedFrom: { checkpointId: continuation.checkpoint.id, start: continuation.start.kind } } : {}),
      startedAt,
    }),
  ]);
  const parser = parserFor(record, plan.jobId, plan.runId);
  const stop = new AbortController();
  const collector = new RunCollector({
    jobId: plan.jobId,
    runId: plan.runId,
    store,
    files,
    childRunSetting: { model: plan.model, provider: plan.provider, runtime: plan.runtime },
    parser,
    newId,
    now: Date.now,
    onEvent: hooks.onEvent,
    ...(hooks.expandEvents ? { expandEvents: true } : {}),
    experts: new Set(record.experts),
    maxOutputBytes: plan.agent.limits.maxOutputBytes,
    onOutputLimit: () => stop.abort(),
    // The gateway already refuses further model calls; stopping the agent spares it retrying until its deadline.
    onBudgetExceeded: () => stop.abort(),
  });
  // A full disk: nothing more of the run could be kept, so it is stopped (its files stay whole up to there).
  files.onFailure(() => stop.abort());
  const session = new WorkspaceSession({
    plan,
    keepDir: rejectedDir(files.dir),
    owner: prepared.workspaceOwner,
    cwd: process.cwd(),
    limits: { maxBytes: plan.agent.limits.maxCopyBytes, maxEntries: MAX_COPY_ENTRIES },
  });

  let outcome: RunOutcome;
  let interrupted: boolean;
  const unpricedModels = new Set<string>();
  let imagesBuilt: string[] = [];
  let workspace: WorkspaceOutcome | undefined;
  const finishWorkspace = async () => {
    workspace ??= await session.finish();
    for (const notice of workspace.notices) collector.warn(notice.code, notice.message, notice.path);
    if (workspace.copyError) collector.warn("workspace-change-rejected", `the agent's changes were not copied back, the workspace is as it was before the run: ${workspace.copyError}`);
    return workspace;
  };
  try {
    const hooksForWorkspace = await session.prepare();
    // The labels lead a later perstack process from the containers to the job's record (recover-run.ts).
    const labelled = { ...plan, labels: { ...plan.labels, [JOBS_DIR_LABEL]: jobsDir(prepared.perstackDir) } };
    const result: SandboxResult = await runSandbox(docker, labelled, {
      env: prepared.envValues,
      filesDir: join(files.dir, "sandbox"),
      buildProgress: (p) =>
        collector.runtimeEvent({
          type: "dockerBuildProgress",
          stage: "build",
          service: p.image.role,
          message: p.message,
          ...(p.progress !== undefined ? { progress: p.progress } : {}),
        }),
      containerStatus: (service, status) => collector.runtimeEvent({ type: "dockerContainerStatus", service, status }),
      agentStdout: collector.stdout,
      agentStderr: collector.stderr,
      proxyLogLine: (line) => collector.proxyLine(line),
      gatewayEnv: prepared.gatewayEnv,
      gatewayLine: (line) => collector.gatewayLine(line),
      signal: hooks.signal,
      ...(hooks.hurry ? { hurry: hooks.hurry } : {}),
      stop: stop.signal,
      workspace: hooksForWorkspace,
      ...(hooks.resources ? { resources: hooks.resources, leaveRemovalToCaller: hooks.leaveRemovalToCaller === true } : {}),
      sharing: prepared.sharing,
      ...(hooks.onWaitingForSlot ? { waitingForSlot: hooks.onWaitingForSlot } : {}),
    });
    imagesBuilt = result.imagesBuilt;
    interrupted = result.aborted;
    await finishWorkspace();
    const limit = plan.agent.limits.maxDurationMs;
    outcome = interrupted
      ? await collector.fail({ name: "Interrupted", message: "the run was interrupted (SIGINT/SIGTERM)", isRetryable: false })
      : collector.budgetExceeded
        ? await collector.fail({ name: "BudgetExceeded", message: budgetMessage(collector.budgetExceeded), isRetryable: false })
      : collector.outputLimitExceeded
        ? await collector.fail({
            name: "OutputLimitExceeded",
            message: `the agent's output passed ${plan.agent.limits.maxOutputBytes} bytes (--max-output) and the run was stopped; what was collected is kept`,
            isRetryable: false,
          })
        : files.failure
        ? await collector.fail({ name: "DiskFull", message: diskFullMessage(store.jobDir, files.failure), isRetryable: false })
        : result.engineLost
        ? await collector.fail({ name: result.engineLost.name, message: result.engineLost.message, isRetryable: true })
        : result.sidecarStopped
        ? await collector.fail({ name: SIDECAR_STOPPED[result.sidecarStopped].name, message: SIDECAR_STOPPED[result.sidecarStopped].message, isRetryable: true })
        : result.timedOut
        ? await collector.fail({
            name: "DeadlineExceeded",
            message: `the agent ran longer than --max-duration (${limit >= 60_000 ? `${Math.round(limit / 60_000)} min` : `${limit / 1000} s`}) and was stopped`,
            isRetryable: false,
          })
        : await collector.finish(result.exitCode);
  } catch (caught) {
    // runSandbox says what failed; a Docker failure from elsewhere gets the same treatment before it is recorded.
    const error = isDiskFull(caught)
      ? new DiskFullError(diskFullMessage(store.jobDir, caught as NodeJS.ErrnoException))
      : isDockerFailure(caught)
        ? explainDockerError(caught, "running the sandbox")
        : caught;
    interrupted = hooks.signal.aborted;
    await finishWorkspace().catch(() => undefined);
    const name = error instanceof PerstackError ? error.name : "SandboxError";
    outcome = await collector.fail({
      name: interrupted ? "Interrupted" : name,
      message: interrupted ? "the run was interrupted (SIGINT/SIGTERM)" : (error as Error).message,
      isRetryable: false,
    });
    if (!interrupted) {
      await finishJob(store, job, outcome, meteredFor(record, job.metered, collector, unpricedModels));
      await files.close();
      throw error;
    }
  }
  await finishJob(store, job, outcome, meteredFor(record, job.metered, collector, unpricedModels)).catch((error: unknown) => {
    throw isDiskFull(error) ? new DiskFullError(diskFullMessage(store.jobDir, error as NodeJS.ErrnoException)) : error;
  });
  await files.close();
  if (files.failure) throw new DiskFullError(diskFullMessage(store.jobDir, files.failure));
  return { jobId: plan.jobId, runId: plan.runId, jobDir: store.jobDir, outcome, interrupted, imagesBuilt, workspace: workspace ?? { mode: plan.agent.workspace.mode, notices: [] }, unpricedModels: [...unpricedModels] };
}

/** What a run says when a sidecar stopped under it (run-sandbox.ts stopped the agent at once). */
const SIDECAR_STOPPED = {
  proxy: {
    name: "ProxyStopped",
    message: "the sandbox's proxy (squid) stopped during the run, leaving the agent no way out, so the run was stopped; what was collected is kept. Check the engine's memory and `docker events`, then continue the job",
  },
  gateway: {
    name: "GatewayStopped",
    message: "the provider gateway stopped during the run, leaving the agent no model to call, so the run was stopped; what was collected is kept. Check the engine's memory and `docker events`, then continue the job",
  },
} as const;

function withoutFinish(job: Job): Job {
  const { finishedAt: _finishedAt, ...rest } = job;
  return rest;
}

function budgetMessage(spent: BudgetSpent): string {
  return spent.budget === "maxCostUsd"
    ? `the run spent its --max-cost budget ($${spent.spent.toFixed(4)} of $${spent.limit}); the provider gateway refused further model calls and the run was stopped`
    : `the run spent its --max-tokens budget (${spent.spent} of ${spent.limit} tokens); the provider gateway refused further model calls and the run was stopped`;
}

/**
 * job.json's `metered`: the gateway's calls of this invocation added to what earlier ones of the job counted, priced
 * with the table the gateway used. Undefined when the run's provider does not go through the gateway.
 */
export function meteredFor(record: CollectorRecord, before: JobMetered | undefined, collector: RunCollector, unpriced: Set<string>): JobMetered | undefined {
  if (!record.gateway) return before;
  const table = loadPriceTable(record.pricingPath);
  const { requests, calls } = collector.metered;
  let usage = before?.usage ?? emptyMeteredUsage();
  let cost: number | null = before ? before.costUsd : 0;
  for (const call of calls) {
    usage = addMeteredUsage(usage, call.usage);
    const model = call.model ?? record.model;
    const price = costOf(model, call.usage, table);
    if (price === null) unpriced.add(model);
    cost = cost === null || price === null ? null : cost + price;
  }
  return { requests: (before?.requests ?? 0) + requests, usage, costUsd: cost, pricing: priceTableInfo(table) };
}

export async function finishJob(store: JobStore, job: Job, outcome: RunOutcome, metered: JobMetered | undefined): Promise<void> {
  const latestCheckpointId = outcome.lastCheckpoint?.id ?? job.latestCheckpointId;
  await store.writeJob({
    ...job,
    ...(metered ? { metered } : {}),
    status: outcome.status,
    totalSteps: job.totalSteps + outcome.steps,
    usage: addUsage(job.usage, outcome.usage),
    finishedAt: Date.now(),
    ...(latestCheckpointId ? { latestCheckpointId } : {}),
  });
}

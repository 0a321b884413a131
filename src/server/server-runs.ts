// Runs submitted to `perstack serve`, carried out on the CLI's own pipeline: the same prepareRun (plan), runJob
// (sandbox, gateway, collector) and storage, one perstack/jobs per tenant. This module decides what starts when
// (run-queue.ts, fairly) and keeps the server's record of each run in step with the job's on disk.
//
// A tenant's config is untrusted like its agent: the run sees only the tenant's own secrets (never the server's
// environment), records under the tenant's directory, and gets sandboxes of its own.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import type Docker from "dockerode";
import { CONFIG_FILE_NAME } from "../config/load.js";
import { BadInputError, InvalidOptionError, PerstackError } from "../errors.js";
import { findOrphanedRuns } from "../job/orphaned-runs.js";
import type { Continuation } from "../job/continuation.js";
import { loadContinuation } from "../job/load-continuation.js";
import { newId, prepareRun, type PreparedRun, type RunRequest } from "../job/prepare-run.js";
import { recoverRun } from "../job/recover-run.js";
import { runJob } from "../job/run-job.js";
import type { BaseImage, BaseImageRole, ResourceLimits } from "../plan/sandbox-plan.js";
import { readJob } from "../storage/job-reader.js";
import { RunQueue, type QueuedRun } from "./run-queue.js";
import type { SubmissionKeys } from "./submission-keys.js";
import { checkUpstreams } from "./upstream-policy.js";

/** What a tenant submits (POST /v1/runs), once the workspace is on disk. */
export interface Submission {
  config: string;
  expert: string;
  query: string;
  runtime?: string;
  model?: string;
  limits?: { maxDurationMs?: number; maxOutputBytes?: number; memoryBytes?: number };
  budgets?: { maxCostUsd?: number; maxTokens?: number };
}

/** POST /v1/runs/{jobId}/continue: a new query for the job, or the answer to its pending question. */
export interface ContinueRequest {
  query?: string;
  interactiveAnswer?: string;
  /** Resume from this checkpoint of the job instead of the one it stopped at. */
  checkpointId?: string;
}

/** A queue row's request: the job's submission, and for a continuation what to continue with. */
type QueuedRequest = Submission & { continue?: ContinueRequest };

export interface TenantLimits {
  name: string;
  maxConcurrent?: number;
  maxCostPerDay?: number;
  runtimes?: string[];
}

export interface ServerRunsOptions {
  dataDir: string;
  docker: Docker;
  queue: RunQueue;
  /** Submissions named by an Idempotency-Key (submission-keys.ts). */
  keys: SubmissionKeys;
  baseImages: () => Promise<Record<BaseImageRole, BaseImage>>;
  /** Runs going at once, all tenants together (the engine's share for this server). */
  maxConcurrent: number;
  tenant(name: string): TenantLimits | undefined;
  /** The tenant's secrets (provider keys), for its runs' environment only. */
  secrets(name: string): Record<string, string>;
  /** Server settings a run may see (PERSTACK_SUBNET_POOL and the like), never secrets. */
  settings: Record<string, string>;
  /** --allow-private-upstream: host[:port] a tenant's upstream may be on though private, or plain http. */
  allowPrivateUpstream: string[];
  log(line: string): void;
}

/** Settings of the server's environment that runs share with the CLI's; nothing else of it reaches a run. */
export const SHARED_SETTINGS = ["PERSTACK_SUBNET_POOL", "PERSTACK_MAX_CONCURRENT_RUNS", "PERSTACK_BASE_IMAGE_DEBIAN", "PERSTACK_BASE_IMAGE_NODE", "PERSTACK_EXTRA_CA_CERTS", "NODE_EXTRA_CA_CERTS"];

export class ServerRuns {
  /** Invocations going now, by queue seq. */
  private readonly going = new Map<number, AbortController>();
  private ticking = false;

  constructor(private readonly options: ServerRunsOptions) {}

  tenantDir(tenant: string): string {
    return join(this.options.dataDir, "tenants", tenant);
  }

  perstackDir(tenant: string): string {
    return join(this.tenantDir(tenant), "perstack");
  }

  /** The run's inputs: perstack.toml and the uploaded workspace (and the upload itself, for the diff). */
  inputsDir(tenant: string, jobId: string): string {
    return join(this.tenantDir(tenant), "inputs", jobId);
  }

  workspaceDir(tenant: string, jobId: string): string {
    return join(this.inputsDir(tenant, jobId), "workspace");
  }

  originalDir(tenant: string, jobId: string): string {
    return join(this.inputsDir(tenant, jobId), "original");
  }

  /**
   * Checks a submission as a run would (config, expert, runtime, the tenant's secrets) and queues it. Bad input
   * throws the CLI's own error (key path and what to do); nothing is left behind then. `fillWorkspace` puts the
   * uploaded workspace into both directories it is given: the one the run works on, and the one kept as it was.
   */
  /**
   * Queues a new job. With `key` (the client's Idempotency-Key), a submission of a key seen before gets the run that
   * key made instead, and one cancelled by its key is refused, even while it is being taken (submission-keys.ts).
   */
  async submit(tenant: string, submission: Submission, fillWorkspace: (workspace: string, original: string) => Promise<void>, key?: string): Promise<{ run: QueuedRun; position: number }> {
    const known = key === undefined ? undefined : this.keyed(tenant, key);
    if (known) return known;
    const jobId = newId();
    const inputs = this.inputsDir(tenant, jobId);
    // The workspace the run works on, and the upload as it was (what /diff compares against; empty without one).
    mkdirSync(join(inputs, "workspace"), { recursive: true, mode: 0o700 });
    mkdirSync(join(inputs, "original"), { mode: 0o700 });
    try {
      writeFileSync(join(inputs, CONFIG_FILE_NAME), submission.config, { mode: 0o600 });
      await fillWorkspace(this.workspaceDir(tenant, jobId), this.originalDir(tenant, jobId));
      // Planned now so that a bad config is the submitter's 400, not a run that fails later.
      const prepared = prepareRun(this.request(tenant, jobId, submission), await this.options.baseImages());
      this.checkRuntime(tenant, prepared);
      this.checkFiles(tenant, jobId, prepared);
      await checkUpstreams(prepared.plan, { allow: this.options.allowPrivateUpstream });
      // Cancelled by its key while it was being taken: the client is gone, and nothing of it may run.
      if (key !== undefined && this.options.keys.cancelled(tenant, key)) throw new SubmissionCancelledError(key);
    } catch (error) {
      rmSync(inputs, { recursive: true, force: true });
      if (key !== undefined) this.options.keys.release(tenant, key);
      throw error;
    }
    const run = this.options.queue.submit(tenant, jobId, JSON.stringify(submission));
    if (key !== undefined) this.options.keys.made(tenant, key, run.seq);
    setImmediate(() => this.tick());
    return { run, position: this.options.queue.position(run) ?? 0 };
  }

  /** The run a key made before, or undefined when the key is new (and now this submission's); else why not. */
  private keyed(tenant: string, key: string): { run: QueuedRun; position: number } | undefined {
    const known = this.options.keys.begin(tenant, key);
    if (known.state === "new") return undefined;
    if (known.state === "pending") throw new SubmissionPendingError(`a submission with Idempotency-Key ${key} is still being taken; send it again in a moment to get its run`);
    if (known.state === "cancelled") throw new SubmissionCancelledError(key);
    const run = this.options.queue.bySeq(known.seq)!;
    return { run, position: this.options.queue.position(run) ?? 0 };
  }

  /**
   * POST /v1/submissions/{key}/cancel: the run the key made is cancelled like any (cancel); a submission not taken yet,
   * being taken now or arriving later is refused. undefined: no run was made.
   */
  cancelSubmission(tenant: string, key: string): { run: QueuedRun; status: "cancelled" | "stopping" | "ended" } | undefined {
    const { seq } = this.options.keys.cancel(tenant, key);
    if (seq === undefined) return undefined;
    const made = this.options.queue.bySeq(seq)!;
    // The job's latest invocation is the one that is going, whichever submission started the job.
    const run = this.options.queue.get(tenant, made.jobId) ?? made;
    return { run, status: run.seq === made.seq ? this.cancel(run) : "ended" };
  }

  /**
   * Queues a continuation of the tenant's job `run` (its latest invocation, which has ended): checked now as
   * `perstack run --continue-job` would check it, so a job that cannot be continued is the caller's 400.
   */
  continueJob(run: QueuedRun, request: ContinueRequest, key?: string): { run: QueuedRun; position: number } {
    const known = key === undefined ? undefined : this.keyed(run.tenant, key);
    if (known) return known;
    try {
      return this.continueNow(run, request, key);
    } catch (error) {
      if (key !== undefined) this.options.keys.release(run.tenant, key);
      throw error;
    }
  }

  private continueNow(run: QueuedRun, request: ContinueRequest, key: string | undefined): { run: QueuedRun; position: number } {
    if (run.status === "queued" || run.status === "running") throw new JobBusyError(`job ${run.jobId} is ${run.status}; continue it once it has ended`);
    if ((request.query === undefined) === (request.interactiveAnswer === undefined)) throw new InvalidOptionError("give either query (a new query) or interactiveAnswer (the answer to the job's pending question)");
    const first = this.options.queue.first(run.tenant, run.jobId)!;
    const submission = JSON.parse(first.request) as QueuedRequest;
    const queued: QueuedRequest = { ...submission, continue: request };
    this.continuationOf(run.tenant, run.jobId, submission, request);
    const next = this.options.queue.submit(run.tenant, run.jobId, JSON.stringify(queued));
    if (key !== undefined) this.options.keys.made(run.tenant, key, next.seq);
    setImmediate(() => this.tick());
    return { run: next, position: this.options.queue.position(next) ?? 0 };
  }

  private continuationOf(tenant: string, jobId: string, submission: Submission, request: ContinueRequest): Continuation {
    const answer = request.interactiveAnswer;
    return loadContinuation(this.perstackDir(tenant), { jobId, ...(request.checkpointId !== undefined ? { checkpointId: request.checkpointId } : {}) }, {
      expertKey: submission.expert,
      continueJob: jobId,
      ...(request.checkpointId !== undefined ? { resumeFrom: request.checkpointId } : {}),
      ...(answer !== undefined ? { query: answer, interactive: true } : { query: request.query! }),
    });
  }

  /** Stops a run: a queued one never starts, a running one is interrupted (its record says so). */
  cancel(run: QueuedRun): "cancelled" | "stopping" | "ended" {
    if (run.status === "queued" && this.options.queue.cancelQueued(run.seq)) return "cancelled";
    const going = this.going.get(run.seq);
    if (going) {
      going.abort();
      return "stopping";
    }
    return "ended";
  }

  /**
   * At start: runs the previous server process left running are reconciled like `perstack attach` does (the agent
   * may have finished meanwhile, or still run), then queued runs start as slots allow.
   */
  async start(): Promise<void> {
    for (const run of this.options.queue.byStatus("running")) void this.reconcile(run);
    this.tick();
  }

  private async reconcile(run: QueuedRun): Promise<void> {
    const perstackDir = this.perstackDir(run.tenant);
    const jobDir = join(perstackDir, "jobs", run.jobId);
    const controller = new AbortController();
    this.going.set(run.seq, controller);
    try {
      // The process died after it took the run and before the run began (no job.json): nothing of it ran, so it is
      // queued again, its job directory (a lock at most) cleared for it.
      if (!existsSync(join(jobDir, "job.json"))) {
        rmSync(jobDir, { recursive: true, force: true });
        this.options.queue.requeue(run.seq);
        return;
      }
      // A continuation whose job.json is still the earlier invocation's (it ended before this one was taken): same.
      const job = readJob(perstackDir, run.jobId);
      if (job.status !== "running" && (job.finishedAt ?? 0) < (run.startedAt ?? 0)) {
        this.options.queue.requeue(run.seq);
        return;
      }
      const orphan = findOrphanedRuns(perstackDir).find((o) => o.jobId === run.jobId);
      if (orphan) {
        this.options.log(`reconciling job ${run.jobId} of tenant ${run.tenant}: its server process stopped during the run`);
        await recoverRun(this.options.docker, perstackDir, orphan, { follow: true, detach: controller.signal });
      }
      this.options.queue.markFinished(run.seq, this.statusOnDisk(run), this.costOf(run));
    } catch (error) {
      this.options.log(`reconciling job ${run.jobId} failed: ${(error as Error).message}`);
    } finally {
      this.going.delete(run.seq);
      this.tick();
    }
  }

  /** job.json's status, or why there is none (the process stopped before the run began). */
  private statusOnDisk(run: QueuedRun): string {
    try {
      const status = readJob(this.perstackDir(run.tenant), run.jobId).status;
      return status === "running" ? "stoppedByError" : status;
    } catch {
      return "stoppedByError";
    }
  }

  /** Starts queued runs while the server and their tenants have room. */
  tick(): void {
    if (this.ticking) return;
    this.ticking = true;
    try {
      while (this.going.size < this.options.maxConcurrent) {
        // A tenant removed meanwhile gets no more runs started (its limit is 0).
        const next = this.options.queue.next((tenant) => {
          const limits = this.options.tenant(tenant);
          return limits ? (limits.maxConcurrent ?? Number.POSITIVE_INFINITY) : 0;
        });
        if (!next) break;
        // The tenant's daily budget: a run starts with what is left of it as its own --max-cost (the gateway stops
        // it there), and none starts once it is spent.
        const limits = this.options.tenant(next.tenant);
        const remaining = this.options.queue.remainingBudget(next.tenant, limits?.maxCostPerDay);
        if (remaining !== undefined && remaining <= 0) {
          this.options.queue.cancelQueued(next.seq, `tenant ${next.tenant}'s daily budget of $${limits!.maxCostPerDay} is spent; the run was not started`);
          continue;
        }
        const own = (JSON.parse(next.request) as QueuedRequest).budgets?.maxCostUsd;
        const allocated = remaining === undefined ? own : Math.min(remaining, own ?? remaining);
        if (!this.options.queue.markRunning(next.seq, Date.now(), allocated)) continue;
        const controller = new AbortController();
        this.going.set(next.seq, controller);
        void this.execute({ ...next, ...(allocated !== undefined ? { allocatedUsd: allocated } : {}) }, controller.signal).finally(() => {
          this.going.delete(next.seq);
          this.tick();
        });
      }
    } finally {
      this.ticking = false;
    }
  }

  private async execute(run: QueuedRun, signal: AbortSignal): Promise<void> {
    let outcome = "stoppedByError";
    try {
      const queued = JSON.parse(run.request) as QueuedRequest;
      const { continue: continueWith, ...submission } = queued;
      const budgets = run.allocatedUsd === undefined ? submission.budgets : { ...submission.budgets, maxCostUsd: run.allocatedUsd };
      const base = this.request(run.tenant, run.jobId, { ...submission, ...(budgets ? { budgets } : {}) });
      const continuation = continueWith && this.continuationOf(run.tenant, run.jobId, submission, continueWith);
      // A continuation records into the job as it is (its id is the job's, not a new one).
      const { jobId: _new, ...continued } = base;
      const request: RunRequest = continuation ? { ...continued, query: continuation.query, continuation } : base;
      const prepared = prepareRun(request, await this.options.baseImages());
      // Again at start: the names may resolve elsewhere now than at submission.
      await checkUpstreams(prepared.plan, { allow: this.options.allowPrivateUpstream });
      const result = await runJob(this.options.docker, prepared, { signal, onEvent: () => {} });
      outcome = result.outcome.status;
    } catch (error) {
      // The job's record says what failed when it got that far; the server's log says it in any case.
      this.options.log(`job ${run.jobId} of tenant ${run.tenant}: ${error instanceof PerstackError ? error.message : (error as Error).stack ?? String(error)}`);
      outcome = this.statusOnDisk(run);
    } finally {
      this.options.queue.markFinished(run.seq, outcome, this.costOf(run));
    }
  }

  /** What the invocation cost: job.json's metered cost now, less what it was before (earlier invocations). */
  private costOf(run: QueuedRun): { costUsd?: number } {
    try {
      const cost = readJob(this.perstackDir(run.tenant), run.jobId).metered?.costUsd;
      if (typeof cost !== "number") return {};
      const before = this.options.queue.costBefore(run.jobId, run.seq);
      return { costUsd: Math.max(0, cost - before) };
    } catch {
      return {};
    }
  }

  private request(tenant: string, jobId: string, submission: Submission): RunRequest {
    const inputs = this.inputsDir(tenant, jobId);
    const limits: Partial<ResourceLimits> = { ...submission.limits };
    return {
      expertKey: submission.expert,
      query: submission.query,
      cwd: this.tenantDir(tenant),
      configPath: join(inputs, CONFIG_FILE_NAME),
      ...(submission.runtime ? { runtime: submission.runtime } : {}),
      ...(submission.model ? { model: submission.model } : {}),
      workspace: this.workspaceDir(tenant, jobId),
      envNames: [],
      caCertFiles: [],
      limits,
      ...(submission.budgets ? { budgets: submission.budgets } : {}),
      jobId,
      processEnv: this.runEnv(tenant, jobId),
      secrets: "require",
      // The tenant's config is untrusted: its gateway connects to public addresses only (upstream-policy.ts).
      upstreamPolicy: { allow: this.options.allowPrivateUpstream },
    };
  }

  /**
   * A tenant's config names the files its variables come from (envPath) and the Google credentials file: read on the
   * server, they must be the tenant's own, inside the run's inputs; anything else could read the server's files or
   * another tenant's upload into this tenant's sandbox.
   */
  private checkFiles(tenant: string, jobId: string, prepared: PreparedRun): void {
    const inputs = this.inputsDir(tenant, jobId);
    const inside = (path: string) => {
      const rel = relative(inputs, path);
      return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
    };
    const base = dirname(prepared.loaded.path);
    for (const entry of prepared.loaded.file.envPath ?? []) {
      if (!inside(resolve(base, entry))) throw new InvalidOptionError(`envPath "${entry}": a tenant's env files must be inside its upload (workspace/...); set secrets with perstack tenants secret set`);
    }
  }

  /**
   * The environment a tenant's run is planned with: the server's shared settings and the tenant's secrets, nothing
   * else. gcloud's default credentials are looked for in the tenant's own directory (never the operator's home), and
   * GOOGLE_APPLICATION_CREDENTIALS is the key itself (JSON), written for the run, never a path on the server.
   */
  private runEnv(tenant: string, jobId: string): Record<string, string> {
    const secrets = { ...this.options.secrets(tenant) };
    const key = secrets.GOOGLE_APPLICATION_CREDENTIALS;
    if (key !== undefined) {
      delete secrets.GOOGLE_APPLICATION_CREDENTIALS;
      if (key.trimStart().startsWith("{")) {
        const path = join(this.inputsDir(tenant, jobId), "google-credentials.json");
        writeFileSync(path, key, { mode: 0o600 });
        secrets.GOOGLE_APPLICATION_CREDENTIALS = path;
      }
    }
    return { ...this.options.settings, ...secrets, CLOUDSDK_CONFIG: join(this.tenantDir(tenant), "gcloud") };
  }

  private checkRuntime(tenant: string, prepared: PreparedRun): void {
    const allowed = this.options.tenant(tenant)?.runtimes;
    const name = prepared.plan.runtime.name;
    if (allowed && allowed.length > 0 && !allowed.includes(name)) {
      throw new RuntimeNotAllowedError(`runtime "${name}" is not allowed for tenant ${tenant}; allowed: ${allowed.join(", ")}`);
    }
  }
}

export class RuntimeNotAllowedError extends BadInputError {}
/** The job has an invocation queued or going: it cannot be continued yet (409). */
export class JobBusyError extends BadInputError {}

/** A submission whose Idempotency-Key was cancelled (409 cancelled). */
export class SubmissionCancelledError extends BadInputError {
  constructor(key: string) {
    super(`the submission with Idempotency-Key ${key} was cancelled; send a new submission with a new key`);
  }
}

/** A submission whose Idempotency-Key another request is still taking (409 in_progress). */
export class SubmissionPendingError extends BadInputError {}

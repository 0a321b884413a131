// docker stream -> lines -> runtime parser -> normalized events -> events.jsonl and checkpoints. Streams: a line
// is handled as it arrives and writes are queued, so the container is never held up by the disk.
//
// One container may report several runs (the built-in engine runs delegates itself): each event goes to its own
// run's events.jsonl, a delegated run gets its run-setting.json from its startRun, and only the root run (the one
// this invocation started) decides how the job ends.
//
// Events are recorded as the parser made them, with their checkpoints by reference: each costs what it adds to the
// run, however long the run. A step's checkpoint is appended to its run's checkpoints.jsonl, naming lines of the
// run's messages.jsonl (storage/run-history-log.ts); the one a run stops on is a file, whole, cut from the parser's
// MessageLog when its turn in the write queue comes (the logs only grow, so the cut is the same then as now).
import { existsSync } from "node:fs";
import { Writable } from "node:stream";
import { expandEvent, fileCheckpointOf, isWrittenWhole, type MessagesResolver } from "../model/event-messages.js";
import { addUsage, emptyUsage, type CheckpointError, type CheckpointRef, type ExpandedEvent, type PerstackEvent, type RunEvent, type RuntimeEvent, type Usage } from "../model/perstack.js";
import type { MeteredUsage, SandboxWarningCode } from "../model/perstack.js";
import type { StreamParser } from "../runtimes/types.js";
import type { JobStore, RunFiles } from "../storage/job-store.js";
import { EventGuard } from "./event-guard.js";
import { LineSplitter } from "../stream/line-splitter.js";
import { parseProxyLogLine } from "./proxy-log.js";
import { parseGatewayLine } from "./gateway-log.js";
import { idSequence } from "../model/ids.js";
import type { RecordedRun } from "../storage/recorded-run.js";

/** A budget the provider gateway reported spent: it refuses further model calls, and the run is stopped. */
export interface BudgetSpent {
  budget: "maxCostUsd" | "maxTokens";
  limit: number;
  spent: number;
}

type RuntimeEventBody = RuntimeEvent extends infer E ? (E extends RuntimeEvent ? Omit<E, "id" | "timestamp" | "jobId" | "runId"> : never) : never;

export interface RunOutcome {
  status: "completed" | "stoppedByError" | "stoppedByMaxSteps" | "stoppedByInteractiveTool";
  /** Tokens used by this invocation, all runs together (continued runs' earlier usage is not counted again). */
  usage: Usage;
  /** Steps executed by this invocation, all runs together. */
  steps: number;
  text?: string;
  error?: CheckpointError;
  lastCheckpoint?: CheckpointRef;
}

export interface RunCollectorOptions {
  jobId: string;
  /** The root run: the one this invocation starts. Its files also get the container's raw output and stderr. */
  runId: string;
  store: JobStore;
  files: RunFiles;
  /** Copied into a delegated run's run-setting.json (the model and runtime it shares with the root run). */
  childRunSetting?: Record<string, unknown>;
  parser: StreamParser;
  newId: () => string;
  now: () => number;
  /**
   * Every recorded event; with expandEvents, `expanded` gives it in Perstack's shape, messages in place (costly on
   * long runs).
   */
  onEvent: (event: PerstackEvent, expanded?: () => ExpandedEvent) => void;
  /**
   * The caller wants events in Perstack's shape (`--json`): every run's whole conversation stays in memory for it.
   * Otherwise a message is let go once it is a line of messages.jsonl, and memory stays flat however long the run.
   */
  expandEvents?: boolean;
  /** Expert keys the job may report runs for (the plan's reachable experts). */
  experts?: ReadonlySet<string>;
  /**
   * Bytes of agent output (stdout, stderr and the proxy's decisions) a run may produce. Past it, nothing more is
   * recorded and onOutputLimit is called once, to stop the agent. Default: no limit.
   */
  maxOutputBytes?: number;
  onOutputLimit?: () => void;
  /** The provider gateway spent a budget (--max-cost, --max-tokens): the caller stops the run. */
  onBudgetExceeded?: (budget: BudgetSpent) => void;
  /**
   * The run is taken over after its collector died (job/recover-run.ts): the agent's output is read again from its
   * start, and what the job's files already hold is recognised, not written twice. `files` was opened resumed; this
   * gives what a delegated run's files hold.
   */
  resumed?: { recordedRun(runId: string): RecordedRun };
}

/** A flood of refused lines must not become a flood of warnings. */
const MAX_WARNINGS = 100;
/**
 * Past this much unwritten output the collector stops taking more until the disk catches up: the container then
 * waits on its stdout. Below it, the container never waits on the disk.
 */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;
/**
 * Past this much unwritten output the next chunk is taken after a turn of the event loop, where finished writes are
 * reported and the next ones started: a writer that never yields (one in the same process) would otherwise leave the
 * disk idle until MAX_BACKLOG_BYTES, and the collector waiting on it then.
 */
const YIELD_BACKLOG_BYTES = 1024 * 1024;

export class RunCollector {
  readonly stdout: Writable;
  readonly stderr: Writable;
  private readonly splitter: LineSplitter;
  private stderrTail = "";
  private writes: Promise<void> = Promise.resolve();
  private writeError: unknown;
  private outcome: Omit<RunOutcome, "usage" | "steps"> | undefined;
  /** A delegated run stopped for an interactive answer: the job waits for it if the root run never ended. */
  private childWaiting: CheckpointRef | undefined;
  /** Per run, the step numbers of the generations started. */
  private readonly steps = new Map<string, Set<number>>();
  /** Per run: the usage it started from and the usage of its latest checkpoint. */
  private readonly usage = new Map<string, { start: Usage; latest: Usage }>();
  private readonly childFiles = new Map<string, RunFiles>();
  private readonly guard: EventGuard;
  private outputBytes = 0;
  private overLimit = false;
  private meteredRequests = 0;
  private readonly meteredCalls: Array<{ model?: string; usage: MeteredUsage }> = [];
  private budget: BudgetSpent | undefined;
  private warnings = 0;

  /** Ids of proxyAccess and providerUsage events: the same for the same line on a second reading (`resumed`). */
  private readonly proxyLineId: () => string;
  /** Delegated runs this invocation opened. */
  private readonly delegated: Set<string>;
  private readonly gatewayLineId: () => string;

  constructor(private readonly options: RunCollectorOptions) {
    // Only this collector writes the job's checkpoints while it runs (one invocation of a job at a time): what is on
    // disk when it starts is all that is not its own, read once rather than asked of the disk for every checkpoint.
    const earlier = options.store.checkpointIds();
    // Taken over, the disk holds this invocation's checkpoints and delegated runs too: the first collector listed
    // the delegated runs it opened (`delegated-runs`), so "from before" is judged exactly as it judged it.
    const ours = options.resumed ? options.store.delegatedRuns(options.runId) : new Set<string>();
    this.delegated = ours;
    const isOurs = (runId: string | undefined) => runId === options.runId || (runId !== undefined && ours.has(runId));
    const onDisk = options.resumed ? (id: string) => earlier.has(id) && !isOurs(options.store.checkpointOwner(id)) : (id: string) => earlier.has(id);
    this.proxyLineId = idSequence(`${options.runId}/proxy`);
    this.gatewayLineId = idSequence(`${options.runId}/gateway`);
    this.guard = new EventGuard({
      jobId: options.jobId,
      rootRunId: options.runId,
      ...(options.experts ? { experts: options.experts } : {}),
      checkpointOnDisk: onDisk,
      runExisted: (runId) => !isOurs(runId) && existsSync(options.store.runDir(runId)),
      messageCount: (runId) => options.parser.history(runId)?.length,
    });
    this.splitter = new LineSplitter(
      (line) => this.handleLine(line),
      (bytes) => this.warn("invalid-output", `ignored an overlong line of ${bytes} bytes on the agent's stdout (kept in raw.log)`),
    );
    this.stdout = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        const allowed = this.take(chunk);
        if (allowed.length > 0) {
          options.files.appendRaw(allowed);
          this.splitter.push(allowed);
        }
        this.afterWrite(callback);
      },
    });
    this.stderr = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        const allowed = this.take(chunk);
        if (allowed.length > 0) {
          options.files.appendStderr(allowed);
          this.stderrTail = (this.stderrTail + allowed.toString("utf8")).slice(-4_096);
        }
        this.afterWrite(callback);
      },
    });
  }

  /** Memory stays bounded when the disk is slower than the agent's output. */
  private afterWrite(callback: () => void): void {
    const backlog = this.options.files.backlog();
    if (backlog < YIELD_BACKLOG_BYTES) {
      callback();
      return;
    }
    if (backlog < MAX_BACKLOG_BYTES) {
      setImmediate(callback);
      return;
    }
    void this.options.files.drained().then(callback, callback);
  }

  /** Whether the run went past maxOutputBytes. */
  get outputLimitExceeded(): boolean {
    return this.overLimit;
  }

  /** A host-issued warning for the user; at most MAX_WARNINGS per run, then one saying the rest were dropped. */
  warn(code: SandboxWarningCode, message: string, path?: string): void {
    this.warnings += 1;
    if (this.warnings > MAX_WARNINGS + 1) return;
    const text = this.warnings > MAX_WARNINGS ? `more than ${MAX_WARNINGS} warnings: the rest are not recorded (the agent's output is in raw.log)` : message;
    this.runtimeEvent({ type: "sandboxWarning", code, message: text, ...(path !== undefined ? { path } : {}) });
  }

  /** The part of a chunk that fits under maxOutputBytes; crossing it stops the run once. */
  private take(chunk: Buffer): Buffer {
    const limit = this.options.maxOutputBytes;
    if (limit === undefined) return chunk;
    if (this.overLimit) return chunk.subarray(0, 0);
    const room = limit - this.outputBytes;
    this.outputBytes += chunk.length;
    if (chunk.length <= room) return chunk;
    this.overLimit = true;
    this.warn("output-limit", `the agent's output passed ${limit} bytes (--max-output); the run was stopped and nothing after that point is recorded`);
    this.options.onOutputLimit?.();
    return chunk.subarray(0, Math.max(0, room));
  }

  /** A runtime event from the sandbox itself (image builds, container status). */
  runtimeEvent(body: RuntimeEventBody, id: string = this.options.newId()): void {
    this.emit({
      ...body,
      id,
      timestamp: this.options.now(),
      jobId: this.options.jobId,
      runId: this.options.runId,
    } as RuntimeEvent);
  }

  proxyLine(line: string): void {
    const id = this.proxyLineId();
    // The proxy writes one line per request the agent makes: the agent decides how many.
    if (this.take(Buffer.from(`${line}\n`)).length === 0) return;
    const decision = parseProxyLogLine(line);
    if (!decision) return;
    this.runtimeEvent(
      {
        type: "proxyAccess",
        action: decision.action,
        domain: decision.domain,
        port: decision.port,
        ...(decision.reason ? { reason: decision.reason } : {}),
      },
      id,
    );
  }

  /** A line of the provider gateway's stdout: each model call it metered or refused becomes a providerUsage event. */
  gatewayLine(line: string): void {
    const id = this.gatewayLineId();
    // One line per request the agent makes: the agent decides how many.
    if (this.take(Buffer.from(`${line}\n`)).length === 0) return;
    const record = parseGatewayLine(line);
    if (!record) return;
    switch (record.type) {
      case "providerUsage":
        if (record.usage) this.meteredCalls.push({ ...(record.model !== undefined ? { model: record.model } : {}), usage: record.usage });
        this.meteredRequests += 1;
        this.runtimeEvent({
          type: "providerUsage",
          requestId: record.requestId,
          method: record.method,
          path: record.path,
          status: record.status,
          ...(record.model !== undefined ? { model: record.model } : {}),
          ...(record.usage ? { usage: record.usage } : {}),
          latencyMs: record.latencyMs,
        }, id);
        return;
      case "gatewayRefused":
        this.meteredRequests += 1;
        this.runtimeEvent({ type: "providerUsage", requestId: record.requestId, method: record.method, status: record.status, refused: record.reason }, id);
        return;
      case "budgetExceeded":
        if (this.budget) return;
        this.budget = { budget: record.budget, limit: record.limit, spent: record.spent };
        this.options.onBudgetExceeded?.(this.budget);
        return;
      case "gatewayWarning":
        this.warn("gateway-warning", `provider gateway: ${record.message}`);
        return;
      case "gatewayReady":
        return;
    }
  }

  /** The calls the provider gateway metered, in order, and how many requests it saw (refused ones included). */
  get metered(): { requests: number; calls: ReadonlyArray<{ model?: string; usage: MeteredUsage }> } {
    return { requests: this.meteredRequests, calls: this.meteredCalls };
  }

  /** The budget the gateway said was spent, if any. */
  get budgetExceeded(): BudgetSpent | undefined {
    return this.budget;
  }

  /** The container exited (or never started): flush, let the parser close the run, wait for the disk. */
  async finish(exitCode: number): Promise<RunOutcome> {
    this.splitter.end();
    for (const event of this.options.parser.end({ exitCode, stderrTail: this.stderrTail })) this.emitChecked(event);
    await this.closeChildren();
    if (this.writeError) throw this.writeError;
    return this.result({ name: "NoResult", message: "the run produced no result", isRetryable: false });
  }

  /**
   * Stops collecting without ending the run: what was handled is written, the run stays open for another collector
   * to take over (a detached `perstack attach`).
   */
  async closeWithoutEnding(): Promise<void> {
    await this.closeChildren();
  }

  /** Ends the run as failed from outside the stream (interrupt, sandbox failure) unless it already ended. */
  async fail(error: CheckpointError): Promise<RunOutcome> {
    this.splitter.end();
    if (!this.outcome) {
      for (const event of this.options.parser.end({ exitCode: 1, stderrTail: `${error.name}: ${error.message}` })) {
        this.emitChecked(event.type === "stopRunByError" ? { ...event, error, checkpoint: { ...event.checkpoint, error } } : event);
      }
    }
    await this.closeChildren();
    return this.result(error);
  }

  private result(error: CheckpointError): RunOutcome {
    let usage = emptyUsage();
    for (const run of this.usage.values()) usage = addUsage(usage, subtractUsage(run.latest, run.start));
    const outcome: Omit<RunOutcome, "usage" | "steps"> = this.outcome ??
      (this.childWaiting
        ? { status: "stoppedByInteractiveTool", lastCheckpoint: this.childWaiting }
        : { status: "stoppedByError", error });
    let steps = 0;
    for (const run of this.steps.values()) steps += run.size;
    return { ...outcome, usage, steps };
  }

  private async closeChildren(): Promise<void> {
    await this.writes;
    const files = [...this.childFiles.values()];
    this.childFiles.clear();
    await Promise.all(files.map((f) => f.close()));
  }

  private handleLine(line: string): void {
    if (this.overLimit) return;
    let events: PerstackEvent[];
    try {
      events = this.options.parser.line(line);
    } catch (error) {
      // The line is in raw.log; it is never acted on.
      this.warn("invalid-output", `ignored a line on the agent's stdout: ${(error as Error).message}`);
      return;
    }
    for (const event of events) {
      const verdict = this.guard.check(event);
      if (verdict.ok) this.emit(event);
      else this.warn("forged-event", `ignored an event from the agent's stdout: ${verdict.reason}`);
    }
  }

  /** Events a parser made up at the end: checked like streamed ones (they reuse the last streamed checkpoint). */
  private emitChecked(event: PerstackEvent): void {
    const verdict = this.guard.check(event);
    if (verdict.ok) this.emit(event);
    else this.warn("forged-event", `ignored an event at the end of the run: ${verdict.reason}`);
  }

  private emit(event: PerstackEvent): void {
    const files = this.filesFor(event);
    // Taken over: an event recorded before is not recorded or shown again; what follows from it still is.
    const fresh = files.appendEvent(event);
    // The guard let the event through only if the run's log holds these messages; the log never shrinks.
    const history = this.options.parser.history(event.runId);
    const file = fileCheckpointOf(event);
    // A step's checkpoint is a line of the run's checkpoints.jsonl; the one a run stops on (or one that cannot be a
    // line) a file, whole, from the write queue.
    // Unless events are expanded, a message leaves memory once it is a line of messages.jsonl (message-log.ts).
    const release = !this.options.expandEvents;
    if (file && (isWrittenWhole(file) || !history || !files.appendCheckpoint(file, history, release))) this.queue(() => this.options.store.writeCheckpointFrom(file, history, files));
    const checkpoint = "checkpoint" in event ? event.checkpoint : undefined;
    if (checkpoint) {
      const run = this.usage.get(event.runId);
      if (run) run.latest = checkpoint.usage;
      else this.usage.set(event.runId, { start: emptyUsage(), latest: checkpoint.usage });
    }
    if (event.type === "startRun") {
      const start = event.initialCheckpoint.usage;
      this.usage.set(event.runId, { start, latest: this.usage.get(event.runId)?.latest ?? start });
    }
    if (event.type === "startGeneration") this.stepsOf(event.runId).add(event.stepNumber);
    if (event.runId === this.options.runId) this.recordOutcome(event);
    else if (event.type === "stopRunByInteractiveTool") this.childWaiting = event.checkpoint;
    if (fresh) this.options.onEvent(event, this.options.expandEvents ? () => expandEvent(event, this.resolveMessages) : undefined);
  }

  private stepsOf(runId: string): Set<number> {
    let steps = this.steps.get(runId);
    if (!steps) {
      steps = new Set();
      this.steps.set(runId, steps);
    }
    return steps;
  }

  /** Messages the guard let a reference name: a prefix of the run's log. */
  private readonly resolveMessages: MessagesResolver = (runId, ref) => {
    const log = this.options.parser.history(runId);
    if (ref.count > (log?.length ?? 0)) throw new Error(`run ${runId} has no ${ref.count} messages`);
    return log?.head(ref.count) ?? [];
  };

  private recordOutcome(event: PerstackEvent): void {
    if (event.type === "completeRun") {
      this.outcome = { status: "completed", text: event.text, lastCheckpoint: event.checkpoint };
    } else if (event.type === "stopRunByExceededMaxSteps") {
      this.outcome = { status: "stoppedByMaxSteps", lastCheckpoint: event.checkpoint };
    } else if (event.type === "stopRunByInteractiveTool") {
      this.outcome = { status: "stoppedByInteractiveTool", lastCheckpoint: event.checkpoint };
    } else if (event.type === "stopRunByError") {
      this.outcome = { status: "stoppedByError", error: event.error, lastCheckpoint: event.checkpoint };
    }
  }

  /** The root run's files, or a delegated run's, opened (and its run-setting.json written) on first sight. */
  private filesFor(event: PerstackEvent): RunFiles {
    if (event.runId === this.options.runId) return this.options.files;
    let files = this.childFiles.get(event.runId);
    if (!files) {
      // Noted before anything of the run is written: a collector taking over knows it as this invocation's.
      if (!this.delegated.has(event.runId)) {
        this.options.store.noteDelegatedRun(this.options.runId, event.runId);
        this.delegated.add(event.runId);
      }
      const resumed = this.options.resumed?.recordedRun(event.runId);
      files = this.options.store.openRun(event.runId, { logs: false, ...(resumed ? { resumed } : {}) });
      this.childFiles.set(event.runId, files);
    }
    if (event.type === "startRun") {
      const setting = childRunSetting(event, this.options.childRunSetting ?? {});
      const target = files;
      this.queue(() => target.writeSetting(setting));
    }
    return files;
  }

  private queue(write: () => Promise<void>): void {
    this.writes = this.writes.then(write).catch((error: unknown) => {
      this.writeError ??= error;
    });
  }
}

function childRunSetting(event: Extract<RunEvent, { type: "startRun" }>, shared: Record<string, unknown>): Record<string, unknown> {
  const checkpoint = event.initialCheckpoint;
  return {
    ...shared,
    jobId: event.jobId,
    runId: event.runId,
    expertKey: event.expertKey,
    expert: checkpoint.expert,
    ...(checkpoint.delegatedBy ? { delegatedBy: checkpoint.delegatedBy } : {}),
    startedAt: event.timestamp,
  };
}

function subtractUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens - b.inputTokens,
    outputTokens: a.outputTokens - b.outputTokens,
    reasoningTokens: a.reasoningTokens - b.reasoningTokens,
    totalTokens: a.totalTokens - b.totalTokens,
    cachedInputTokens: a.cachedInputTokens - b.cachedInputTokens,
  };
}

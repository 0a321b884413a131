// docker stream -> lines -> runtime parser -> normalized events -> events.jsonl and checkpoints. Streams: a line
// is handled as it arrives and writes are queued, so the container is never held up by the disk.
//
// One container may report several runs (the built-in engine runs delegates itself): each event goes to its own
// run's events.jsonl, a delegated run gets its run-setting.json from its startRun, and only the root run (the one
// this invocation started) decides how the job ends.
import { Writable } from "node:stream";
import { addUsage, emptyUsage, type CheckpointError, type Checkpoint, type PerstackEvent, type RunEvent, type RuntimeEvent, type Usage } from "../model/perstack.js";
import type { StreamParser } from "../runtimes/types.js";
import type { JobStore, RunFiles } from "../storage/job-store.js";
import { LineSplitter } from "./line-splitter.js";
import { parseProxyLogLine } from "./proxy-log.js";

type RuntimeEventBody = RuntimeEvent extends infer E ? (E extends RuntimeEvent ? Omit<E, "id" | "timestamp" | "jobId" | "runId"> : never) : never;

export interface RunOutcome {
  status: "completed" | "stoppedByError" | "stoppedByMaxSteps" | "stoppedByInteractiveTool";
  /** Tokens used by this invocation, all runs together (continued runs' earlier usage is not counted again). */
  usage: Usage;
  /** Steps executed by this invocation, all runs together. */
  steps: number;
  text?: string;
  error?: CheckpointError;
  lastCheckpoint?: Checkpoint;
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
  onEvent: (event: PerstackEvent) => void;
}

export class RunCollector {
  readonly stdout: Writable;
  readonly stderr: Writable;
  private readonly splitter: LineSplitter;
  private stderrTail = "";
  private writes: Promise<void> = Promise.resolve();
  private writeError: unknown;
  private outcome: Omit<RunOutcome, "usage" | "steps"> | undefined;
  /** A delegated run stopped for an interactive answer: the job waits for it if the root run never ended. */
  private childWaiting: Checkpoint | undefined;
  /** "runId\0stepNumber" of every generation started. */
  private readonly steps = new Set<string>();
  /** Per run: the usage it started from and the usage of its latest checkpoint. */
  private readonly usage = new Map<string, { start: Usage; latest: Usage }>();
  private readonly childFiles = new Map<string, RunFiles>();

  constructor(private readonly options: RunCollectorOptions) {
    this.splitter = new LineSplitter(
      (line) => this.handleLine(line),
      (bytes) => options.files.appendStderr(`[perstack] skipped parsing an overlong stdout line of ${bytes} bytes (kept in raw.log)\n`),
    );
    this.stdout = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        options.files.appendRaw(chunk);
        this.splitter.push(chunk);
        callback();
      },
    });
    this.stderr = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        options.files.appendStderr(chunk);
        this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-4_096);
        callback();
      },
    });
  }

  /** A runtime event from the sandbox itself (image builds, container status). */
  runtimeEvent(body: RuntimeEventBody): void {
    this.emit({
      ...body,
      id: this.options.newId(),
      timestamp: this.options.now(),
      jobId: this.options.jobId,
      runId: this.options.runId,
    } as RuntimeEvent);
  }

  proxyLine(line: string): void {
    const decision = parseProxyLogLine(line);
    if (!decision) return;
    this.runtimeEvent({
      type: "proxyAccess",
      action: decision.action,
      domain: decision.domain,
      port: decision.port,
      ...(decision.reason ? { reason: decision.reason } : {}),
    });
  }

  /** The container exited (or never started): flush, let the parser close the run, wait for the disk. */
  async finish(exitCode: number): Promise<RunOutcome> {
    this.splitter.end();
    for (const event of this.options.parser.end({ exitCode, stderrTail: this.stderrTail })) this.emit(event);
    await this.closeChildren();
    if (this.writeError) throw this.writeError;
    return this.result({ name: "NoResult", message: "the run produced no result", isRetryable: false });
  }

  /** Ends the run as failed from outside the stream (interrupt, sandbox failure) unless it already ended. */
  async fail(error: CheckpointError): Promise<RunOutcome> {
    this.splitter.end();
    if (!this.outcome) {
      for (const event of this.options.parser.end({ exitCode: 1, stderrTail: `${error.name}: ${error.message}` })) {
        this.emit(event.type === "stopRunByError" ? { ...event, error, checkpoint: { ...event.checkpoint, error } } : event);
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
    return { ...outcome, usage, steps: this.steps.size };
  }

  private async closeChildren(): Promise<void> {
    await this.writes;
    const files = [...this.childFiles.values()];
    this.childFiles.clear();
    await Promise.all(files.map((f) => f.close()));
  }

  private handleLine(line: string): void {
    let events: PerstackEvent[];
    try {
      events = this.options.parser.line(line);
    } catch (error) {
      // A parser bug must not lose the run: the line is in raw.log, the problem in stderr.log.
      this.options.files.appendStderr(`[perstack] parser error: ${(error as Error).message}\n`);
      return;
    }
    for (const event of events) this.emit(event);
  }

  private emit(event: PerstackEvent): void {
    this.filesFor(event).appendEvent(event);
    const checkpoint = "checkpoint" in event ? event.checkpoint : undefined;
    if (checkpoint) {
      this.queue(() => this.options.store.writeCheckpoint(checkpoint));
      const run = this.usage.get(event.runId);
      if (run) run.latest = checkpoint.usage;
      else this.usage.set(event.runId, { start: emptyUsage(), latest: checkpoint.usage });
    }
    if (event.type === "startRun") {
      const start = event.initialCheckpoint.usage;
      this.usage.set(event.runId, { start, latest: this.usage.get(event.runId)?.latest ?? start });
    }
    if (event.type === "startGeneration") this.steps.add(`${event.runId}\0${event.stepNumber}`);
    if (event.runId === this.options.runId) this.recordOutcome(event);
    else if (event.type === "stopRunByInteractiveTool") this.childWaiting = event.checkpoint;
    this.options.onEvent(event);
  }

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
      files = this.options.store.openRun(event.runId, { logs: false });
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

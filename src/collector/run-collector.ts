// docker stream -> lines -> runtime parser -> normalized events -> events.jsonl and checkpoints. Streams: a line
// is handled as it arrives and writes are queued, so the container is never held up by the disk.
import { Writable } from "node:stream";
import type { CheckpointError, Checkpoint, PerstackEvent, RuntimeEvent, Usage } from "../model/perstack.js";
import type { StreamParser } from "../runtimes/types.js";
import type { JobStore, RunFiles } from "../storage/job-store.js";
import { LineSplitter } from "./line-splitter.js";
import { parseProxyLogLine } from "./proxy-log.js";

type RuntimeEventBody = RuntimeEvent extends infer E ? (E extends RuntimeEvent ? Omit<E, "id" | "timestamp" | "jobId" | "runId"> : never) : never;

export interface RunOutcome {
  status: "completed" | "stoppedByError" | "stoppedByMaxSteps";
  usage?: Usage;
  steps: number;
  text?: string;
  error?: CheckpointError;
  lastCheckpoint?: Checkpoint;
}

export interface RunCollectorOptions {
  jobId: string;
  runId: string;
  store: JobStore;
  files: RunFiles;
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
  private outcome: RunOutcome | undefined;
  private steps = 0;

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
    await this.writes;
    if (this.writeError) throw this.writeError;
    return this.outcome ?? { status: "stoppedByError", steps: this.steps, error: { name: "NoResult", message: "the run produced no result", isRetryable: false } };
  }

  /** Ends the run as failed from outside the stream (interrupt, sandbox failure) unless it already ended. */
  async fail(error: CheckpointError): Promise<RunOutcome> {
    this.splitter.end();
    if (!this.outcome) {
      for (const event of this.options.parser.end({ exitCode: 1, stderrTail: `${error.name}: ${error.message}` })) {
        this.emit(event.type === "stopRunByError" ? { ...event, error, checkpoint: { ...event.checkpoint, error } } : event);
      }
    }
    await this.writes;
    return this.outcome ?? { status: "stoppedByError", steps: this.steps, error };
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
    this.options.files.appendEvent(event);
    const checkpoint = "checkpoint" in event ? event.checkpoint : undefined;
    if (checkpoint) this.queue(() => this.options.store.writeCheckpoint(checkpoint));
    if ("stepNumber" in event) this.steps = Math.max(this.steps, event.stepNumber);
    if (event.type === "completeRun") {
      this.outcome = { status: "completed", usage: event.usage, steps: event.checkpoint.stepNumber, text: event.text, lastCheckpoint: event.checkpoint };
    } else if (event.type === "stopRunByExceededMaxSteps") {
      this.outcome = { status: "stoppedByMaxSteps", usage: event.checkpoint.usage, steps: event.checkpoint.stepNumber, lastCheckpoint: event.checkpoint };
    } else if (event.type === "stopRunByError") {
      this.outcome = {
        status: "stoppedByError",
        usage: event.checkpoint.usage,
        steps: event.checkpoint.stepNumber,
        error: event.error,
        lastCheckpoint: event.checkpoint,
      };
    }
    this.options.onEvent(event);
  }

  private queue(write: () => Promise<void>): void {
    this.writes = this.writes.then(write).catch((error: unknown) => {
      this.writeError ??= error;
    });
  }
}

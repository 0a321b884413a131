// Turns what a runtime reports (assistant parts, tool results, the final result) into Perstack's normalized
// events and checkpoints. Every CLI parser feeds one of these, so all runtimes produce the same event sequence:
// startRun, then per step startGeneration, callTools, resolveToolResults, continueToNextStep, and finally
// completeRun or stopRunByError. Pure: no I/O, ids and clock are injected.
//
// The conversation lives in one MessageLog; events and checkpoints name a prefix of it (MessagesRef) instead of
// copying it, so each event costs what it adds, however long the run.
import { MessageLog } from "./message-log.js";
import { normalizeBuiltinTool } from "./tool-concepts.js";
import {
  addUsage,
  emptyUsage,
  type CheckpointRef,
  type CheckpointError,
  type CheckpointStatus,
  type ExpertRef,
  type Message,
  type MessagesRef,
  type PerstackEvent,
  type RunEvent,
  type RuntimeEvent,
  type TextPart,
  type ThinkingPart,
  type ToolCall,
  type ToolCallPart,
  type ToolResult,
  type Usage,
} from "../model/perstack.js";

export interface RecorderContext {
  jobId: string;
  runId: string;
  expert: ExpertRef;
  instruction: string;
  query: string;
  runtime: string;
  /** Extra checkpoint metadata, e.g. the CLI version. */
  metadata: Record<string, unknown>;
  newId: () => string;
  now: () => number;
}

export type AssistantPart = TextPart | ThinkingPart | (ToolCallPart & { skillName: string; normalized?: ToolCall["normalized"] });

export class RunRecorder {
  /** The run's conversation; the collector writes checkpoint files from it. */
  readonly history = new MessageLog();
  /** The last checkpoint written as a file: what startGeneration's messages point to. */
  private lastWritten: MessagesRef | undefined;
  private stepNumber = 1;
  private usage: Usage = emptyUsage();
  private started = false;
  private finished = false;
  /** Parts of the generation in progress, keyed by the runtime's message id. */
  private generation: { messageId: string; parts: AssistantPart[]; usage: Usage } | undefined;
  private pendingCalls: ToolCall[] = [];
  private results: ToolResult[] = [];
  private lastText = "";
  private readonly meta: Record<string, unknown>;

  constructor(private readonly ctx: RecorderContext) {
    this.history.append([
      { type: "instructionMessage", id: ctx.newId(), contents: [{ type: "textPart", text: ctx.instruction }] },
      { type: "userMessage", id: ctx.newId(), contents: [{ type: "textPart", text: ctx.query }] },
    ]);
    this.meta = { runtime: ctx.runtime, ...ctx.metadata };
  }

  get isFinished(): boolean {
    return this.finished;
  }

  get totalUsage(): Usage {
    return this.usage;
  }

  get steps(): number {
    return this.stepNumber;
  }

  /** The conversation of run `runId`: this recorder's run is the only one it knows. */
  historyOf(runId: string): MessageLog | undefined {
    return runId === this.ctx.runId ? this.history : undefined;
  }

  /** The runtime reported its session: emits initializeRuntime and startRun once. */
  start(info: { model?: string; sessionId?: string; runtimeVersion?: string }): PerstackEvent[] {
    if (this.started) return [];
    this.started = true;
    Object.assign(this.meta, stripUndefined({ model: info.model, sessionId: info.sessionId }));
    const init: RuntimeEvent = {
      ...this.runtimeBase(),
      type: "initializeRuntime",
      runtime: this.ctx.runtime,
      ...stripUndefined({ runtimeVersion: info.runtimeVersion, model: info.model, sessionId: info.sessionId }),
    };
    const startRun: RunEvent = {
      ...this.runBase(),
      type: "startRun",
      initialCheckpoint: this.checkpoint("init"),
      inputMessages: this.history.head(this.history.length),
    };
    return [init, startRun];
  }

  /** Parts of one assistant generation; several calls with the same messageId extend it. */
  assistant(messageId: string, parts: AssistantPart[], usage?: Usage): PerstackEvent[] {
    const events: PerstackEvent[] = this.ensureStarted();
    if (this.generation && this.generation.messageId !== messageId) events.push(...this.flushGeneration());
    if (this.results.length > 0 || (this.pendingCalls.length > 0 && !this.generation)) {
      events.push(...this.closeStep());
    }
    if (!this.generation) {
      events.push({ ...this.runBase(), type: "startGeneration", ...this.conversationSoFar() });
      this.generation = { messageId, parts: [], usage: usage ?? emptyUsage() };
    } else if (usage) {
      this.generation.usage = usage;
    }
    this.generation.parts.push(
      ...parts.map((part) => {
        // Built-in tools are reported under the runtime's own name; MCP tools keep theirs and need no view.
        if (part.type !== "toolCallPart" || part.normalized || part.skillName !== this.ctx.runtime) return part;
        const normalized = normalizeBuiltinTool(this.ctx.runtime, part.toolName, part.args);
        return normalized ? { ...part, normalized } : part;
      }),
    );
    for (const part of parts) if (part.type === "textPart") this.lastText = part.text;
    return events;
  }

  /** Results of tool calls; the step closes when every pending call has its result or a new generation starts. */
  toolResults(results: ToolResult[]): PerstackEvent[] {
    const events: PerstackEvent[] = this.ensureStarted();
    events.push(...this.flushGeneration());
    const known = results.map((result) => {
      const call = this.pendingCalls.find((c) => c.id === result.id);
      return call ? { ...result, skillName: call.skillName, toolName: call.toolName } : result;
    });
    this.results.push(...known);
    events.push({ ...this.runBase(), type: "resolveToolResults", toolResults: known });
    const answered = new Set(this.results.map((r) => r.id));
    if (this.pendingCalls.every((call) => answered.has(call.id))) events.push(...this.closeStep());
    return events;
  }

  /** The run finished successfully with `text` (the runtime's final answer) and its reported total usage. */
  complete(text: string | undefined, totalUsage?: Usage, metadata?: Record<string, unknown>): PerstackEvent[] {
    if (this.finished) return [];
    const events = this.finishUp(true, totalUsage, metadata);
    const finalText = text ?? this.lastText;
    if (finalText && finalText !== this.lastTextInMessages()) {
      this.history.append([{
        type: "expertMessage",
        id: this.ctx.newId(),
        contents: [{ type: "textPart", text: finalText }],
      }]);
    }
    const checkpoint = this.checkpoint("completed");
    events.push({ ...this.runBase(), type: "completeRun", checkpoint, text: finalText, usage: this.usage });
    return events;
  }

  /** The run failed. What was collected so far stays in the checkpoint. */
  fail(error: CheckpointError, totalUsage?: Usage, metadata?: Record<string, unknown>): PerstackEvent[] {
    if (this.finished) return [];
    // A step whose tool results are incomplete stays open: the checkpoint shows where the run broke.
    const events = this.finishUp(false, totalUsage, metadata);
    const checkpoint = this.checkpoint("stoppedByError", error);
    events.push({ ...this.runBase(), type: "stopRunByError", checkpoint, error });
    return events;
  }

  /** The runtime stopped because the step limit (maxSteps) was reached. */
  stopByMaxSteps(totalUsage?: Usage, metadata?: Record<string, unknown>): PerstackEvent[] {
    if (this.finished) return [];
    const events = this.finishUp(true, totalUsage, metadata);
    events.push({ ...this.runBase(), type: "stopRunByExceededMaxSteps", checkpoint: this.checkpoint("stoppedByExceededMaxSteps") });
    return events;
  }

  retry(reason: string): PerstackEvent[] {
    return [...this.ensureStarted(), { ...this.runBase(), type: "retry", reason }];
  }

  /**
   * A checkpoint of the state so far that is written as a file (an event's `checkpoint` or `initialCheckpoint`):
   * its messages are the whole log, named by its own id. Later events point to it.
   */
  private checkpoint(status: CheckpointStatus, error?: CheckpointError): CheckpointRef {
    const id = this.ctx.newId();
    this.lastWritten = { checkpointId: id, count: this.history.length };
    return this.checkpointWith(id, status, this.lastWritten, error);
  }

  private checkpointWith(id: string, status: CheckpointStatus, messagesRef: MessagesRef, error?: CheckpointError): CheckpointRef {
    return {
      id,
      jobId: this.ctx.jobId,
      runId: this.ctx.runId,
      status,
      stepNumber: this.stepNumber,
      messagesRef,
      expert: this.ctx.expert,
      usage: this.usage,
      metadata: { ...this.meta },
      ...(error ? { error } : {}),
    };
  }

  /** startGeneration's conversation: the last written checkpoint's messages and any added since. */
  private conversationSoFar(): { messagesRef: MessagesRef; messagesAfterRef?: Message[] } {
    const ref = this.lastWritten!;
    return this.history.length > ref.count ? { messagesRef: ref, messagesAfterRef: this.history.from(ref.count) } : { messagesRef: ref };
  }

  /** Common to every way a run ends: flush what is open, take the runtime's totals, mark the run finished. */
  private finishUp(closeOpenStep: boolean, totalUsage?: Usage, metadata?: Record<string, unknown>): PerstackEvent[] {
    const events = this.ensureStarted();
    events.push(...this.flushGeneration());
    if (closeOpenStep && this.results.length > 0) events.push(...this.closeStep());
    if (totalUsage) this.usage = totalUsage;
    Object.assign(this.meta, metadata ?? {});
    this.finished = true;
    return events;
  }

  private ensureStarted(): PerstackEvent[] {
    return this.started ? [] : this.start({});
  }

  /** Ends the current generation: records the expert message and announces its tool calls. */
  private flushGeneration(): PerstackEvent[] {
    const generation = this.generation;
    if (!generation) return [];
    this.generation = undefined;
    this.usage = addUsage(this.usage, generation.usage);
    const message: Message = {
      type: "expertMessage",
      id: this.ctx.newId(),
      contents: generation.parts.map((part) =>
        part.type === "toolCallPart"
          ? { type: "toolCallPart", toolCallId: part.toolCallId, toolName: part.toolName, args: part.args }
          : part,
      ),
    };
    this.history.append([message]);
    const calls = generation.parts.flatMap((part): ToolCall[] =>
      part.type === "toolCallPart"
        ? [{ id: part.toolCallId, skillName: part.skillName, toolName: part.toolName, args: part.args, ...(part.normalized ? { normalized: part.normalized } : {}) }]
        : [],
    );
    if (calls.length === 0) return [];
    this.pendingCalls.push(...calls);
    return [{ ...this.runBase(), type: "callTools", newMessage: message, toolCalls: calls, usage: generation.usage }];
  }

  /** Appends the tool results, writes the step's checkpoint and moves to the next step. */
  private closeStep(): PerstackEvent[] {
    if (this.pendingCalls.length === 0 && this.results.length === 0) return [];
    const toolMessage: Message = {
      type: "toolMessage",
      id: this.ctx.newId(),
      contents: this.results.map((r) => ({
        type: "toolResultPart",
        toolCallId: r.id,
        toolName: r.toolName,
        contents: r.result,
        ...(r.isError ? { isError: true } : {}),
      })),
    };
    this.history.append([toolMessage]);
    const finishAll: RunEvent = { ...this.runBase(), type: "finishAllToolCalls", newMessages: [toolMessage] };
    const checkpoint = this.checkpoint("proceeding");
    this.pendingCalls = [];
    this.results = [];
    this.stepNumber += 1;
    // The next step starts from the same checkpoint under its own id and step: it points to the file just written.
    const nextCheckpoint: CheckpointRef = { ...checkpoint, id: this.ctx.newId(), stepNumber: this.stepNumber };
    const next: RunEvent = {
      ...this.runBase(),
      stepNumber: checkpoint.stepNumber,
      type: "continueToNextStep",
      checkpoint,
      nextCheckpoint,
    };
    return [finishAll, next];
  }

  private lastTextInMessages(): string | undefined {
    const last = this.history.last();
    if (last?.type !== "expertMessage") return undefined;
    const texts = last.contents.filter((p): p is TextPart => p.type === "textPart");
    return texts[texts.length - 1]?.text;
  }

  private runBase() {
    return {
      id: this.ctx.newId(),
      expertKey: this.ctx.expert.key,
      timestamp: this.ctx.now(),
      jobId: this.ctx.jobId,
      runId: this.ctx.runId,
      stepNumber: this.stepNumber,
    };
  }

  private runtimeBase() {
    return { id: this.ctx.newId(), timestamp: this.ctx.now(), jobId: this.ctx.jobId, runId: this.ctx.runId };
  }
}

function stripUndefined<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Generation ids for streams that carry no message ids (gemini, codex, cursor): everything the model says until
 * tool results come back belongs to one generation; the next output starts another.
 */
export class GenerationIds {
  private count = 1;
  private answered = false;

  constructor(private readonly prefix: string) {}

  /** The id for model output arriving now. */
  current(): string {
    if (this.answered) {
      this.count += 1;
      this.answered = false;
    }
    return `${this.prefix}-${this.count}`;
  }

  /** Tool results came back: the next model output is a new generation. */
  toolsAnswered(): void {
    this.answered = true;
  }
}

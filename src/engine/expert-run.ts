// One Run: an expert working on one query, step by step. Each step generates (streaming), runs the tool calls
// (skills concurrently, delegates as concurrent child runs), appends the results and writes a checkpoint. The run
// stops on an accepted attemptCompletion (or a plain answer with no tool calls), when the job's step budget is
// spent, on an interactive tool call, or on a fatal error. Everything it does is announced as Perstack events, as
// the host records them: checkpoints name their messages by reference, and a checkpoint the host writes as a file
// brings the messages the conversation gained since the run's previous one (appendMessages), so each line costs
// what the step added, however long the run.
import type { LanguageModel } from "ai";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  addUsage,
  emptyUsage,
  type CheckpointRef,
  type CheckpointError,
  type CheckpointStatus,
  type DelegatedBy,
  type DelegateTo,
  type ExpertRef,
  type Message,
  type MessagesRef,
  type ToolCall,
  type ToolCallPart,
  type ToolResult,
  type ToolResultContent,
  type Usage,
} from "../model/perstack.js";
import { ATTEMPT_COMPLETION_ACCEPTED } from "./base-skill/tools/completion.js";
import type { EngineExpert, EngineInput } from "./engine-input.js";
import { newId, type EventSink, type RunEventBody } from "./event-sink.js";
import { buildExpertTools, type ExpertTools, type ToolRoute } from "./expert-tools.js";
import { generateWithRetry, type GeneratedCall } from "./generation.js";
import { toModelPrompt } from "./model-messages.js";
import { SkillManager, type SkillSpec } from "./skills/skill-manager.js";

export type RunStatus = "completed" | "stoppedByExceededMaxSteps" | "stoppedByError" | "stoppedByInteractiveTool";

export interface RunResult {
  status: RunStatus;
  /** The final answer (completed), else a short description of why the run stopped. */
  text: string;
  checkpoint: CheckpointRef;
}

/** Steps left in the job, shared by the coordinator and every delegated run. */
export class StepBudget {
  private used = 0;
  constructor(private readonly limit: number) {}
  take(): boolean {
    if (this.used >= this.limit) return false;
    this.used += 1;
    return true;
  }
}

export interface ChildRequest {
  runId: string;
  expertKey: string;
  query: string;
  delegatedBy: DelegatedBy;
}

/** What every run of a job shares. */
export interface JobContext {
  input: EngineInput;
  sink: EventSink;
  model: LanguageModel;
  budget: StepBudget;
  /** The specs of an expert's MCP skills (stdio and SSE), with their environments. */
  skillSpecs(expert: EngineExpert): SkillSpec[];
  /** Names of the expert's skills that are the built-in base skill (attemptCompletion ends runs). */
  baseSkillNames(expert: EngineExpert): Set<string>;
  /** Runs a delegate: fresh on the query, or resumed from its checkpoint when answering a job it stopped. */
  startChild(request: ChildRequest): Promise<RunResult>;
  /** Whether the delegate call with this id resumes a waiting run (its query then comes from its checkpoint). */
  isResumedDelegate(toolCallId: string): boolean;
  /** For checkpoints' metadata. */
  metadata: Record<string, unknown>;
  sleep?: (ms: number) => Promise<void>;
  /** Resolves once the sandbox's way out is up: nothing reaches the network before (engine-job.ts). */
  networkReady: Promise<void>;
}

export interface RunStart {
  runId: string;
  expert: EngineExpert;
  /** The whole conversation at the start, instruction first. */
  messages: Message[];
  /** The messages this invocation added (startRun's inputMessages). */
  inputMessages: Message[];
  /** The step the next generation (or the pending tool calls) belongs to. */
  stepNumber: number;
  usage: Usage;
  delegatedBy?: DelegatedBy;
  /**
   * The last expert message's tool calls are still open (answering an interactive tool, resuming a stopped
   * step): run the unanswered ones, interactive ones get `answer`, then carry on.
   */
  pending?: { results: ToolResult[]; answer?: string };
}

interface StepResults {
  /** By tool call id. */
  results: Map<string, ToolResult>;
  completionAccepted: boolean;
}

export class ExpertRun {
  private readonly messages: Message[];
  /** How many of `messages` the host has been sent (with checkpoints, as appendMessages). */
  private published = 0;
  /** The last checkpoint the host writes as a file: where startGeneration's messages are. */
  private lastWritten: MessagesRef | undefined;
  private stepNumber: number;
  private usage: Usage;
  private readonly expertRef: ExpertRef;
  private tools!: ExpertTools;
  private skills!: SkillManager;
  /** Usage of the generation whose tool calls are being run. */
  private stepUsage: Usage;

  constructor(
    private readonly job: JobContext,
    private readonly start: RunStart,
  ) {
    this.messages = start.messages.slice();
    this.stepNumber = start.stepNumber;
    this.usage = start.usage;
    this.stepUsage = emptyUsage();
    this.expertRef = { key: start.expert.key, name: start.expert.name, version: start.expert.version };
  }

  get runId(): string {
    return this.start.runId;
  }

  async run(): Promise<RunResult> {
    this.emit({ type: "startRun", initialCheckpoint: this.checkpoint("init"), inputMessages: this.start.inputMessages });
    this.skills = new SkillManager({
      skills: this.job.skillSpecs(this.start.expert),
      networkReady: this.job.networkReady,
      isLocal: (spec) => this.job.baseSkillNames(this.start.expert).has(spec.name),
      emit: (event) => this.job.sink.runtimeEvent(this.runId, event),
      eventBase: () => this.job.sink.runtimeBase(this.runId),
    });
    try {
      try {
        const warnings = await this.skills.start();
        for (const warning of warnings) process.stderr.write(`[perstack engine] ${this.start.expert.key}: ${warning}\n`);
      } catch (error) {
        return this.fail({ name: "SkillStartError", message: errorText(error), isRetryable: false });
      }
      this.tools = buildExpertTools(this.start.expert, this.skills.tools(), this.job.baseSkillNames(this.start.expert), this.job.input.experts);
      // The first model call needs the gateway.
      await this.job.networkReady;
      return await this.loop();
    } catch (error) {
      return this.fail({ name: (error as Error).name || "EngineError", message: errorText(error), isRetryable: false });
    } finally {
      await this.skills.close().catch(() => undefined);
    }
  }

  /** Records a run that cannot begin (bad input, missing key): startRun, then stopRunByError. */
  failAtStart(error: CheckpointError): RunResult {
    this.emit({ type: "startRun", initialCheckpoint: this.checkpoint("init"), inputMessages: this.start.inputMessages });
    return this.fail(error);
  }

  private async loop(): Promise<RunResult> {
    if (this.start.pending) {
      const stopped = await this.runOpenStep(this.openCalls(this.start.pending.results), this.start.pending.results, this.start.pending.answer);
      if (stopped) return stopped;
    }
    for (;;) {
      if (!this.job.budget.take()) {
        const checkpoint = this.checkpoint("stoppedByExceededMaxSteps");
        this.emit({ type: "stopRunByExceededMaxSteps", checkpoint });
        return { status: "stoppedByExceededMaxSteps", text: `maxSteps (${this.job.input.maxSteps}) reached`, checkpoint };
      }
      this.emit({ type: "startGeneration", ...this.conversationSoFar() });
      const outcome = await generateWithRetry({
        model: this.job.model,
        providerName: this.job.input.provider.providerName,
        prompt: toModelPrompt(this.messages),
        tools: this.tools.tools,
        toolChoice: "auto",
        timeoutMs: this.job.input.timeout,
        maxRetries: this.job.input.maxRetries,
        ...(this.job.input.reasoningBudget !== undefined ? { reasoningBudget: this.job.input.reasoningBudget } : {}),
        emit: (body) => this.emit(body),
        ...(this.job.sleep ? { sleep: this.job.sleep } : {}),
      });
      if (!outcome.ok) return this.fail(outcome.error);
      const { generation } = outcome;
      this.usage = addUsage(this.usage, generation.usage);
      this.stepUsage = generation.usage;
      this.messages.push({ type: "expertMessage", id: newId(), contents: generation.parts });
      if (generation.toolCalls.length === 0) return this.complete(generation.text);
      const stopped = await this.runOpenStep(generation.toolCalls, [], undefined);
      if (stopped) return stopped;
    }
  }

  /** The last expert message's tool calls that have no result yet. */
  private openCalls(known: ToolResult[]): GeneratedCall[] {
    const last = this.messages[this.messages.length - 1];
    if (last?.type !== "expertMessage") return [];
    const answered = new Set(known.map((r) => r.id));
    return last.contents
      .filter((p): p is ToolCallPart => p.type === "toolCallPart" && !answered.has(p.toolCallId))
      .map((p) => ({ toolCallId: p.toolCallId, toolName: p.toolName, args: p.args }));
  }

  /**
   * Runs the open tool calls of the current step, then appends the tool message and writes the step's checkpoint.
   * Returns a RunResult when the run ends here (completion, interactive stop), undefined to go on.
   */
  private async runOpenStep(calls: GeneratedCall[], prior: ToolResult[], answer: string | undefined): Promise<RunResult | undefined> {
    const newMessage = this.messages[this.messages.length - 1]!;
    const routed = calls.map((call) => ({ call, route: this.tools.routes.get(call.toolName) }));
    const toolCall = ({ call, route }: (typeof routed)[number]): ToolCall => ({
      id: call.toolCallId,
      skillName: route?.kind === "delegate" ? route.expertKey : (route?.skillName ?? "unknown"),
      toolName: route?.kind === "delegate" ? call.toolName : (route?.toolName ?? call.toolName),
      args: call.args,
    });
    const skillCalls = routed.filter((r) => r.route?.kind !== "delegate" && r.route?.kind !== "interactive");
    const delegateCalls = routed.filter((r) => r.route?.kind === "delegate");
    const interactiveCalls = routed.filter((r) => r.route?.kind === "interactive");
    const results: StepResults = { results: new Map(prior.map((r) => [r.id, r])), completionAccepted: false };

    if (skillCalls.length > 0) {
      this.emit({ type: "callTools", newMessage, toolCalls: skillCalls.map(toolCall), usage: this.stepUsage });
      const resolved = await Promise.all(skillCalls.map((r) => this.callSkill(toolCall(r), r.route)));
      for (const result of resolved) results.results.set(result.id, result);
      this.emit({ type: "resolveToolResults", toolResults: resolved });
      for (const [i, result] of resolved.entries()) {
        const route = skillCalls[i]!.route;
        if (route?.kind === "skill" && route.isBase && route.toolName === "attemptCompletion" && !result.isError && resultText(result) === ATTEMPT_COMPLETION_ACCEPTED) {
          results.completionAccepted = true;
          this.emit({ type: "attemptCompletion", toolResult: result });
        }
      }
    }

    if (interactiveCalls.length > 0) {
      if (answer === undefined) {
        const first = interactiveCalls[0]!;
        this.emit({ type: "callInteractiveTool", newMessage, toolCall: toolCall(first), usage: this.stepUsage });
        const open = [...interactiveCalls, ...delegateCalls].map(toolCall);
        const checkpoint = this.checkpoint("stoppedByInteractiveTool", {
          pendingToolCalls: open,
          partialToolResults: [...results.results.values()],
        });
        this.emit({ type: "stopRunByInteractiveTool", checkpoint });
        return { status: "stoppedByInteractiveTool", text: `waiting for an answer to ${toolCall(first).toolName}`, checkpoint };
      }
      const answered = interactiveCalls.map(
        (r): ToolResult => ({ ...idAndNames(toolCall(r)), result: [{ type: "textPart", text: answer }] }),
      );
      for (const result of answered) results.results.set(result.id, result);
      this.emit({ type: "resolveToolResults", toolResults: answered });
    }

    if (delegateCalls.length > 0) {
      const children = delegateCalls.map((r) => ({
        r,
        runId: newId(),
        expertKey: (r.route as Extract<ToolRoute, { kind: "delegate" }>).expertKey,
        query: queryArg(r.call.args),
      }));
      const delegateTo: DelegateTo[] = children.map((c) => {
        const expert = this.job.input.experts[c.expertKey]!;
        return {
          expert: { key: expert.key, name: expert.name, version: expert.version },
          toolCallId: c.r.call.toolCallId,
          toolName: c.r.call.toolName,
          runId: c.runId,
          query: c.query,
        };
      });
      this.emit({ type: "callDelegate", newMessage, toolCalls: delegateCalls.map(toolCall), usage: this.stepUsage });
      const stopCheckpoint = this.checkpoint("stoppedByDelegate", {
        delegateTo,
        pendingToolCalls: delegateCalls.map(toolCall),
        partialToolResults: [...results.results.values()],
      });
      this.emit({ type: "stopRunByDelegate", checkpoint: stopCheckpoint });
      const outcomes = await Promise.all(
        children.map(async (c) => {
          const call = toolCall(c.r);
          const delegatedBy = { expert: this.expertRef, toolCallId: call.id, toolName: call.toolName, checkpointId: stopCheckpoint.id, runId: this.runId };
          if (!c.query && !this.job.isResumedDelegate(call.id)) {
            const result: ToolResult = { ...idAndNames(call), result: [{ type: "textPart", text: `delegate ${c.expertKey}: the call needs a "query" string` }], isError: true };
            return { result };
          }
          const child = await this.job.startChild({ runId: c.runId, expertKey: c.expertKey, query: c.query, delegatedBy });
          return { result: delegateResult(call, c.expertKey, child), child };
        }),
      );
      const finished = outcomes.filter((o) => o.child?.status !== "stoppedByInteractiveTool");
      for (const { result } of finished) results.results.set(result.id, result);
      if (finished.length > 0) this.emit({ type: "resolveToolResults", toolResults: finished.map((o) => o.result) });
      const waiting = outcomes.flatMap((o, i) => (o.child?.status === "stoppedByInteractiveTool" ? [{ call: toolCall(children[i]!.r), to: delegateTo[i]!, child: o.child }] : []));
      if (waiting.length > 0) {
        // A delegate asks the user: this run stops too, remembering what its other calls returned, so answering the
        // job resumes it, then the waiting delegate from its own checkpoint.
        const checkpoint = this.checkpoint("stoppedByInteractiveTool", {
          delegateTo: waiting.map((w) => ({ ...w.to, checkpointId: w.child.checkpoint.id })),
          pendingToolCalls: waiting.map((w) => w.call),
          partialToolResults: [...results.results.values()],
        });
        this.emit({ type: "stopRunByInteractiveTool", checkpoint });
        return { status: "stoppedByInteractiveTool", text: waiting.map((w) => `${w.to.expert.key}: ${w.child.text}`).join("; "), checkpoint };
      }
    }

    // The tool message answers every call of the expert message, in the order the model made them.
    const allCalls = newMessage.type === "expertMessage" ? newMessage.contents.filter((p): p is ToolCallPart => p.type === "toolCallPart") : [];
    const toolMessage: Message = {
      type: "toolMessage",
      id: newId(),
      contents: allCalls.map((part) => {
        const result = results.results.get(part.toolCallId);
        return {
          type: "toolResultPart" as const,
          toolCallId: part.toolCallId,
          toolName: part.toolName,
          contents: result?.result ?? [{ type: "textPart" as const, text: "no result" }],
          ...(result?.isError || !result ? { isError: true } : {}),
        };
      }),
    };
    this.messages.push(toolMessage);
    this.emit({ type: "finishAllToolCalls", newMessages: [toolMessage] });

    if (results.completionAccepted) return this.finalAnswer();

    const checkpoint = this.checkpoint("proceeding");
    this.stepNumber += 1;
    // The next step starts from the same conversation: it points to the checkpoint just written.
    const nextCheckpoint: CheckpointRef = { ...checkpoint, id: newId(), stepNumber: this.stepNumber, messagesRef: checkpoint.messagesRef };
    this.emitAt(checkpoint.stepNumber, { type: "continueToNextStep", checkpoint, nextCheckpoint });
    return undefined;
  }

  private async callSkill(call: ToolCall, route: ToolRoute | undefined): Promise<ToolResult> {
    const base = idAndNames(call);
    if (route?.kind !== "skill") {
      const names = [...this.tools.routes.keys()].join(", ");
      return { ...base, result: [{ type: "textPart", text: `unknown tool "${call.toolName}"; available tools: ${names}` }], isError: true };
    }
    try {
      const result = await this.skills.call(route.exposed, isRecord(call.args) ? call.args : {});
      return { ...base, result: toolResultContents(result), ...(result.isError ? { isError: true } : {}) };
    } catch (error) {
      return { ...base, result: [{ type: "textPart", text: `${call.toolName} failed: ${errorText(error)}` }], isError: true };
    }
  }

  /** After an accepted attemptCompletion: one more generation, without tool use, for the run's final answer. */
  private async finalAnswer(): Promise<RunResult> {
    const outcome = await generateWithRetry({
      model: this.job.model,
      providerName: this.job.input.provider.providerName,
      prompt: toModelPrompt(this.messages),
      tools: this.tools.tools,
      toolChoice: "none",
      timeoutMs: this.job.input.timeout,
      maxRetries: this.job.input.maxRetries,
      emit: (body) => this.emit(body),
      ...(this.job.sleep ? { sleep: this.job.sleep } : {}),
    });
    if (!outcome.ok) {
      // The work is done and accepted; a failed summary must not turn it into a failed run.
      process.stderr.write(`[perstack engine] final answer generation failed (${outcome.error.message}); completing with the last text\n`);
      return this.complete(this.lastText());
    }
    this.usage = addUsage(this.usage, outcome.generation.usage);
    const parts = outcome.generation.parts.filter((p) => p.type !== "toolCallPart");
    if (parts.length > 0) this.messages.push({ type: "expertMessage", id: newId(), contents: parts });
    return this.complete(outcome.generation.text || this.lastText());
  }

  private complete(text: string): RunResult {
    const checkpoint = this.checkpoint("completed");
    this.emit({ type: "completeRun", checkpoint, text, usage: this.usage });
    return { status: "completed", text, checkpoint };
  }

  private fail(error: CheckpointError): RunResult {
    const checkpoint = this.checkpoint("stoppedByError", { error });
    this.emit({ type: "stopRunByError", checkpoint, error });
    return { status: "stoppedByError", text: `${error.name}: ${error.message}`, checkpoint };
  }

  private lastText(): string {
    for (let i = this.messages.length - 1; i >= 0; i -= 1) {
      const message = this.messages[i]!;
      if (message.type !== "expertMessage") continue;
      const texts = message.contents.filter((p) => p.type === "textPart").map((p) => p.text);
      if (texts.length > 0) return texts.join("\n");
    }
    return "";
  }

  /** A checkpoint the host writes as a file: the whole conversation so far, named by its own id. */
  private checkpoint(status: CheckpointStatus, extra: Partial<CheckpointRef> = {}): CheckpointRef {
    const id = newId();
    this.lastWritten = { checkpointId: id, count: this.messages.length };
    return {
      id,
      jobId: this.job.input.jobId,
      runId: this.runId,
      status,
      stepNumber: this.stepNumber,
      messagesRef: this.lastWritten,
      expert: this.expertRef,
      usage: this.usage,
      metadata: { ...this.job.metadata },
      ...(this.start.delegatedBy ? { delegatedBy: this.start.delegatedBy } : {}),
      ...extra,
    };
  }

  /** startGeneration's conversation: the last checkpoint file's messages and any added since. */
  private conversationSoFar(): { messagesRef: MessagesRef; messagesAfterRef?: Message[] } {
    const ref = this.lastWritten!;
    return this.messages.length > ref.count ? { messagesRef: ref, messagesAfterRef: this.messages.slice(ref.count) } : { messagesRef: ref };
  }

  private emit(body: RunEventBody): void {
    this.emitAt(this.stepNumber, body);
  }

  /** Prints the event; a checkpoint written as a file takes along the messages the host does not have yet. */
  private emitAt(stepNumber: number, body: RunEventBody): void {
    this.job.sink.runEvent(this.runId, this.expertRef.key, stepNumber, this.withNewMessages(body));
  }

  private withNewMessages(body: RunEventBody): RunEventBody {
    const file = body.type === "startRun" ? body.initialCheckpoint : "checkpoint" in body ? body.checkpoint : undefined;
    if (!file || file.messagesRef.count <= this.published) return body;
    const withMessages: CheckpointRef = { ...file, appendMessages: this.messages.slice(this.published, file.messagesRef.count) };
    this.published = file.messagesRef.count;
    return body.type === "startRun" ? { ...body, initialCheckpoint: withMessages } : ({ ...body, checkpoint: withMessages } as RunEventBody);
  }
}

function idAndNames(call: ToolCall): Omit<ToolResult, "result"> {
  return { id: call.id, skillName: call.skillName, toolName: call.toolName };
}

function delegateResult(call: ToolCall, expertKey: string, child: RunResult): ToolResult {
  const base = idAndNames(call);
  switch (child.status) {
    case "completed":
      return { ...base, result: [{ type: "textPart", text: child.text || "(the expert finished without a text answer)" }] };
    default:
      return { ...base, result: [{ type: "textPart", text: `${expertKey} did not finish: ${child.text}` }], isError: true };
  }
}

function queryArg(args: unknown): string {
  return isRecord(args) && typeof args.query === "string" ? args.query : "";
}

function resultText(result: ToolResult): string {
  return result.result.map((p) => (p.type === "textPart" ? p.text : "")).join("");
}

/**
 * An MCP tool result as Perstack tool result contents: text stays text; images and PDFs (what readImageFile and
 * readPdfFile return) are kept inline so the model sees them; other media are described.
 */
export function toolResultContents(result: CallToolResult): ToolResultContent[] {
  const contents = (result.content ?? []).map((item): ToolResultContent => {
    switch (item.type) {
      case "text":
        return { type: "textPart", text: item.text };
      case "image":
        return { type: "imageInlinePart", encodedData: item.data, mimeType: item.mimeType };
      case "audio":
        return { type: "textPart", text: `[audio ${item.mimeType}, ${Math.floor((item.data.length * 3) / 4)} bytes]` };
      case "resource":
        if ("text" in item.resource) return { type: "textPart", text: item.resource.text };
        if (item.resource.mimeType === "application/pdf") {
          return { type: "fileInlinePart", encodedData: item.resource.blob, mimeType: item.resource.mimeType };
        }
        return { type: "textPart", text: `[resource ${item.resource.uri}${item.resource.mimeType ? ` (${item.resource.mimeType})` : ""}]` };
      case "resource_link":
        return { type: "textPart", text: `[resource ${item.uri}]` };
      default:
        return { type: "textPart", text: JSON.stringify(item) };
    }
  });
  if (contents.length === 0 && result.structuredContent !== undefined) {
    return [{ type: "textPart", text: JSON.stringify(result.structuredContent) }];
  }
  return contents.length > 0 ? contents : [{ type: "textPart", text: "" }];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

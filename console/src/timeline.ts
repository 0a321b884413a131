// A job's events folded into what the run view shows: one item per thing a reader looks at (a step, a tool call with
// its result, a stream of model text, a proxy decision, a metered model call), plus running totals. Items are
// replaced, never changed in place, so a view can skip the ones that stayed the same; the list itself only grows,
// which keeps a long run's events linear to fold.
//
// Usage follows `perstack log`: a checkpoint holds its run's usage so far, so a run's share is its latest
// checkpoint's minus the one it started from, plus what the calls after that checkpoint reported.
import { addUsage, isRecord, num, queryOf, str, toolCallOf, toolResultOf, usageOf, zeroUsage, type Fields, type TokenUsage, type ToolCallView, type ToolResultView } from "./event-fields.js";

export type TimelineItem =
  | { kind: "run-start"; key: string; at?: number; runId: string; expertKey: string; query?: string; delegated: boolean }
  | { kind: "step"; key: string; at?: number; stepNumber: number; expertKey: string }
  | { kind: "tool-call"; key: string; at?: number; call: ToolCallView; variant: "tool" | "delegate" | "interactive"; result?: ToolResultView }
  | { kind: "tool-result"; key: string; at?: number; result: ToolResultView }
  | { kind: "text"; key: string; at?: number; stream: "result" | "reasoning"; text: string; done: boolean }
  | { kind: "run-end"; key: string; at?: number; expertKey: string; outcome: string; delegated: boolean; text?: string; error?: string }
  | { kind: "proxy"; key: string; at?: number; action: string; domain: string; port?: number; reason?: string; count: number }
  | { kind: "metered"; key: string; at?: number; model?: string; status?: number; usage?: TokenUsage; latencyMs?: number; refused?: string }
  | { kind: "notice"; key: string; at?: number; tone: "info" | "warn" | "error"; title: string; text?: string; group?: string; count?: number; detail?: unknown };

interface RunUsage {
  start: TokenUsage;
  latest: TokenUsage;
  /** Reported by the run's calls since its latest checkpoint. */
  pending: TokenUsage;
}

const RUN_END_OUTCOME: Readonly<Record<string, string>> = {
  completeRun: "completed",
  stopRunByError: "stoppedByError",
  stopRunByExceededMaxSteps: "stoppedByMaxSteps",
  stopRunByInteractiveTool: "stoppedByInteractiveTool",
  stopRunByDelegate: "stoppedByDelegate",
};

/** Events that only move the run along: nothing to show beyond the step they belong to. */
const QUIET_EVENTS = new Set(["startGeneration", "continueToNextStep"]);

const MAX_GROUPED_LINES = 200;

export class Timeline {
  readonly items: TimelineItem[] = [];
  /** How many events were folded. */
  events = 0;
  blockedRequests = 0;
  meteredRequests = 0;
  meteredUsage: TokenUsage = zeroUsage();
  /** The last answer of a run nobody delegated to: the job's answer. */
  finalAnswer: string | undefined;
  /** The last interactive tool call with no result yet: the question a stoppedByInteractiveTool job waits on. */
  pendingQuestion: ToolCallView | undefined;

  private seq = 0;
  private readonly callItems = new Map<string, number>();
  private readonly resultsSeen = new Set<string>();
  private readonly openText = new Map<string, number>();
  private readonly runs = new Map<string, RunUsage>();
  private readonly delegatedRuns = new Set<string>();
  private lastStep = "";
  private coordinator: string | undefined;

  add(event: Fields): void {
    const type = str(event.type);
    if (type === undefined) return;
    this.events += 1;
    const at = num(event.timestamp);
    const runId = str(event.runId) ?? "";
    const expertKey = str(event.expertKey) ?? "";
    const stepNumber = num(event.stepNumber);
    if (stepNumber !== undefined && expertKey !== "" && type !== "startRun") {
      const step = `${runId}:${stepNumber}`;
      if (step !== this.lastStep) this.push({ kind: "step", key: this.key(), at, stepNumber, expertKey });
      this.lastStep = step;
    }
    this.countUsage(type, runId, event);

    switch (type) {
      case "startRun": {
        const initial = isRecord(event.initialCheckpoint) ? event.initialCheckpoint : {};
        // A delegate's run says who called it; older records do not, but a job's first run is its coordinator's.
        this.coordinator ??= expertKey;
        const delegated = initial.delegatedBy !== undefined || expertKey !== this.coordinator;
        if (delegated) this.delegatedRuns.add(runId);
        this.lastStep = `${runId}:${stepNumber ?? ""}`;
        const query = queryOf(event.inputMessages);
        this.push({ kind: "run-start", key: this.key(), at, runId, expertKey, delegated, ...(query ? { query } : {}) });
        return;
      }
      case "callTools":
      case "callDelegate":
        for (const call of Array.isArray(event.toolCalls) ? event.toolCalls : []) this.addCall(toolCallOf(call, event.newMessage), type === "callDelegate" ? "delegate" : "tool", at);
        return;
      case "callInteractiveTool": {
        const call = toolCallOf(event.toolCall, event.newMessage);
        this.addCall(call, "interactive", at);
        if (call) this.pendingQuestion = call;
        return;
      }
      case "resolveToolResults":
        for (const result of Array.isArray(event.toolResults) ? event.toolResults : []) this.addResult(toolResultOf(result), at);
        return;
      case "attemptCompletion":
        this.addResult(toolResultOf(event.toolResult), at);
        return;
      case "finishToolCall":
      case "finishAllToolCalls":
        for (const message of Array.isArray(event.newMessages) ? event.newMessages : []) {
          if (!isRecord(message) || message.type !== "toolMessage" || !Array.isArray(message.contents)) continue;
          for (const part of message.contents) this.addResult(toolResultOf(part), at);
        }
        return;
      case "startStreamingRunResult":
      case "startStreamingReasoning":
        // A new stream: deltas after this start a new text, whatever came before.
        this.openText.delete(`${runId}:${type === "startStreamingRunResult" ? "result" : "reasoning"}`);
        return;
      case "streamRunResult":
      case "streamReasoning":
        this.appendText(runId, type === "streamRunResult" ? "result" : "reasoning", str(event.delta) ?? "", false, at);
        return;
      case "completeStreamingRunResult":
      case "completeStreamingReasoning":
        this.appendText(runId, type === "completeStreamingRunResult" ? "result" : "reasoning", str(event.text) ?? "", true, at);
        return;
      case "completeRun":
      case "stopRunByError":
      case "stopRunByExceededMaxSteps":
      case "stopRunByInteractiveTool":
      case "stopRunByDelegate": {
        const delegated = this.delegatedRuns.has(runId);
        const text = type === "completeRun" ? (str(event.text) ?? "") : undefined;
        const error = isRecord(event.error) ? `${str(event.error.name) ?? "Error"}: ${str(event.error.message) ?? ""}` : undefined;
        if (text !== undefined && !delegated) {
          this.finalAnswer = text;
          this.pendingQuestion = undefined;
        }
        this.closeText(runId);
        this.push({ kind: "run-end", key: this.key(), at, expertKey, outcome: RUN_END_OUTCOME[type]!, delegated, ...(text !== undefined ? { text } : {}), ...(error ? { error } : {}) });
        return;
      }
      case "retry":
        this.push({ kind: "notice", key: this.key(), at, tone: "warn", title: "Retry", text: str(event.reason) ?? "" });
        return;
      case "proxyAccess":
        this.addProxy(event, at);
        return;
      case "providerUsage": {
        const usage = usageOf(event.usage);
        const refused = str(event.refused);
        const model = str(event.model);
        const status = num(event.status);
        const latencyMs = num(event.latencyMs);
        this.push({ kind: "metered", key: this.key(), at, ...(model ? { model } : {}), ...(status !== undefined ? { status } : {}), ...(usage ? { usage } : {}), ...(latencyMs !== undefined ? { latencyMs } : {}), ...(refused ? { refused } : {}) });
        return;
      }
      case "sandboxWarning": {
        const path = str(event.path);
        this.push({ kind: "notice", key: this.key(), at, tone: "warn", title: `Sandbox warning: ${str(event.code) ?? "?"}`, text: `${str(event.message) ?? ""}${path ? ` (${path})` : ""}` });
        return;
      }
      case "initializeRuntime": {
        const version = str(event.runtimeVersion);
        const model = str(event.model);
        this.push({ kind: "notice", key: this.key(), at, tone: "info", title: `Runtime ${str(event.runtime) ?? "?"}${version ? ` ${version}` : ""}`, ...(model ? { text: `model ${model}` } : {}) });
        return;
      }
      case "skillStarting":
      case "skillConnected":
      case "skillDisconnected":
        this.push({ kind: "notice", key: this.key(), at, tone: "info", title: `Skill ${str(event.skillName) ?? "?"} ${type === "skillStarting" ? "starting" : type === "skillConnected" ? "connected" : "disconnected"}` });
        return;
      case "skillStderr":
        this.addGrouped(`stderr:${str(event.skillName) ?? ""}`, `Skill ${str(event.skillName) ?? "?"}: stderr`, str(event.message) ?? "", "info", at, false);
        return;
      case "dockerBuildProgress":
        this.addGrouped(`build:${str(event.service) ?? ""}`, `Building ${str(event.service) ?? "image"}`, `${str(event.stage) ?? ""} ${str(event.message) ?? ""}`.trim(), "info", at, true);
        return;
      case "dockerContainerStatus":
        this.push({ kind: "notice", key: this.key(), at, tone: "info", title: `Container ${str(event.service) ?? "?"}: ${str(event.status) ?? "?"}` });
        return;
      default:
        if (QUIET_EVENTS.has(type)) return;
        this.push({ kind: "notice", key: this.key(), at, tone: "info", title: type, detail: event });
    }
  }

  /** Tokens the job's runs used so far, by their checkpoints and calls. */
  usage(): TokenUsage {
    let total = zeroUsage();
    for (const run of this.runs.values()) total = addUsage(total, addUsage(addUsage(run.latest, run.start, -1), run.pending));
    return total;
  }

  private key(): string {
    this.seq += 1;
    return `i${this.seq}`;
  }

  private push(item: TimelineItem): void {
    this.items.push(item);
  }

  private countUsage(type: string, runId: string, event: Fields): void {
    const run = this.runs.get(runId) ?? { start: zeroUsage(), latest: zeroUsage(), pending: zeroUsage() };
    this.runs.set(runId, run);
    if (type === "startRun" && isRecord(event.initialCheckpoint)) {
      run.start = usageOf(event.initialCheckpoint.usage) ?? zeroUsage();
      run.latest = run.start;
      run.pending = zeroUsage();
    } else if (isRecord(event.checkpoint) && usageOf(event.checkpoint.usage)) {
      run.latest = usageOf(event.checkpoint.usage)!;
      run.pending = zeroUsage();
    } else if (type === "callTools" || type === "callDelegate" || type === "callInteractiveTool") {
      const usage = usageOf(event.usage);
      if (usage) run.pending = addUsage(run.pending, usage);
    } else if (type === "providerUsage") {
      const usage = usageOf(event.usage);
      this.meteredRequests += 1;
      if (usage) this.meteredUsage = addUsage(this.meteredUsage, usage);
    }
  }

  private addCall(call: ToolCallView | undefined, variant: "tool" | "delegate" | "interactive", at: number | undefined): void {
    if (!call) return;
    if (call.id !== "") this.callItems.set(call.id, this.items.length);
    this.push({ kind: "tool-call", key: this.key(), at, call, variant });
  }

  private addResult(result: ToolResultView | undefined, at: number | undefined): void {
    if (!result) return;
    if (this.pendingQuestion?.id === result.id) this.pendingQuestion = undefined;
    const index = this.callItems.get(result.id);
    const item = index === undefined ? undefined : this.items[index];
    if (item?.kind === "tool-call") {
      // The same result often comes twice (resolveToolResults, then finishToolCall's message): the first stays.
      if (!item.result) this.items[index!] = { ...item, result };
      return;
    }
    if (this.resultsSeen.has(result.id)) return;
    this.resultsSeen.add(result.id);
    this.push({ kind: "tool-result", key: this.key(), at, result });
  }

  private appendText(runId: string, stream: "result" | "reasoning", text: string, done: boolean, at: number | undefined): void {
    const open = `${runId}:${stream}`;
    const index = this.openText.get(open);
    const item = index === undefined ? undefined : this.items[index];
    if (item?.kind === "text") {
      this.items[index!] = { ...item, text: done ? text || item.text : item.text + text, done };
    } else {
      this.openText.set(open, this.items.length);
      this.push({ kind: "text", key: this.key(), at, stream, text, done });
    }
    if (done) this.openText.delete(open);
  }

  /** A run that ended streams no more: its open texts are as complete as they will be. */
  private closeText(runId: string): void {
    for (const stream of ["result", "reasoning"]) {
      const index = this.openText.get(`${runId}:${stream}`);
      const item = index === undefined ? undefined : this.items[index];
      if (item?.kind === "text") this.items[index!] = { ...item, done: true };
      this.openText.delete(`${runId}:${stream}`);
    }
  }

  private addProxy(event: Fields, at: number | undefined): void {
    const action = str(event.action) ?? "?";
    const domain = str(event.domain) ?? "?";
    const port = num(event.port);
    const reason = str(event.reason);
    if (action === "blocked") this.blockedRequests += 1;
    // A burst of requests to one host is one decision to read, with a count.
    const last = this.items[this.items.length - 1];
    if (last?.kind === "proxy" && last.action === action && last.domain === domain && last.port === port && last.reason === reason) {
      this.items[this.items.length - 1] = { ...last, count: last.count + 1 };
      return;
    }
    this.push({ kind: "proxy", key: this.key(), at, action, domain, ...(port !== undefined ? { port } : {}), ...(reason ? { reason } : {}), count: 1 });
  }

  /** Chatty events (build output, a skill's stderr) in a row make one item: the latest line, or all of them. */
  private addGrouped(group: string, title: string, line: string, tone: "info" | "warn", at: number | undefined, latestOnly: boolean): void {
    const last = this.items[this.items.length - 1];
    if (last?.kind === "notice" && last.group === group) {
      const lines = latestOnly ? line : `${last.text ?? ""}\n${line}`.split("\n").slice(-MAX_GROUPED_LINES).join("\n");
      this.items[this.items.length - 1] = { ...last, text: lines, count: (last.count ?? 1) + 1 };
      return;
    }
    this.push({ kind: "notice", key: this.key(), at, tone, title, text: line, group, count: 1 });
  }
}

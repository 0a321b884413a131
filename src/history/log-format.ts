// What `perstack log` prints: Perstack's JSON object (--json), or a readable view of the same data. Pure: the
// caller passes the result through terminalSafe before it reaches a terminal (the text comes from the sandbox).
import type { Checkpoint, Job } from "../model/perstack.js";
import { clip, compactJson, formatClock, formatCount, formatDateTime, formatDuration } from "./display-units.js";
import type { JobLog, LogSummary } from "./job-log.js";
import {
  checkpointHeader,
  errorOf,
  isRecord,
  queryOf,
  textOfParts,
  toolCallsOf,
  toolResultsOf,
  type CheckpointHeader,
  type LoggedEvent,
  type LoggedToolCall,
} from "./logged-event.js";

export interface LogViewOptions {
  /** Full tool arguments, results, texts and errors under each event; messages unclipped. */
  verbose?: boolean;
  /** Show the summary instead of the events. */
  summary?: boolean;
  /** Show the checkpoint's messages instead of the events. */
  messages?: boolean;
}

/**
 * An event in Perstack's shape (model/event-messages.ts expandRecord over the job's checkpoint files); throws
 * UnresolvedMessagesError when its references cannot be resolved.
 */
export type EventExpander = (event: LoggedEvent) => LoggedEvent;

/** Marks where the events go in logJsonChunks. */
const EVENTS = Symbol("events");

/** Expansion failures named one by one; past this they are counted. */
const MAX_EXPANSION_WARNINGS = 20;

/** Perstack's `perstack log --json` object; `warnings` (ours) only when something was skipped. */
export function formatLogJson(log: JobLog, pretty: boolean, expand?: EventExpander): string {
  return [...logJsonChunks(log, pretty, expand)].join("");
}

/**
 * The same text in pieces, one per event: with `expand`, each event's messages are put back in place as it is
 * written, so only one expanded event is in memory at a time. An event that cannot be expanded is written as
 * recorded, and a warning says why.
 */
export function* logJsonChunks(log: JobLog, pretty: boolean, expand?: EventExpander): Generator<string> {
  const problems: string[] = [];
  let unexpanded = 0;
  const shown = (event: LoggedEvent): LoggedEvent => {
    if (!expand) return event;
    try {
      return expand(event);
    } catch (error) {
      unexpanded += 1;
      if (problems.length < MAX_EXPANSION_WARNINGS) problems.push(`event ${event.id} (${event.type}) is shown with its message reference: ${(error as Error).message}`);
      return event;
    }
  };
  const warnings = (): string[] | undefined => {
    const all = [...log.warnings, ...problems];
    if (unexpanded > problems.length) all.push(`${unexpanded - problems.length} more event(s) are shown with their message references`);
    return all.length > 0 ? all : undefined;
  };
  const entries: Array<[string, () => unknown]> = [
    ["job", () => log.job],
    ["events", () => EVENTS],
    ["summary", () => log.summary],
    ["checkpoint", () => log.checkpoint],
    ["checkpoints", () => log.checkpoints],
    ["isLatestJob", () => (log.isLatestJob ? true : undefined)],
    ["storagePath", () => log.storagePath],
    ["totalEventsBeforeLimit", () => log.totalEventsBeforeLimit],
    ["matchedAfterPagination", () => log.matchedAfterPagination],
    ["warnings", warnings],
  ];
  // JSON.stringify(data, null, 2)'s layout, written a piece at a time.
  const newline = pretty ? "\n" : "";
  const nested = (json: string, depth: number) => (pretty ? json.replace(/\n/g, `\n${"  ".repeat(depth)}`) : json);
  const stringify = (value: unknown) => (pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value));
  yield "{";
  let first = true;
  for (const [key, valueOf] of entries) {
    const value = valueOf();
    if (value === undefined) continue;
    yield `${first ? "" : ","}${newline}${pretty ? "  " : ""}${JSON.stringify(key)}:${pretty ? " " : ""}`;
    first = false;
    if (value !== EVENTS) {
      yield nested(stringify(value), 1);
      continue;
    }
    if (log.events.length === 0) {
      yield "[]";
      continue;
    }
    yield "[";
    for (const [i, event] of log.events.entries()) yield `${i > 0 ? "," : ""}${newline}${pretty ? "    " : ""}${nested(stringify(shown(event)), 2)}`;
    yield `${newline}${pretty ? "  " : ""}]`;
  }
  yield `${newline}}`;
}

const LINE = 140;
const DETAIL_INDENT = "      ";

function indent(text: string, prefix = DETAIL_INDENT): string[] {
  return text.split("\n").map((line) => `${prefix}${line}`);
}

function prettyJson(value: unknown): string {
  try {
    return JSON.stringify(value ?? {}, null, 2) ?? "";
  } catch {
    return "?";
  }
}

/** Under the one-line view, the whole text, when the line had to cut or flatten it. */
function fullText(value: string): string[] {
  return clip(value, LINE) === value ? [] : indent(value);
}

function callName(call: LoggedToolCall): string {
  return call.normalizedName !== call.toolName ? `${call.toolName} (${call.normalizedName})` : call.toolName;
}

function checkpointNote(event: LoggedEvent): string {
  const checkpoint = checkpointHeader(event.checkpoint);
  return checkpoint ? ` · checkpoint ${checkpoint.id}` : "";
}

const text = (value: unknown): string => (typeof value === "string" ? value : "");

/** The one-line gist of an event, and with `verbose` the full details under it. */
export function describeEvent(event: LoggedEvent, verbose = false): { line: string; details: string[] } {
  const details: string[] = [];
  let line: string;
  switch (event.type) {
    case "startRun": {
      const query = queryOf(event.inputMessages);
      line = query !== undefined ? `query: ${query}` : "resumed";
      if (verbose && query) details.push(...fullText(`query: ${query}`));
      break;
    }
    case "retry":
      line = text(event.reason);
      if (verbose) details.push(...fullText(text(event.reason)));
      break;
    case "callTools":
    case "callInteractiveTool": {
      const calls = toolCallsOf(event);
      line = calls.map((call) => `${callName(call)} ${compactJson(call.args)}`).join("; ");
      if (verbose) for (const call of calls) details.push(`${DETAIL_INDENT}${call.skillName ? `${call.skillName}/` : ""}${callName(call)}`, ...indent(prettyJson(call.args), `${DETAIL_INDENT}  `));
      break;
    }
    case "callDelegate": {
      const calls = toolCallsOf(event);
      line = calls.map((call) => `→ ${call.toolName} ${isRecord(call.args) && typeof call.args.query === "string" ? JSON.stringify(call.args.query) : compactJson(call.args)}`).join("; ");
      if (verbose) for (const call of calls) details.push(`${DETAIL_INDENT}${call.toolName}`, ...indent(prettyJson(call.args), `${DETAIL_INDENT}  `));
      break;
    }
    case "resolveToolResults":
    case "attemptCompletion": {
      const results = toolResultsOf(event);
      line = results.map((r) => `${r.isError ? "✗" : "✓"} ${r.toolName}: ${r.text}`).join("; ");
      if (verbose) for (const r of results) details.push(`${DETAIL_INDENT}${r.isError ? "✗" : "✓"} ${r.toolName}`, ...indent(r.text, `${DETAIL_INDENT}  `));
      break;
    }
    case "continueToNextStep":
      line = checkpointNote(event).slice(3);
      break;
    case "completeRun":
      line = `${text(event.text)}${checkpointNote(event)}`;
      if (verbose) details.push(...fullText(line));
      break;
    case "stopRunByError": {
      const error = errorOf(event.error);
      line = `${error ? `${error.name}: ${error.message}` : "error"}${checkpointNote(event)}`;
      if (verbose && error) details.push(...indent(`${error.name}${error.statusCode !== undefined ? ` (status ${error.statusCode})` : ""}: ${error.message}`));
      break;
    }
    case "stopRunByDelegate": {
      const waitsFor = checkpointHeader(event.checkpoint)?.delegateTo ?? [];
      line = `waits for ${waitsFor.length > 0 ? waitsFor.join(", ") : "its delegates"}${checkpointNote(event)}`;
      break;
    }
    case "stopRunByInteractiveTool": {
      const pending = checkpointHeader(event.checkpoint)?.pendingToolCalls ?? [];
      line = `waits for an answer${pending.length > 0 ? ` to ${pending.join(", ")}` : ""}${checkpointNote(event)}`;
      break;
    }
    case "stopRunByExceededMaxSteps":
      line = `maxSteps reached${checkpointNote(event)}`;
      break;
    case "streamReasoning":
    case "streamRunResult":
      line = text(event.delta);
      break;
    case "completeStreamingReasoning":
    case "completeStreamingRunResult":
      line = text(event.text);
      if (verbose) details.push(...fullText(line));
      break;
    case "initializeRuntime":
      line = [text(event.runtime), text(event.runtimeVersion), event.model ? `model ${text(event.model)}` : ""].filter(Boolean).join(" ");
      break;
    case "skillStarting":
    case "skillConnected":
    case "skillDisconnected":
      line = text(event.skillName);
      break;
    case "skillStderr":
      line = `${text(event.skillName)}: ${text(event.message)}`;
      if (verbose) details.push(...fullText(line));
      break;
    case "dockerBuildProgress":
      line = `${text(event.service)}: ${text(event.message)}`;
      break;
    case "dockerContainerStatus":
      line = `${text(event.service)} ${text(event.status)}`;
      break;
    case "proxyAccess":
      line = `${text(event.action)} ${text(event.domain)}:${typeof event.port === "number" ? event.port : "?"}${event.reason ? ` (${text(event.reason)})` : ""}`;
      break;
    case "sandboxWarning":
      line = `${text(event.code)}: ${text(event.message)}${event.path ? ` (${text(event.path)})` : ""}`;
      if (verbose) details.push(...fullText(line));
      break;
    case "startGeneration":
    case "finishToolCall":
    case "finishAllToolCalls":
    case "startStreamingReasoning":
    case "startStreamingRunResult":
      line = "";
      break;
    default: {
      // A type this version does not know: show what it carries.
      const { type: _type, id: _id, timestamp: _timestamp, jobId: _jobId, runId: _runId, expertKey: _expertKey, stepNumber: _stepNumber, ...rest } = event;
      line = compactJson(rest);
      if (verbose && clip(line, LINE) !== line) details.push(...indent(prettyJson(rest)));
    }
  }
  return { line: clip(line, LINE), details };
}

function jobHeader(job: Job): string {
  const parts = [
    `Job ${job.id}`,
    job.coordinatorExpertKey,
    job.runtime,
    job.status,
    `${job.totalSteps} step${job.totalSteps === 1 ? "" : "s"}`,
    `${formatCount(job.usage.totalTokens)} tokens`,
    `started ${formatDateTime(job.startedAt)}`,
  ];
  if (job.finishedAt !== undefined) parts.push(formatDuration(job.finishedAt - job.startedAt));
  return parts.join(" · ");
}

function checkpointLine(checkpoint: CheckpointHeader): string {
  const parts = [`Checkpoint ${checkpoint.id}`, `run ${checkpoint.runId}`, checkpoint.expertKey, `step ${checkpoint.stepNumber}`, checkpoint.status];
  if (checkpoint.pendingToolCalls) parts.push(`waiting on ${checkpoint.pendingToolCalls.join(", ")}`);
  if (checkpoint.error) parts.push(`${checkpoint.error.name}: ${clip(checkpoint.error.message, 100)}`);
  return parts.join(" · ");
}

const ROLE: Record<string, string> = { instructionMessage: "instruction", userMessage: "user", expertMessage: "expert", toolMessage: "tool" };

/** A message's content as text: texts, tool calls (name and args), tool results (✓/✗ name: text). */
function messageText(message: unknown): string {
  if (!isRecord(message) || !Array.isArray(message.contents)) return "";
  return message.contents
    .map((part) => {
      if (!isRecord(part)) return "";
      if (part.type === "toolCallPart") return `→ ${text(part.toolName)} ${compactJson(part.args)}`;
      if (part.type === "toolResultPart") return `${part.isError === true ? "✗" : "✓"} ${text(part.toolName)}: ${textOfParts(part.contents)}`;
      if (part.type === "thinkingPart") return `(thinking) ${text(part.thinking)}`;
      return text(part.text);
    })
    .filter(Boolean)
    .join("\n");
}

function messageLines(checkpoint: Checkpoint, verbose: boolean): string[] {
  const lines = [`Messages (${checkpoint.messages.length}):`];
  checkpoint.messages.forEach((message, i) => {
    const role = (ROLE[message.type] ?? message.type).padEnd(11);
    const body = messageText(message);
    if (verbose) {
      const [first = "", ...rest] = body.split("\n");
      lines.push(`  ${String(i + 1).padStart(3)}  ${role} ${first}`, ...rest.map((line) => `${" ".repeat(19)}${line}`));
    } else {
      lines.push(`  ${String(i + 1).padStart(3)}  ${role} ${clip(body, LINE)}`);
    }
  });
  return lines;
}

function summaryLines(log: JobLog): string[] {
  const s: LogSummary = log.summary;
  const u = s.usage;
  const calls = Object.entries(s.toolCalls).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const totalCalls = calls.reduce((sum, [, n]) => sum + n, 0);
  const e = s.errors;
  const lines = [
    s.scope === "job" ? "Summary of the job:" : `Summary of run ${s.runId ?? "?"}:`,
    `  status       ${s.status}`,
    `  steps        ${s.steps}`,
    `  tokens       ${formatCount(u.totalTokens)} (in ${formatCount(u.inputTokens)} · out ${formatCount(u.outputTokens)} · cached ${formatCount(u.cachedInputTokens)} · reasoning ${formatCount(u.reasoningTokens)})`,
    `  duration     ${s.durationMs !== undefined ? formatDuration(s.durationMs) : "not finished"}`,
    `  runs         ${s.runs} · ${formatCount(s.eventsInScope)} events`,
    `  tool calls   ${totalCalls}${calls.length > 0 ? `: ${calls.map(([name, n]) => `${name} ${n}`).join(" · ")}` : ""}`,
    `  errors       ${e.stoppedByError} stopped by error · ${e.retries} retr${e.retries === 1 ? "y" : "ies"} · ${e.failedToolResults} failed tool result${e.failedToolResults === 1 ? "" : "s"} · ${e.sandboxWarnings} sandbox warning${e.sandboxWarnings === 1 ? "" : "s"}`,
  ];
  // The JSON keeps more; on a terminal a few say what kind of trouble it was.
  const listedErrors = e.details.slice(0, 5);
  for (const detail of listedErrors) {
    const where = [detail.expertKey, detail.stepNumber !== undefined ? `step ${detail.stepNumber}` : undefined].filter(Boolean).join(" ");
    lines.push(`                 ${formatClock(detail.timestamp)} ${where ? `${where} ` : ""}${detail.type}: ${clip(detail.message, 110)}`);
  }
  const more = e.stoppedByError + e.retries + e.sandboxWarnings - listedErrors.length;
  if (more > 0) lines.push(`                 … ${more} more: perstack log --errors`);
  const blocked = s.blockedEgress;
  lines.push(`  egress       ${blocked.count === 0 ? "nothing blocked" : `${blocked.count} blocked: ${blocked.domains.join(", ")}`}`);
  lines.push(`  checkpoints  ${s.checkpoints}${s.latestCheckpointId ? `, latest ${s.latestCheckpointId}` : ""}`);
  const listed = log.checkpoints ?? [];
  const shown = listed.slice(-10);
  if (listed.length > shown.length) lines.push(`                 … ${listed.length - shown.length} earlier (perstack log --json lists all)`);
  for (const checkpoint of shown) lines.push(`                 ${checkpoint.id}  ${checkpoint.expertKey} step ${checkpoint.stepNumber} ${checkpoint.status}`);
  if (s.malformedLines > 0) lines.push(`  skipped      ${s.malformedLines} line(s) that are not events`);
  return lines;
}

function eventLines(log: JobLog, verbose: boolean): string[] {
  // A skill's events carry only their run's id: name the run's expert, as its run events do.
  const runExperts = new Map<string, string>();
  for (const event of log.events) if (event.expertKey !== undefined) runExperts.set(event.runId, event.expertKey);
  const who = (event: LoggedEvent) => event.expertKey ?? (event.type.startsWith("skill") ? runExperts.get(event.runId) : undefined) ?? "-";
  const whoWidth = Math.min(20, Math.max(1, ...log.events.map((event) => who(event).length)));
  const typeWidth = Math.max(1, ...log.events.map((event) => event.type.length));
  const step = (event: LoggedEvent) => (event.stepNumber !== undefined ? `#${event.stepNumber}` : "-");
  const stepWidth = Math.max(3, ...log.events.map((event) => step(event).length));
  const lines: string[] = [];
  for (const event of log.events) {
    const { line, details } = describeEvent(event, verbose);
    lines.push(`${formatClock(event.timestamp)}  ${step(event).padStart(stepWidth)}  ${clip(who(event), 20).padEnd(whoWidth)}  ${event.type.padEnd(typeWidth)}  ${line}`.trimEnd());
    lines.push(...details);
  }
  return lines;
}

function pagingNote(log: JobLog): string | undefined {
  const total = log.totalEventsBeforeLimit;
  const shown = log.matchedAfterPagination;
  if (total === 0) return log.summary.eventsInScope === 0 ? "no events recorded" : `no events match (of ${formatCount(log.summary.eventsInScope)})`;
  if (shown === 0) return `${formatCount(total)} events match; --offset is past them`;
  const context = log.events.length - shown;
  const contextNote = context > 0 ? ` (+${context} around them)` : "";
  if (shown === total) return `${formatCount(total)} event${total === 1 ? "" : "s"}${contextNote}`;
  return `showing ${formatCount(shown)} of ${formatCount(total)} matching events${contextNote}: page with --offset and --take, or --take 0 for all`;
}

/** The readable view: the job, the checkpoint, then the summary, the messages or the events. */
export function formatLogText(log: JobLog, options: LogViewOptions = {}): string {
  const lines = [jobHeader(log.job)];
  if (log.isLatestJob) lines.push("(the latest job: pick another with --job <jobId>; list them with `perstack jobs`)");
  if (log.checkpoint) {
    const header = checkpointHeader(log.checkpoint);
    if (header) lines.push(checkpointLine(header));
  }
  lines.push("");
  if (options.summary) {
    lines.push(...summaryLines(log));
  } else if (options.messages && log.checkpoint) {
    lines.push(...messageLines(log.checkpoint, Boolean(options.verbose)));
  } else {
    lines.push(...eventLines(log, Boolean(options.verbose)));
    const note = pagingNote(log);
    if (note) lines.push(...(log.events.length > 0 ? [""] : []), note);
  }
  return lines.join("\n");
}

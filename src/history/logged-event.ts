// Events as read back from events.jsonl. The host wrote them, but from what a hostile sandbox printed, and the file
// may be cut short or edited: only the envelope (type, id, timestamp, runId) is checked per line, and every other
// field is read through these accessors, which answer undefined or [] for a shape they do not recognise instead
// of throwing. Checking each event against its full schema would cost as much again as parsing it.
//
// Checkpoints and startGeneration's conversation name their messages by reference (MessagesRef): what is read here
// never needs the messages; `perstack log --json` puts them back (history/checkpoint-messages.ts).
import { parseMessagesRef } from "../model/event-messages.js";

export interface LoggedEvent {
  type: string;
  id: string;
  timestamp: number;
  runId: string;
  jobId?: string;
  expertKey?: string;
  stepNumber?: number;
  readonly [field: string]: unknown;
}

type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

/** The event, if the value has the envelope every event carries; stepNumber is dropped when it is not a number. */
export function asLoggedEvent(value: unknown): LoggedEvent | undefined {
  if (!isRecord(value)) return undefined;
  if (typeof value.type !== "string" || value.type === "") return undefined;
  if (typeof value.id !== "string" || typeof value.runId !== "string") return undefined;
  if (num(value.timestamp) === undefined) return undefined;
  if (value.stepNumber !== undefined && num(value.stepNumber) === undefined) return undefined;
  return value as LoggedEvent;
}

export interface LoggedUsage {
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  cachedInputTokens: number;
  totalTokens: number;
}

export function usageOf(value: unknown): LoggedUsage | undefined {
  if (!isRecord(value)) return undefined;
  const inputTokens = num(value.inputTokens) ?? 0;
  const outputTokens = num(value.outputTokens) ?? 0;
  return {
    inputTokens,
    outputTokens,
    reasoningTokens: num(value.reasoningTokens) ?? 0,
    cachedInputTokens: num(value.cachedInputTokens) ?? 0,
    totalTokens: num(value.totalTokens) ?? inputTokens + outputTokens,
  };
}

export interface LoggedToolCall {
  toolName: string;
  skillName: string;
  args: unknown;
  /** The base-skill name of a runtime's built-in tool (ToolCall.normalized), else the tool's own name. */
  normalizedName: string;
}

function toolCall(value: unknown): LoggedToolCall | undefined {
  if (!isRecord(value)) return undefined;
  const toolName = str(value.toolName);
  if (toolName === undefined) return undefined;
  const normalized = isRecord(value.normalized) ? str(value.normalized.toolName) : undefined;
  return { toolName, skillName: str(value.skillName) ?? "", args: value.args, normalizedName: normalized ?? toolName };
}

/** The tool calls an event makes: callTools and callDelegate (toolCalls), callInteractiveTool (toolCall). */
export function toolCallsOf(event: LoggedEvent): LoggedToolCall[] {
  const calls = Array.isArray(event.toolCalls) ? event.toolCalls : event.toolCall !== undefined ? [event.toolCall] : [];
  return calls.map(toolCall).filter((call): call is LoggedToolCall => call !== undefined);
}

/** The text of content parts (textPart.text), others named by their mime type. */
export function textOfParts(parts: unknown): string {
  if (!Array.isArray(parts)) return "";
  return parts
    .map((part) => {
      if (!isRecord(part)) return "";
      if (typeof part.text === "string") return part.text;
      if (typeof part.thinking === "string") return part.thinking;
      if (typeof part.mimeType === "string") return `[${part.mimeType}]`;
      return "";
    })
    .filter((text) => text !== "")
    .join(" ");
}

export interface LoggedToolResult {
  toolName: string;
  text: string;
  isError: boolean;
}

/** resolveToolResults (toolResults) and attemptCompletion (toolResult). */
export function toolResultsOf(event: LoggedEvent): LoggedToolResult[] {
  const results = Array.isArray(event.toolResults) ? event.toolResults : event.toolResult !== undefined ? [event.toolResult] : [];
  const out: LoggedToolResult[] = [];
  for (const result of results) {
    if (!isRecord(result)) continue;
    out.push({ toolName: str(result.toolName) ?? "?", text: textOfParts(result.result ?? result.contents), isError: result.isError === true });
  }
  return out;
}

export interface LoggedError {
  name: string;
  message: string;
  statusCode?: number;
}

export function errorOf(value: unknown): LoggedError | undefined {
  if (!isRecord(value)) return undefined;
  const statusCode = num(value.statusCode);
  return { name: str(value.name) ?? "Error", message: str(value.message) ?? "", ...(statusCode !== undefined ? { statusCode } : {}) };
}

/** A checkpoint without its messages: what lists and summaries show. */
export interface CheckpointHeader {
  id: string;
  runId: string;
  status: string;
  stepNumber: number;
  expertKey: string;
  usage?: LoggedUsage;
  error?: LoggedError;
  /** Expert keys of the delegates a stoppedByDelegate checkpoint waits for. */
  delegateTo?: string[];
  /** Tool names of the calls still waiting for a result (an interactive answer, a delegate). */
  pendingToolCalls?: string[];
  messageCount: number;
}

export function checkpointHeader(value: unknown): CheckpointHeader | undefined {
  if (!isRecord(value)) return undefined;
  const id = str(value.id);
  if (id === undefined) return undefined;
  const usage = usageOf(value.usage);
  const error = errorOf(value.error);
  const delegateTo = Array.isArray(value.delegateTo)
    ? value.delegateTo.map((d) => (isRecord(d) && isRecord(d.expert) ? str(d.expert.key) : undefined)).filter((key): key is string => key !== undefined)
    : undefined;
  const pending = Array.isArray(value.pendingToolCalls)
    ? value.pendingToolCalls.map((call) => (isRecord(call) ? str(call.toolName) : undefined)).filter((name): name is string => name !== undefined)
    : undefined;
  return {
    id,
    runId: str(value.runId) ?? "",
    status: str(value.status) ?? "unknown",
    stepNumber: num(value.stepNumber) ?? 0,
    expertKey: isRecord(value.expert) ? (str(value.expert.key) ?? "") : "",
    ...(usage ? { usage } : {}),
    ...(error ? { error } : {}),
    ...(delegateTo && delegateTo.length > 0 ? { delegateTo } : {}),
    ...(pending && pending.length > 0 ? { pendingToolCalls: pending } : {}),
    messageCount: Array.isArray(value.messages) ? value.messages.length : (parseMessagesRef(value.messagesRef)?.count ?? 0),
  };
}

/**
 * The checkpoint an event's collector saved as a file: its `checkpoint`, or startRun's `initialCheckpoint` when that
 * names its own messages (a run's start is a file since events refer to checkpoints; before, it was not).
 */
export function savedCheckpointOf(event: LoggedEvent): unknown {
  if (event.checkpoint !== undefined) return event.checkpoint;
  if (event.type !== "startRun" || !isRecord(event.initialCheckpoint)) return undefined;
  const initial = event.initialCheckpoint;
  return parseMessagesRef(initial.messagesRef)?.checkpointId === initial.id ? initial : undefined;
}

/** The text of the first user message among `messages` (a run's query). */
export function queryOf(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  const user = messages.find((m) => isRecord(m) && m.type === "userMessage");
  return isRecord(user) ? textOfParts(user.contents) : undefined;
}

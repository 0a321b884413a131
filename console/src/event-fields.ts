// Fields of run events and checkpoints, read one at a time. The host recorded them from what a sandbox printed, so
// any field may be missing or of another shape: each accessor answers undefined (or an empty value) for what it does
// not recognise instead of throwing, and everything it returns is plain data for text nodes, never markup.

export type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
export const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  cachedInputTokens: number;
  totalTokens: number;
}

export const zeroUsage = (): TokenUsage => ({ inputTokens: 0, outputTokens: 0, reasoningTokens: 0, cachedInputTokens: 0, totalTokens: 0 });

export function usageOf(value: unknown): TokenUsage | undefined {
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

/** a + sign·b, field by field. */
export function addUsage(a: TokenUsage, b: TokenUsage, sign = 1): TokenUsage {
  return {
    inputTokens: a.inputTokens + sign * b.inputTokens,
    outputTokens: a.outputTokens + sign * b.outputTokens,
    reasoningTokens: a.reasoningTokens + sign * b.reasoningTokens,
    cachedInputTokens: a.cachedInputTokens + sign * b.cachedInputTokens,
    totalTokens: a.totalTokens + sign * b.totalTokens,
  };
}

export interface ToolCallView {
  id: string;
  toolName: string;
  skillName: string;
  /** The base-skill name of a runtime's built-in tool (ToolCall.normalized), else the tool's own name. */
  normalizedName: string;
  args: unknown;
}

/**
 * A tool call as an event holds it. events.jsonl records a call whose args are its message's toolCallPart's without
 * them (src/model/recorded-tool-calls.ts): they are then taken from `message`, the event's newMessage.
 */
export function toolCallOf(value: unknown, message?: unknown): ToolCallView | undefined {
  if (!isRecord(value)) return undefined;
  const toolName = str(value.toolName);
  if (toolName === undefined) return undefined;
  const normalized = isRecord(value.normalized) ? str(value.normalized.toolName) : undefined;
  const id = str(value.id) ?? str(value.toolCallId) ?? "";
  const args = Object.hasOwn(value, "args") ? value.args : argsInMessage(message, id);
  return { id, toolName, skillName: str(value.skillName) ?? "", normalizedName: normalized ?? toolName, args };
}

function argsInMessage(message: unknown, toolCallId: string): unknown {
  if (!isRecord(message) || !Array.isArray(message.contents)) return undefined;
  const part = message.contents.find((p: unknown) => isRecord(p) && p.type === "toolCallPart" && p.toolCallId === toolCallId);
  return isRecord(part) ? part.args : undefined;
}

export interface ToolResultView {
  id: string;
  toolName: string;
  text: string;
  isError: boolean;
}

/** A ToolResult (`result` parts) or a message's toolResultPart (`contents` parts). */
export function toolResultOf(value: unknown): ToolResultView | undefined {
  if (!isRecord(value)) return undefined;
  const id = str(value.id) ?? str(value.toolCallId);
  if (id === undefined) return undefined;
  return { id, toolName: str(value.toolName) ?? "?", text: textOfParts(value.result ?? value.contents), isError: value.isError === true };
}

/** Text and thinking parts as their text; binary parts by their type and size (never shown as what they are). */
export function textOfParts(parts: unknown): string {
  if (typeof parts === "string") return parts;
  if (!Array.isArray(parts)) return "";
  return parts
    .map((part) => {
      if (!isRecord(part)) return "";
      if (typeof part.text === "string") return part.text;
      if (typeof part.thinking === "string") return part.thinking;
      if (typeof part.mimeType === "string") return `[${part.mimeType}${typeof part.encodedData === "string" ? `, ${Math.round((part.encodedData.length * 3) / 4 / 1024)} KiB` : ""}]`;
      return "";
    })
    .filter((text) => text !== "")
    .join("\n");
}

/** A value as indented JSON, for <pre>. */
export function prettyJson(value: unknown): string {
  if (value === undefined) return "{}";
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The text of the first user message among `messages` (a run's query). */
export function queryOf(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  const user = messages.find((message) => isRecord(message) && message.type === "userMessage");
  return isRecord(user) ? textOfParts(user.contents) : undefined;
}

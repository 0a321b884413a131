// How the events that call tools (callTools, callDelegate, callInteractiveTool) are recorded. Each tool call repeats
// the args of its message's toolCallPart, and a runtime's built-in tool adds a normalized form whose args are mostly
// some of those args under other names: a file the agent writes would be in events.jsonl three times. Recorded, a call
// whose args are its part's has no `args` (they are read back from the part), and a normalized form whose args are
// all args by other names has `argsFrom`, {its name: the arg's name}, instead of `args`. Read back, both are whole
// again, to the same JSON text. Pure; what is read back is checked, as a file may have been changed by anyone.
import { sameJson } from "./same-json.js";
import { UnresolvedMessagesError } from "./unresolved-error.js";
import type { Message, ToolCall, ToolCallPart } from "./perstack.js";

type Record_ = Record<string, unknown>;

const CALL_TYPES = new Set(["callTools", "callDelegate", "callInteractiveTool"]);

/** The event with its tool calls recorded by what they add to their message; the event itself if none repeats. */
export function compactToolCalls<E extends { type: string }>(event: E): E {
  if (!CALL_TYPES.has(event.type)) return event;
  const { newMessage } = event as unknown as { newMessage?: Message };
  const parts = partsById(newMessage);
  if (parts.size === 0) return event;
  if (event.type === "callInteractiveTool") {
    const { toolCall } = event as unknown as { toolCall: ToolCall };
    const compact = compactCall(toolCall, parts.get(toolCall.id));
    return compact === toolCall ? event : { ...event, toolCall: compact };
  }
  const { toolCalls } = event as unknown as { toolCalls: ToolCall[] };
  if (!Array.isArray(toolCalls)) return event;
  const compact = toolCalls.map((call) => compactCall(call, parts.get(call.id)));
  return compact.every((call, i) => call === toolCalls[i]) ? event : { ...event, toolCalls: compact };
}

/** A recorded event's tool calls whole again; throws UnresolvedMessagesError for a shortcut that does not resolve. */
export function wholeToolCalls(record: Record_): Record_ {
  if (typeof record.type !== "string" || !CALL_TYPES.has(record.type)) return record;
  const field = record.type === "callInteractiveTool" ? "toolCall" : "toolCalls";
  const value = record[field];
  const calls = field === "toolCall" ? [value] : value;
  if (!Array.isArray(calls) || !calls.some(isShortened)) return record;
  const parts = partsById(record.newMessage as Message | undefined);
  const whole = calls.map((call, i) => (isShortened(call) ? wholeCall(call as Record_, parts, field === "toolCall" ? field : `${field}[${i}]`) : call));
  return { ...record, [field]: field === "toolCall" ? whole[0] : whole };
}

function partsById(message: Message | undefined): Map<string, ToolCallPart> {
  const parts = new Map<string, ToolCallPart>();
  if (typeof message !== "object" || message === null || !Array.isArray(message.contents)) return parts;
  for (const part of message.contents as unknown[]) {
    if (isRecord(part) && part.type === "toolCallPart" && typeof part.toolCallId === "string" && !parts.has(part.toolCallId)) parts.set(part.toolCallId, part as unknown as ToolCallPart);
  }
  return parts;
}

function compactCall(call: ToolCall, part: ToolCallPart | undefined): ToolCall {
  // Read back, args go right after toolName (wholeCall): only a call that has them there is recorded without them.
  const keys = Object.keys(call);
  const sameArgs = part !== undefined && call.args !== undefined && keys[keys.indexOf("toolName") + 1] === "args" && part.toolName === call.toolName && sameJson(part.args, call.args, MAX_DEPTH);
  const normalizedKeys = call.normalized ? Object.keys(call.normalized).join() : "";
  const argsFrom = call.normalized && normalizedKeys === "toolName,args" ? renamedArgs(call.normalized.args, call.args) : undefined;
  if (!sameArgs && !argsFrom) return call;
  const { args, normalized } = call;
  const out: Record_ = {};
  // Key order as the call had it, so that the whole call reads back to the same text.
  for (const key of keys) {
    if (key === "args") {
      if (!sameArgs) out.args = args;
    } else if (key === "normalized" && normalized) {
      out.normalized = argsFrom ? { toolName: normalized.toolName, argsFrom } : normalized;
    } else {
      setOwn(out, key, (call as unknown as Record_)[key]);
    }
  }
  return out as unknown as ToolCall;
}

/** {normalized name: arg name} when every normalized arg is one of `args` under another name; else undefined. */
function renamedArgs(normalized: Record_, args: unknown): Record<string, string> | undefined {
  if (!isRecord(args) || !isRecord(normalized) || Object.keys(normalized).length === 0) return undefined;
  const names = Object.keys(args);
  const from: Record<string, string> = {};
  for (const key of Object.keys(normalized)) {
    // A key that assignment would not make an own property cannot be read back as one.
    if (key === "__proto__") return undefined;
    const value = normalized[key];
    const name = names.find((candidate) => candidate !== "__proto__" && sameJson(args[candidate], value, MAX_DEPTH));
    if (name === undefined) return undefined;
    from[key] = name;
  }
  return from;
}

function isShortened(call: unknown): boolean {
  if (!isRecord(call)) return false;
  return !Object.hasOwn(call, "args") || (isRecord(call.normalized) && Object.hasOwn(call.normalized, "argsFrom"));
}

function wholeCall(call: Record_, parts: Map<string, ToolCallPart>, field: string): Record_ {
  let args = call.args;
  if (!Object.hasOwn(call, "args")) {
    const part = typeof call.id === "string" ? parts.get(call.id) : undefined;
    if (!part) throw new UnresolvedMessagesError(`${field}.args: no toolCallPart ${JSON.stringify(String(call.id).slice(0, 80))} in newMessage to take them from`);
    args = part.args;
  }
  const out: Record_ = {};
  for (const key of Object.keys(call)) {
    setOwn(out, key, key === "normalized" ? wholeNormalized(call.normalized, args, `${field}.normalized`) : call[key]);
    // args go where they were: right after toolName, as ToolCall has them (a recorded call left them out there).
    if (key === "toolName" && !Object.hasOwn(call, "args")) out.args = args;
  }
  if (!Object.hasOwn(out, "args")) out.args = args;
  return out;
}

function wholeNormalized(normalized: unknown, args: unknown, field: string): unknown {
  if (!isRecord(normalized) || !Object.hasOwn(normalized, "argsFrom")) return normalized;
  const { argsFrom } = normalized;
  if (Object.hasOwn(normalized, "args")) throw new UnresolvedMessagesError(`${field}: both args and argsFrom`);
  if (!isRecord(argsFrom) || !isRecord(args)) throw new UnresolvedMessagesError(`${field}.argsFrom: not names of the call's args`);
  const whole: Record_ = {};
  for (const [key, name] of Object.entries(argsFrom)) {
    if (key === "__proto__" || typeof name !== "string" || !Object.hasOwn(args, name)) {
      throw new UnresolvedMessagesError(`${field}.argsFrom.${key.slice(0, 80)}: ${JSON.stringify(String(name).slice(0, 80))} is not one of the call's args`);
    }
    whole[key] = args[name];
  }
  const out: Record_ = {};
  for (const key of Object.keys(normalized)) setOwn(out, key === "argsFrom" ? "args" : key, key === "argsFrom" ? whole : normalized[key]);
  return out;
}

/** How deep args are compared; deeper, they are taken as different and recorded whole (the agent chooses them). */
const MAX_DEPTH = 32;

/** Sets an own field, whatever its name: a record read from a file may have one named __proto__, kept as data. */
function setOwn(target: Record_, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function isRecord(value: unknown): value is Record_ {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

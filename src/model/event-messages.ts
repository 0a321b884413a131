// Recorded events name their messages by reference (MessagesRef, see perstack.ts); this turns them back into
// Perstack's own shape, with the messages in place, given something that resolves a reference: the collector's
// MessageLogs while a run streams, the checkpoint files when `perstack log` reads a job back. Pure.
import { isSafeId } from "./ids.js";
import { compactToolCalls, wholeToolCalls } from "./recorded-tool-calls.js";
import { sameJson } from "./same-json.js";
import { UnresolvedMessagesError } from "./unresolved-error.js";
import type { Checkpoint, CheckpointRef, ExpandedEvent, Message, MessagesRef, PerstackEvent } from "./perstack.js";

/** The fields whose checkpoint is written as a file: its messagesRef names the checkpoint itself. */
export const FILE_CHECKPOINT_FIELDS = ["checkpoint", "initialCheckpoint"] as const;
/** Every field of an event that holds a checkpoint. */
export const CHECKPOINT_FIELDS = [...FILE_CHECKPOINT_FIELDS, "nextCheckpoint"] as const;

/** The messages a reference names; throws an Error saying why when they cannot be had. */
export type MessagesResolver = (runId: string, ref: MessagesRef) => Message[];

export { UnresolvedMessagesError };

/** The checkpoint an event carries that is written as a file (its `checkpoint`, startRun's `initialCheckpoint`), if any. */
export function fileCheckpointOf(event: PerstackEvent): CheckpointRef | undefined {
  if (event.type === "startRun") return event.initialCheckpoint;
  return "checkpoint" in event ? event.checkpoint : undefined;
}

/** A reference as read from a file, checked: a safe checkpoint id and a whole count; anything else is undefined. */
export function parseMessagesRef(value: unknown): MessagesRef | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { checkpointId, count } = value as Record<string, unknown>;
  if (typeof checkpointId !== "string" || !isSafeId(checkpointId)) return undefined;
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) return undefined;
  return { checkpointId, count };
}

/** The checkpoint file's content: the reference's header with the messages in Perstack's place (after stepNumber). */
export function wholeCheckpoint(ref: CheckpointRef, messages: Message[]): Checkpoint {
  const { messagesRef: _ref, appendMessages: _append, id, jobId, runId, status, stepNumber, ...rest } = ref;
  void _ref;
  void _append;
  return { id, jobId, runId, status, stepNumber, messages, ...rest };
}

/**
 * The same checkpoint as JSON text around its messages' JSON array: `before`, the array, then `after` is the file the
 * collector writes to checkpoints/<id>.json, from messages already serialized (MessageLog), never serialized again.
 */
export function wholeCheckpointJsonAround(ref: CheckpointRef): { before: string; after: string } {
  const { messagesRef: _ref, appendMessages: _append, id, jobId, runId, status, stepNumber, ...rest } = ref;
  void _ref;
  void _append;
  const head = JSON.stringify({ id, jobId, runId, status, stepNumber });
  const tail = JSON.stringify(rest);
  return { before: `${head.slice(0, -1)},"messages":`, after: tail === "{}" ? "}" : `,${tail.slice(1)}` };
}

/** Checkpoint statuses a run stops on. Its file is written whole: `--continue` and tools outside read that one. */
const STOP_STATUSES = new Set(["completed", "stoppedByInteractiveTool", "stoppedByDelegate", "stoppedByExceededMaxSteps", "stoppedByError"]);

/** Whether a checkpoint's file holds its messages itself rather than naming lines of its run's messages.jsonl. */
export function isWrittenWhole(ref: CheckpointRef): boolean {
  return STOP_STATUSES.has(ref.status);
}

/**
 * A checkpoint file that names its messages instead of holding them: `messagesLog.count` is how many lines of its
 * run's runs/<runId>/messages.jsonl they are (job-store.ts). Every field of Perstack's checkpoint but `messages`.
 */
export function loggedCheckpointJson(ref: CheckpointRef): string {
  const { messagesRef, appendMessages: _append, id, jobId, runId, status, stepNumber, ...rest } = ref;
  void _append;
  return JSON.stringify({ id, jobId, runId, status, stepNumber, messagesLog: { count: messagesRef.count }, ...rest });
}

/** How deep fields are compared when a nextCheckpoint is recorded; a field that differs deeper is recorded whole. */
const COMPARE_DEPTH = 4;

/**
 * The event as events.jsonl records it. continueToNextStep's nextCheckpoint is its `checkpoint` under another id and
 * step number, so it is recorded as what it changes, `"nextCheckpoint": {"checkpointWith": {"id": …, "stepNumber": …}}`
 * (about half the event's bytes), whenever it has the checkpoint's fields in the checkpoint's order; expandRecord gives
 * it back whole. A whole checkpoint always has an id, so the two forms never mix. The events that call tools record
 * their calls by what they add to their message (recorded-tool-calls.ts). Any other event is as it is.
 */
export function recordedEvent(event: PerstackEvent): object {
  if (event.type !== "continueToNextStep") return compactToolCalls(event);
  const changes = changesFrom(event.checkpoint, event.nextCheckpoint);
  return changes ? { ...event, nextCheckpoint: { checkpointWith: changes } } : event;
}

/**
 * The fields of `next` whose JSON differs from `base`'s, if `next` has the same fields in the same order (so that
 * `{...base, ...changes}` is `next`, down to the text JSON.stringify makes of it); undefined otherwise.
 */
function changesFrom(base: object, next: object): Record<string, unknown> | undefined {
  const keys = Object.keys(base);
  const nextKeys = Object.keys(next);
  if (keys.length !== nextKeys.length) return undefined;
  const changes: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (nextKeys[i] !== key) return undefined;
    const was = (base as Record<string, unknown>)[key];
    const value = (next as Record<string, unknown>)[key];
    if (sameJson(was, value, COMPARE_DEPTH)) continue;
    // A field JSON leaves out (undefined) can neither be replaced nor replace one; one named __proto__ cannot be set.
    if (was === undefined || value === undefined || key === "__proto__") return undefined;
    changes[key] = value;
  }
  return changes;
}


/**
 * A recorded nextCheckpoint, whole: one recorded by its changes is the event's recorded checkpoint with them in place.
 * Read from a file, neither is trusted: the changes may only replace fields the checkpoint has.
 */
function wholeNextCheckpoint(event: Record<string, unknown>): unknown {
  const next = event.nextCheckpoint;
  if (!isRecordObject(next) || !Object.hasOwn(next, "checkpointWith") || Object.keys(next).length !== 1) return next;
  const changes = next.checkpointWith;
  const base = event.checkpoint;
  if (!isRecordObject(changes)) throw new UnresolvedMessagesError("nextCheckpoint.checkpointWith: not an object of fields");
  if (!isRecordObject(base)) throw new UnresolvedMessagesError("nextCheckpoint.checkpointWith: the event has no checkpoint to apply it to");
  for (const key of Object.keys(changes)) {
    if (!Object.hasOwn(base, key)) throw new UnresolvedMessagesError(`nextCheckpoint.checkpointWith: ${JSON.stringify(key.slice(0, 80))} is not a field of the event's checkpoint`);
  }
  return { ...base, ...changes };
}

/**
 * A recorded event as the collector emitted it (recordedEvent's inverse): its nextCheckpoint and its tool calls whole
 * again, messages still by reference; to be checked against the event schema. Read from a file or the network, it is
 * not trusted: throws UnresolvedMessagesError for changes that are not fields of the checkpoint, or tool call
 * shortcuts that do not resolve.
 */
export function emittedEvent(event: Record<string, unknown>): Record<string, unknown> {
  if (event.type !== "continueToNextStep") return wholeToolCalls(event);
  const next = wholeNextCheckpoint(event);
  return next === event.nextCheckpoint ? event : { ...event, nextCheckpoint: next };
}

function isRecordObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A recorded event in Perstack's shape. Throws UnresolvedMessagesError when a reference cannot be resolved. */
export function expandEvent(event: PerstackEvent, resolve: MessagesResolver): ExpandedEvent {
  return expandRecord(event as unknown as Record<string, unknown>, resolve) as unknown as ExpandedEvent;
}

/**
 * The same for an event read back from a file, whose shape is not trusted: references are checked (parseMessagesRef)
 * before they are resolved, and an event without references comes back as it is (an event recorded before
 * references existed already holds its messages). Throws UnresolvedMessagesError, naming the field.
 */
export function expandRecord(record: Record<string, unknown>, resolve: MessagesResolver): Record<string, unknown> {
  const event = emittedEvent(record);
  const runId = typeof event.runId === "string" ? event.runId : "";
  let out: Record<string, unknown> | undefined;
  const messagesAt = (field: string, value: unknown): Message[] => {
    const ref = parseMessagesRef(value);
    if (!ref) throw new UnresolvedMessagesError(`${field}: not a reference ({checkpointId, count})`);
    try {
      return resolve(runId, ref);
    } catch (error) {
      throw new UnresolvedMessagesError(`${field}: ${(error as Error).message}`);
    }
  };
  if (event.type === "startGeneration" && "messagesRef" in event) {
    const { messagesRef, messagesAfterRef, ...rest } = event;
    const after = Array.isArray(messagesAfterRef) ? (messagesAfterRef as Message[]) : [];
    out = { ...rest, messages: [...messagesAt("messagesRef", messagesRef), ...after] };
  }
  for (const field of CHECKPOINT_FIELDS) {
    const checkpoint = event[field];
    if (typeof checkpoint !== "object" || checkpoint === null || !("messagesRef" in checkpoint)) continue;
    const ref = checkpoint as CheckpointRef;
    out ??= { ...event };
    out[field] = wholeCheckpoint(ref, messagesAt(`${field}.messagesRef`, ref.messagesRef));
  }
  return out ?? event;
}

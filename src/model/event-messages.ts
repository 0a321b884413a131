// Recorded events name their messages by reference (MessagesRef, see perstack.ts); this turns them back into
// Perstack's own shape, with the messages in place, given something that resolves a reference: the collector's
// MessageLogs while a run streams, the checkpoint files when `perstack log` reads a job back. Pure.
import { isSafeId } from "./ids.js";
import type { Checkpoint, CheckpointRef, ExpandedEvent, Message, MessagesRef, PerstackEvent } from "./perstack.js";

/** The fields whose checkpoint is written as a file: its messagesRef names the checkpoint itself. */
export const FILE_CHECKPOINT_FIELDS = ["checkpoint", "initialCheckpoint"] as const;
/** Every field of an event that holds a checkpoint. */
export const CHECKPOINT_FIELDS = [...FILE_CHECKPOINT_FIELDS, "nextCheckpoint"] as const;

/** The messages a reference names; throws an Error saying why when they cannot be had. */
export type MessagesResolver = (runId: string, ref: MessagesRef) => Message[];

export class UnresolvedMessagesError extends Error {
  override name = "UnresolvedMessagesError";
}

/** The checkpoints an event carries that are written as files (its `checkpoint`, startRun's `initialCheckpoint`). */
export function fileCheckpointsOf(event: PerstackEvent): CheckpointRef[] {
  if (event.type === "startRun") return [event.initialCheckpoint];
  return "checkpoint" in event ? [event.checkpoint] : [];
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
 * The same checkpoint as JSON text, given its messages already as a JSON array (MessageLog.json): what the collector
 * writes to checkpoints/<id>.json without serializing the conversation again.
 */
export function wholeCheckpointJson(ref: CheckpointRef, messagesJson: string): string {
  const { messagesRef: _ref, appendMessages: _append, id, jobId, runId, status, stepNumber, ...rest } = ref;
  void _ref;
  void _append;
  const head = JSON.stringify({ id, jobId, runId, status, stepNumber });
  const tail = JSON.stringify(rest);
  return `${head.slice(0, -1)},"messages":${messagesJson}${tail === "{}" ? "}" : `,${tail.slice(1)}`}`;
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
  const head = JSON.stringify({ id, jobId, runId, status, stepNumber, messagesLog: { count: messagesRef.count } });
  const tail = JSON.stringify(rest);
  return tail === "{}" ? head : `${head.slice(0, -1)},${tail.slice(1)}`;
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
export function expandRecord(event: Record<string, unknown>, resolve: MessagesResolver): Record<string, unknown> {
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

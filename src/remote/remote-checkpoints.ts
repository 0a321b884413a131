// Checkpoints of a job on perstack serve (GET /v1/runs/{jobId}/checkpoints/{id}), for what needs their messages:
// `perstack run --server --json` prints events in Perstack's shape (messages in place, as a local run prints them),
// and `perstack log --server` reads them as a local log reads the checkpoint files. A checkpoint is trusted no more
// than an event: it must be a valid checkpoint of the job, of the run the reference came from, holding the messages
// asked for.
import { ServerRefusedError } from "../errors.js";
import { CHECKPOINT_FIELDS, expandRecord, parseMessagesRef, emittedEvent, type MessagesResolver } from "../model/event-messages.js";
import type { Checkpoint, Message } from "../model/perstack.js";
import { checkpointSchema } from "../model/perstack-schema.js";
import type { ServerClient } from "./server-client.js";

/** A stopped run's checkpoint is written just after its event is: a reference may come before its file does. */
const NOT_YET_ATTEMPTS = 20;
const NOT_YET_DELAY_MS = 250;
const KEEP = 8;

/**
 * The checkpoint, checked; throws Error saying why it cannot be had. `waitForIt`: a 404 is asked again for a few
 * seconds (the event naming it may have come first).
 */
export async function fetchCheckpoint(client: ServerClient, jobId: string, checkpointId: string, options: { waitForIt?: boolean } = {}): Promise<Checkpoint> {
  let value: unknown;
  const attempts = options.waitForIt ? NOT_YET_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      value = await client.getCheckpoint(jobId, checkpointId);
      break;
    } catch (error) {
      if (!(error instanceof ServerRefusedError) || error.status !== 404 || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, NOT_YET_DELAY_MS));
    }
  }
  const parsed = checkpointSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`checkpoint ${checkpointId} from ${client.base} is not a valid checkpoint (${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"})`);
  }
  const checkpoint = parsed.data;
  if (checkpoint.id !== checkpointId || checkpoint.jobId !== jobId) throw new Error(`checkpoint ${checkpointId} from ${client.base} is another one (${checkpoint.jobId}/${checkpoint.id})`);
  return checkpoint;
}

/** The checkpoint ids a recorded event's references name (its messages by reference). */
export function referencedCheckpoints(record: Record<string, unknown>): string[] {
  const ids = new Set<string>();
  const add = (value: unknown) => {
    const ref = parseMessagesRef(value);
    if (ref) ids.add(ref.checkpointId);
  };
  if (record.type === "startGeneration") add(record.messagesRef);
  let whole: Record<string, unknown> = record;
  try {
    whole = emittedEvent(record);
  } catch {
    // expandRecord names the problem
  }
  for (const field of CHECKPOINT_FIELDS) {
    const checkpoint = whole[field];
    if (typeof checkpoint === "object" && checkpoint !== null) add((checkpoint as { messagesRef?: unknown }).messagesRef);
  }
  return [...ids];
}

type Read = { ok: true; runId: string; messages: Message[] } | { ok: false; reason: string };

/** Resolves message references from the server's checkpoints, keeping the few read last (a step names one or two). */
export class RemoteCheckpointMessages {
  private readonly recent = new Map<string, Read>();

  constructor(
    private readonly client: ServerClient,
    private readonly jobId: string,
  ) {}

  /** The event in Perstack's shape; throws UnresolvedMessagesError naming the field it could not fill. */
  async expand(record: Record<string, unknown>): Promise<Record<string, unknown>> {
    for (const id of referencedCheckpoints(record)) await this.load(id);
    return expandRecord(record, this.resolve);
  }

  private async load(checkpointId: string): Promise<void> {
    const cached = this.recent.get(checkpointId);
    if (cached) {
      this.recent.delete(checkpointId);
      this.recent.set(checkpointId, cached);
      return;
    }
    let read: Read;
    try {
      const checkpoint = await fetchCheckpoint(this.client, this.jobId, checkpointId, { waitForIt: true });
      read = { ok: true, runId: checkpoint.runId, messages: checkpoint.messages };
    } catch (error) {
      read = { ok: false, reason: (error as Error).message };
    }
    this.recent.set(checkpointId, read);
    if (this.recent.size > KEEP) this.recent.delete(this.recent.keys().next().value!);
  }

  private readonly resolve: MessagesResolver = (runId, ref) => {
    const read = this.recent.get(ref.checkpointId);
    if (!read) throw new Error(`checkpoint ${ref.checkpointId} was not fetched`);
    if (!read.ok) throw new Error(read.reason);
    if (read.runId !== runId) throw new Error(`checkpoint ${ref.checkpointId} belongs to run ${read.runId}, not ${runId}`);
    if (ref.count > read.messages.length) throw new Error(`checkpoint ${ref.checkpointId} holds ${read.messages.length} messages, not ${ref.count}`);
    return read.messages.slice(0, ref.count);
  };
}

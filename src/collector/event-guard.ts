// The last check between the agent's stream and the disk. Any process in the agent container can print lines that
// a runtime parser turns into events (the built-in engine's events are taken nearly as printed), so before an event
// names a file or reaches the job's record it must: not be an event only the host issues; belong to this job; name
// a run this invocation started or a delegated run announced by a known run; carry ids that are safe file names;
// not overwrite a checkpoint that existed before this invocation began; and name its messages only by references
// the reader can resolve: a checkpoint written as a file refers to itself, within what the parser holds of its
// run's conversation, and every other reference names a checkpoint file of the same run that this invocation wrote,
// within that checkpoint's messages.
import { isSafeId } from "../model/ids.js";
import { fileCheckpointOf, parseMessagesRef } from "../model/event-messages.js";
import { HOST_ONLY_EVENT_TYPES, type CheckpointRef, type PerstackEvent } from "../model/perstack.js";

export type GuardVerdict = { ok: true } | { ok: false; reason: string };

const ACCEPTED: GuardVerdict = Object.freeze({ ok: true });

export interface EventGuardOptions {
  jobId: string;
  rootRunId: string;
  /** Expert keys the plan knows; run events for any other are refused. Omit to accept any key. */
  experts?: ReadonlySet<string>;
  /** Whether a checkpoint file with this id is already on disk. */
  checkpointOnDisk(checkpointId: string): boolean;
  /** How many messages of a run's conversation the parser holds (what a checkpoint file can be written from). */
  messageCount(runId: string): number | undefined;
  /**
   * Whether a run with this id has files from before this invocation. Delegated runs always get fresh ids, so a
   * startRun naming such a run would append to an earlier run's record. Omit to skip the check.
   */
  runExisted?(runId: string): boolean;
}

const MAX_RUNS = 10_000;

/** A checkpoint file this invocation wrote: its run, and how many messages it holds. */
interface WrittenCheckpoint {
  id: string;
  runId: string;
  count: number;
}

export class EventGuard {
  private readonly runs = new Set<string>();
  /**
   * Checkpoint files this invocation wrote, with their run and message count: rewriting one of them is fine, any
   * other existing file is not; references may name them.
   */
  private readonly written = new Map<string, WrittenCheckpoint>();
  /** The last run id found safe: nearly every event names the same run, so its id is tested once. */
  private safeRunId: string | undefined;

  constructor(private readonly options: EventGuardOptions) {
    this.runs.add(options.rootRunId);
  }

  check(event: PerstackEvent): GuardVerdict {
    if (HOST_ONLY_EVENT_TYPES.has(event.type)) return refuse(`"${event.type}" events come only from the host`);
    if (event.jobId !== this.options.jobId) return refuse(`event "${event.type}" names job ${clip(event.jobId)}, not ${this.options.jobId}`);
    if (!this.isSafeRunId(event.runId)) return refuse(`event "${event.type}" has an invalid run id ${clip(event.runId)}`);
    if (!isSafeId(event.id)) return refuse(`event "${event.type}" has an invalid id ${clip(event.id)}`);
    if ("expertKey" in event && this.options.experts && !this.options.experts.has(event.expertKey)) {
      return refuse(`event "${event.type}" names expert ${clip(event.expertKey)}, which this job does not have`);
    }
    if (!this.runs.has(event.runId)) {
      const announced = event.type === "startRun" ? this.announcedChild(event.initialCheckpoint) : undefined;
      if (announced !== true) return refuse(announced ?? `event "${event.type}" belongs to run ${event.runId}, which was never started`);
    }
    const file = fileCheckpointOf(event);
    const next = event.type === "continueToNextStep" ? event.nextCheckpoint : undefined;
    const checkpointProblem = (file && this.checkpointProblem(file, event.runId)) ?? (next && this.checkpointProblem(next, event.runId));
    if (checkpointProblem) return refuse(`event "${event.type}": ${checkpointProblem}`);
    // The file first: the event's other reference may name it (nextCheckpoint names the event's checkpoint).
    const fileProblem = file && this.selfReferenceProblem(file, event.runId);
    if (fileProblem) return refuse(`event "${event.type}": ${fileProblem}`);
    const fresh = file && { id: file.id, runId: event.runId, count: file.messagesRef.count };
    const reference = next
      ? { field: "nextCheckpoint.messagesRef", ref: next.messagesRef as unknown }
      : event.type === "startGeneration"
        ? { field: "messagesRef", ref: event.messagesRef as unknown }
        : undefined;
    const referenceProblem = reference && this.referenceProblem(reference.ref, event.runId, fresh);
    if (referenceProblem) return refuse(`event "${event.type}": ${reference.field} ${referenceProblem}`);
    if (event.type === "startRun") this.runs.add(event.runId);
    if (fresh) this.written.set(fresh.id, fresh);
    return ACCEPTED;
  }

  /** A checkpoint written as a file names its own messages: itself, and no more than the run's conversation holds. */
  private selfReferenceProblem(checkpoint: CheckpointRef, runId: string): string | undefined {
    const ref = parseMessagesRef(checkpoint.messagesRef);
    if (!ref) return `checkpoint ${checkpoint.id} has no valid messagesRef`;
    if (ref.checkpointId !== checkpoint.id) return `checkpoint ${checkpoint.id} refers to the messages of another checkpoint, ${clip(ref.checkpointId)}; a checkpoint file holds its own`;
    // Appending to a file this invocation wrote keeps every earlier reference to it valid; anything else would not.
    const before = this.written.get(checkpoint.id);
    if (before && before.runId !== runId) return `checkpoint ${checkpoint.id} was written by run ${before.runId}, not ${runId}`;
    if (before && ref.count < before.count) return `checkpoint ${checkpoint.id} would shrink from ${before.count} to ${ref.count} messages`;
    const held = this.options.messageCount(runId) ?? 0;
    if (ref.count > held) return `checkpoint ${checkpoint.id} claims ${ref.count} messages; run ${runId}'s conversation has ${held}`;
    return undefined;
  }

  /** A reference from elsewhere names a checkpoint file of the same run written by this invocation. */
  private referenceProblem(value: unknown, runId: string, fresh: WrittenCheckpoint | undefined): string | undefined {
    const ref = parseMessagesRef(value);
    if (!ref) return "is not a reference ({checkpointId, count})";
    const target = fresh?.id === ref.checkpointId ? fresh : this.written.get(ref.checkpointId);
    if (!target) return `names checkpoint ${ref.checkpointId}, which this run has not written`;
    if (target.runId !== runId) return `names checkpoint ${ref.checkpointId} of run ${target.runId}, not of run ${runId}`;
    if (ref.count > target.count) return `asks for ${ref.count} messages of checkpoint ${ref.checkpointId}, which holds ${target.count}`;
    return undefined;
  }

  private isSafeRunId(runId: string): boolean {
    if (runId === this.safeRunId) return true;
    if (!isSafeId(runId)) return false;
    this.safeRunId = runId;
    return true;
  }

  /** true, or why a startRun for an unknown run is refused. */
  private announcedChild(initial: CheckpointRef): true | string {
    const parent = initial.delegatedBy?.runId;
    if (!parent) return `startRun for run ${initial.runId} names no delegating run`;
    if (!this.runs.has(parent)) return `startRun for run ${initial.runId} is delegated by run ${clip(parent)}, which was never started`;
    if (this.runs.size >= MAX_RUNS) return `more than ${MAX_RUNS} runs in one invocation`;
    if (this.options.runExisted?.(initial.runId)) return `startRun for run ${initial.runId}, which exists from before this invocation`;
    return true;
  }

  private checkpointProblem(checkpoint: CheckpointRef, runId: string): string | undefined {
    if (!isSafeId(checkpoint.id)) return `checkpoint id ${clip(checkpoint.id)} is not a safe id`;
    if (checkpoint.jobId !== this.options.jobId) return `checkpoint ${checkpoint.id} names job ${clip(checkpoint.jobId)}`;
    if (checkpoint.runId !== runId) return `checkpoint ${checkpoint.id} names run ${clip(checkpoint.runId)}, not ${runId}`;
    const { delegatedBy, delegateTo } = checkpoint;
    if (delegatedBy) {
      const problem = this.invalidIdIn(checkpoint, delegatedBy.checkpointId) ?? this.invalidIdIn(checkpoint, delegatedBy.runId);
      if (problem) return problem;
    }
    for (const delegate of delegateTo ?? []) {
      const problem = this.invalidIdIn(checkpoint, delegate.runId) ?? this.invalidIdIn(checkpoint, delegate.checkpointId);
      if (problem) return problem;
    }
    // The files on disk before this invocation are few; the ones it wrote, as many as its steps: asked second.
    if (this.options.checkpointOnDisk(checkpoint.id) && !this.written.has(checkpoint.id)) {
      return `checkpoint ${checkpoint.id} already exists from before this run and is not replaced`;
    }
    return undefined;
  }

  /** An id a checkpoint refers to (undefined when it names none) must be a safe one. */
  private invalidIdIn(checkpoint: CheckpointRef, id: string | undefined): string | undefined {
    return id !== undefined && !isSafeId(id) ? `checkpoint ${checkpoint.id} refers to an invalid id ${clip(id)}` : undefined;
  }
}

function refuse(reason: string): GuardVerdict {
  return { ok: false, reason };
}

function clip(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

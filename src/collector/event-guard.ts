// The last check between the agent's stream and the disk. Any process in the agent container can print lines that
// a runtime parser turns into events (the built-in engine's events are taken nearly as printed), so before an event
// names a file or reaches the job's record it must: not be an event only the host issues; belong to this job; name
// a run this invocation started or a delegated run announced by a known run; carry ids that are safe file names;
// and not overwrite a checkpoint that existed before this invocation began.
import { isSafeId } from "../model/ids.js";
import { HOST_ONLY_EVENT_TYPES, type Checkpoint, type PerstackEvent } from "../model/perstack.js";

export type GuardVerdict = { ok: true } | { ok: false; reason: string };

export interface EventGuardOptions {
  jobId: string;
  rootRunId: string;
  /** Expert keys the plan knows; run events for any other are refused. Omit to accept any key. */
  experts?: ReadonlySet<string>;
  /** Whether a checkpoint file with this id is already on disk. */
  checkpointOnDisk(checkpointId: string): boolean;
}

const MAX_RUNS = 10_000;

export class EventGuard {
  private readonly runs = new Set<string>();
  /** Checkpoint ids this invocation wrote: rewriting one of them is fine, any other existing file is not. */
  private readonly written = new Set<string>();

  constructor(private readonly options: EventGuardOptions) {
    this.runs.add(options.rootRunId);
  }

  check(event: PerstackEvent): GuardVerdict {
    if (HOST_ONLY_EVENT_TYPES.has(event.type)) return refuse(`"${event.type}" events come only from the host`);
    if (event.jobId !== this.options.jobId) return refuse(`event "${event.type}" names job ${clip(event.jobId)}, not ${this.options.jobId}`);
    if (!isSafeId(event.runId)) return refuse(`event "${event.type}" has an invalid run id ${clip(event.runId)}`);
    if (!isSafeId(event.id)) return refuse(`event "${event.type}" has an invalid id ${clip(event.id)}`);
    if ("expertKey" in event && this.options.experts && !this.options.experts.has(event.expertKey)) {
      return refuse(`event "${event.type}" names expert ${clip(event.expertKey)}, which this job does not have`);
    }
    if (!this.runs.has(event.runId)) {
      const announced = event.type === "startRun" ? this.announcedChild(event.initialCheckpoint) : undefined;
      if (announced !== true) return refuse(announced ?? `event "${event.type}" belongs to run ${event.runId}, which was never started`);
    }
    for (const checkpoint of checkpointsOf(event)) {
      const problem = this.checkpointProblem(checkpoint, event.runId);
      if (problem) return refuse(`event "${event.type}": ${problem}`);
    }
    if (event.type === "startRun") this.runs.add(event.runId);
    const written = "checkpoint" in event ? event.checkpoint : undefined;
    if (written) this.written.add(written.id);
    return { ok: true };
  }

  /** true, or why a startRun for an unknown run is refused. */
  private announcedChild(initial: Checkpoint): true | string {
    const parent = initial.delegatedBy?.runId;
    if (!parent) return `startRun for run ${initial.runId} names no delegating run`;
    if (!this.runs.has(parent)) return `startRun for run ${initial.runId} is delegated by run ${clip(parent)}, which was never started`;
    if (this.runs.size >= MAX_RUNS) return `more than ${MAX_RUNS} runs in one invocation`;
    return true;
  }

  private checkpointProblem(checkpoint: Checkpoint, runId: string): string | undefined {
    if (!isSafeId(checkpoint.id)) return `checkpoint id ${clip(checkpoint.id)} is not a safe id`;
    if (checkpoint.jobId !== this.options.jobId) return `checkpoint ${checkpoint.id} names job ${clip(checkpoint.jobId)}`;
    if (checkpoint.runId !== runId) return `checkpoint ${checkpoint.id} names run ${clip(checkpoint.runId)}, not ${runId}`;
    for (const id of [checkpoint.delegatedBy?.checkpointId, checkpoint.delegatedBy?.runId, ...(checkpoint.delegateTo ?? []).flatMap((d) => [d.runId, d.checkpointId])]) {
      if (id !== undefined && !isSafeId(id)) return `checkpoint ${checkpoint.id} refers to an invalid id ${clip(id)}`;
    }
    if (!this.written.has(checkpoint.id) && this.options.checkpointOnDisk(checkpoint.id)) {
      return `checkpoint ${checkpoint.id} already exists from before this run and is not replaced`;
    }
    return undefined;
  }
}

function checkpointsOf(event: PerstackEvent): Checkpoint[] {
  const out: Checkpoint[] = [];
  if ("checkpoint" in event) out.push(event.checkpoint);
  if (event.type === "continueToNextStep") out.push(event.nextCheckpoint);
  if (event.type === "startRun") out.push(event.initialCheckpoint);
  return out;
}

function refuse(reason: string): GuardVerdict {
  return { ok: false, reason };
}

function clip(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

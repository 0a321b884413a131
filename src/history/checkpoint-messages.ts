// Resolves recorded events' message references (MessagesRef) from a job's checkpoint files, for `perstack log
// --json`. Events of one step point to one or two files, in order, so a handful of files read last is enough: memory
// stays at a few checkpoints however long the job. A file is trusted no more than an event: it must be a valid
// checkpoint of the job and of the event's run, and hold the messages asked for.
import type { Message, MessagesRef } from "../model/perstack.js";
import { readCheckpoint, RunHistoryFiles } from "../storage/job-reader.js";

const KEEP_FILES = 4;

type Read = { ok: true; runId: string; messages: Message[] } | { ok: false; reason: string };

export class CheckpointFileMessages {
  /** The files read last, oldest first (a Map keeps insertion order). */
  private readonly recent = new Map<string, Read>();
  /** Step checkpoints are lines of their run's files: each file is read once, not once per checkpoint. */
  private readonly runs: RunHistoryFiles;

  constructor(
    private readonly perstackDir: string,
    private readonly jobId: string,
    private readonly keep = KEEP_FILES,
  ) {
    this.runs = new RunHistoryFiles(perstackDir, jobId);
  }

  /** The messages `ref` names for an event of run `runId`; throws an Error saying why they cannot be had. */
  readonly resolve = (runId: string, ref: MessagesRef): Message[] => {
    const read = this.read(ref.checkpointId);
    if (!read.ok) throw new Error(read.reason);
    if (read.runId !== runId) throw new Error(`checkpoint ${ref.checkpointId} belongs to run ${read.runId}, not ${runId}`);
    if (ref.count > read.messages.length) throw new Error(`checkpoint ${ref.checkpointId} holds ${read.messages.length} messages, not ${ref.count}`);
    return read.messages.slice(0, ref.count);
  };

  private read(checkpointId: string): Read {
    const cached = this.recent.get(checkpointId);
    if (cached) {
      this.recent.delete(checkpointId);
      this.recent.set(checkpointId, cached);
      return cached;
    }
    let read: Read;
    try {
      const checkpoint = readCheckpoint(this.perstackDir, this.jobId, checkpointId, this.runs);
      read = { ok: true, runId: checkpoint.runId, messages: checkpoint.messages };
    } catch (error) {
      read = { ok: false, reason: (error as Error).message };
    }
    this.recent.set(checkpointId, read);
    if (this.recent.size > this.keep) this.recent.delete(this.recent.keys().next().value!);
    return read;
  }
}

// A run's steps on disk, linear in its length: runs/<runId>/messages.jsonl holds the conversation once, a message per
// line, and runs/<runId>/checkpoints.jsonl a line per step checkpoint, every field of Perstack's checkpoint but its
// messages, which `messagesLog.count` names: the first that many lines of messages.jsonl (a run's conversation only
// grows, so each checkpoint's messages are a prefix of it). One appended line per step instead of a file per step:
// a file costs an open, a write and a rename, which is most of what collecting a fast stream would cost.
//
// A checkpoint line reaches the disk only after the messages it names did (it is written from the callback of their
// write), so a reader, or a process killed between the two, never finds a checkpoint whose messages are missing.
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { loggedCheckpointJson } from "../model/event-messages.js";
import type { CheckpointRef } from "../model/perstack.js";

/** Where a checkpoint's messages come from: a run's MessageLog (runtimes/message-log.ts). */
export interface MessagesSource {
  readonly length: number;
  /** The JSON array of the first `count` messages. */
  json(count: number): string;
  /** Messages `start` to `end` as JSON lines, each ending in a newline. */
  lines(start: number, end: number): string;
}

export const MESSAGES_FILE = "messages.jsonl";
export const CHECKPOINTS_FILE = "checkpoints.jsonl";

/** One write to messages.jsonl, and the checkpoint lines that wait for it. */
interface MessagesWrite {
  done: boolean;
  after: string[];
}

export class RunHistoryLog {
  private messages: WriteStream | undefined;
  private checkpoints: WriteStream | undefined;
  /** undefined until the first checkpoint; false when the files were there before (see append). */
  private usable: boolean | undefined;
  private messagesWritten = 0;
  private lastWrite: MessagesWrite | undefined;

  constructor(private readonly dir: string) {}

  /**
   * Appends a step checkpoint of this run, after the messages of the run's conversation that it names and the files
   * lack. False when it cannot be logged: the files were there before this collector opened the run (a run id seen
   * twice), so their lines may be another conversation's; the caller writes that checkpoint whole instead.
   */
  append(checkpoint: CheckpointRef, source: MessagesSource): boolean {
    if (this.usable === undefined) {
      this.usable = sizeOf(join(this.dir, MESSAGES_FILE)) === 0 && sizeOf(join(this.dir, CHECKPOINTS_FILE)) === 0;
      if (this.usable) {
        this.messages = createWriteStream(join(this.dir, MESSAGES_FILE), { flags: "a" });
        this.checkpoints = createWriteStream(join(this.dir, CHECKPOINTS_FILE), { flags: "a" });
      }
    }
    const [messages, checkpoints] = [this.messages, this.checkpoints];
    if (!this.usable || !messages || !checkpoints) return false;
    const line = `${loggedCheckpointJson(checkpoint)}\n`;
    const count = checkpoint.messagesRef.count;
    if (count > this.messagesWritten) {
      const write: MessagesWrite = { done: false, after: [line] };
      const text = source.lines(this.messagesWritten, count);
      this.messagesWritten = count;
      this.lastWrite = write;
      // Callbacks of one stream run in order, so checkpoint lines keep theirs. A failed write leaves its checkpoints
      // out; the stream's error reaches the collector through drained() and close().
      messages.write(text, (error) => {
        write.done = true;
        if (!error) checkpoints.write(write.after.join(""));
      });
    } else if (this.lastWrite && !this.lastWrite.done) {
      this.lastWrite.after.push(line);
    } else {
      checkpoints.write(line);
    }
    return true;
  }

  streams(): WriteStream[] {
    return [this.messages, this.checkpoints].filter((s): s is WriteStream => s !== undefined);
  }

  /** Ends messages.jsonl first: its last callbacks write the checkpoint lines that waited for it. */
  async close(): Promise<void> {
    await endStream(this.messages);
    await endStream(this.checkpoints);
  }
}

function endStream(stream: WriteStream | undefined): Promise<void> {
  return stream ? new Promise<void>((resolve) => stream.end(() => resolve())) : Promise.resolve();
}

/** A file's size, 0 when it is not there. */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

// A run's steps on disk, linear in its length: runs/<runId>/messages.jsonl holds the conversation once, a message per
// line, and runs/<runId>/checkpoints.jsonl a line per step checkpoint, every field of Perstack's checkpoint but its
// messages, which `messagesLog.count` names: the first that many lines of messages.jsonl (a run's conversation only
// grows, so each checkpoint's messages are a prefix of it). One appended line per step instead of a file per step:
// a file costs an open, a write and a rename, which is most of what collecting a fast stream would cost.
//
// A checkpoint line reaches the disk only after the messages it names did (it is written from the callback of their
// write), so a reader, or a process killed between the two, never finds a checkpoint whose messages are missing.
import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import { AppendFile } from "./append-file.js";
import { loggedCheckpointJson } from "../model/event-messages.js";
import { LineWriter } from "../stream/line-writer.js";
import type { CheckpointRef } from "../model/perstack.js";

/** Where a checkpoint's messages come from: a run's MessageLog (runtimes/message-log.ts). */
export interface MessagesSource {
  readonly length: number;
  /** Messages before this one were released: they are only lines of messages.jsonl now. */
  readonly firstHeld: number;
  /** Message `index` (firstHeld or later) as JSON text, on one line. */
  text(index: number): string;
  /** Lets go of the messages before `upTo`, written to messages.jsonl. */
  release(upTo: number): void;
}

export const MESSAGES_FILE = "messages.jsonl";
/** How much of messages.jsonl is read at a time when released messages are read back. */
const READ_BYTES = 1024 * 1024;
export const CHECKPOINTS_FILE = "checkpoints.jsonl";

interface LogFiles {
  streams: [AppendFile, AppendFile];
  messages: LineWriter;
  checkpoints: LineWriter;
}

export class RunHistoryLog {
  /** undefined until the first checkpoint; false when the files were there before (see append). */
  private files: LogFiles | false | undefined;
  private messagesWritten = 0;

  constructor(
    private readonly dir: string,
    /** A write to one of the files failed (the disk is full): the file keeps its whole lines. */
    private readonly onFailure: (error: NodeJS.ErrnoException) => void = () => {},
    /**
     * A run taken over after its collector died (storage/recorded-run.ts): the files are this run's, holding these
     * messages and checkpoints already; they are continued, not refused.
     */
    private readonly resumed?: { messages: number; checkpoints: ReadonlySet<string> },
  ) {
    this.messagesWritten = resumed?.messages ?? 0;
  }

  /**
   * Appends a step checkpoint of this run, after the messages of the run's conversation that it names and the files
   * lack. False when it cannot be logged: the files were there before this collector opened the run (a run id seen
   * twice), so their lines may be another conversation's; the caller writes that checkpoint whole instead.
   */
  append(checkpoint: CheckpointRef, source: MessagesSource, release = false): boolean {
    this.files ??= this.open();
    if (!this.files) return false;
    const { messages, checkpoints } = this.files;
    if (this.resumed?.checkpoints.has(checkpoint.id)) return true;
    const line = loggedCheckpointJson(checkpoint);
    // The guard lets no checkpoint name more messages than the log holds; the log is not read past its end anyway.
    const count = Math.min(checkpoint.messagesRef.count, source.length);
    for (let index = this.messagesWritten; index < count; index++) messages.line(source.text(index));
    this.messagesWritten = Math.max(this.messagesWritten, checkpoint.messagesRef.count);
    // Their text is in the writer's batch now (encoded, not referenced): the source need not hold them any longer.
    if (release) source.release(count);
    // Callbacks of one stream run in order, so checkpoint lines keep theirs. A failed write leaves its checkpoints
    // out; the stream's error reaches the collector through drained() and close().
    messages.whenWritten((error) => {
      if (error) return;
      checkpoints.line(line);
      // A step's checkpoint is committed like a checkpoint file: flushed to the disk with its messages, in batches
      // (AppendFile.syncSoon), so a power cut keeps every checkpoint but those of its last moments. (A checkpoint
      // flushed before its messages reads back as unreadable, never as other messages: the reader counts lines.)
      checkpoints.whenWritten((failed) => {
        if (failed || !this.files) return;
        for (const file of this.files.streams) file.syncSoon();
      });
    });
    return true;
  }

  /**
   * The first `count` lines of messages.jsonl, the newlines between them made commas (none after the last): the
   * messages a source released, as a checkpoint file's array holds them. Waits until every line queued is written,
   * then reads the file a chunk at a time. Only this program writes the file, and only whole lines (AppendFile).
   */
  async *releasedMessages(count: number): AsyncGenerator<Buffer> {
    if (count <= 0) return;
    if (!this.files) throw new Error(`${MESSAGES_FILE} of this run was never written`);
    const { messages } = this.files;
    messages.flush();
    await new Promise<void>((resolve, reject) => messages.whenWritten((error) => (error ? reject(error) : resolve())));
    let left = count;
    const file = createReadStream(join(this.dir, MESSAGES_FILE), { highWaterMark: READ_BYTES });
    try {
      for await (const chunk of file as AsyncIterable<Buffer>) {
        for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) {
          if (--left === 0) {
            yield chunk.subarray(0, at);
            return;
          }
          chunk[at] = 0x2c;
        }
        yield chunk;
      }
    } finally {
      file.destroy();
    }
    throw new Error(`${MESSAGES_FILE} ends ${left} line(s) short of the ${count} released messages`);
  }

  streams(): AppendFile[] {
    return this.files ? this.files.streams : [];
  }

  /** Bytes of lines not yet handed to the files' streams. */
  queued(): number {
    return this.files ? this.files.messages.queued + this.files.checkpoints.queued : 0;
  }

  /** Hands every queued line to the files' streams. */
  flush(): void {
    if (!this.files) return;
    this.files.messages.flush();
    this.files.checkpoints.flush();
  }

  /** Ends messages.jsonl first: its last callbacks queue the checkpoint lines that waited for it. */
  async close(): Promise<void> {
    if (!this.files) return;
    const { streams: [messages, checkpoints], messages: messageLines, checkpoints: checkpointLines } = this.files;
    messageLines.flush();
    await endStream(messages);
    checkpointLines.flush();
    await endStream(checkpoints);
  }

  /** The files, if this run has none yet; false if it has (see append). */
  private open(): LogFiles | false {
    if (!this.resumed && (sizeOf(join(this.dir, MESSAGES_FILE)) !== 0 || sizeOf(join(this.dir, CHECKPOINTS_FILE)) !== 0)) return false;
    const messages = new AppendFile(join(this.dir, MESSAGES_FILE));
    const checkpoints = new AppendFile(join(this.dir, CHECKPOINTS_FILE));
    for (const file of [messages, checkpoints]) file.on("error", (error: NodeJS.ErrnoException) => this.onFailure(error));
    return { streams: [messages, checkpoints], messages: new LineWriter(messages), checkpoints: new LineWriter(checkpoints) };
  }
}

function endStream(stream: AppendFile): Promise<void> {
  return new Promise<void>((resolve) => stream.end(() => resolve()));
}

/** A file's size, 0 when it is not there. */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

// One run's conversation as the host knows it. It only grows: every checkpoint of the run holds a prefix of it
// (its first `count` messages), so events name messages by count instead of copying them, and a checkpoint file is
// cut from the log when it is written. Messages are kept as their JSON text, each serialized once: messages.jsonl and
// a checkpoint file are then written from these texts rather than from a serialization of the conversation again.
//
// The log holds a message only until it is a line of the run's messages.jsonl: the collector then releases it
// (release), so a long run's memory stays flat however long its conversation grows; what is released is read back from
// that file when a whole checkpoint is written (storage/run-history-log.ts). A caller that expands events to Perstack's
// shape (`--json`) needs the whole conversation at hand and never releases.
import type { Message } from "../model/perstack.js";

export class MessageLog {
  /** Texts of messages firstHeld..length-1. */
  private texts: string[] = [];
  private released = 0;
  private lastMessage: Message | undefined;

  get length(): number {
    return this.released + this.texts.length;
  }

  /** The first message still held: those before it were released (they are lines of messages.jsonl). */
  get firstHeld(): number {
    return this.released;
  }

  append(messages: readonly Message[]): void {
    for (const message of messages) {
      this.texts.push(JSON.stringify(message));
      this.lastMessage = message;
    }
  }

  /** Lets go of messages before `upTo`: they are written elsewhere (messages.jsonl). */
  release(upTo: number): void {
    const count = Math.min(upTo, this.length) - this.released;
    if (count <= 0) return;
    this.texts = this.texts.slice(count);
    this.released += count;
  }

  /** The first `count` messages, as new objects (all of them still held). */
  head(count: number): Message[] {
    return this.slice(0, count).map((text) => JSON.parse(text) as Message);
  }

  /** The messages from index `start` on, as new objects (all of them still held). */
  from(start: number): Message[] {
    return this.slice(start, this.length).map((text) => JSON.parse(text) as Message);
  }

  last(): Message | undefined {
    return this.lastMessage;
  }

  /** Message `index` (still held) as JSON text, on one line: what messages.jsonl holds. */
  text(index: number): string {
    if (index < this.released || index >= this.length) throw new RangeError(`message ${index} is not held (held: ${this.released}..${this.length - 1})`);
    return this.texts[index - this.released]!;
  }

  private slice(start: number, end: number): string[] {
    if (start < this.released && end > start) throw new RangeError(`messages from ${start} are not held (released up to ${this.released})`);
    return this.texts.slice(start - this.released, end - this.released);
  }
}

/** Where a stream parser keeps its runs' conversations: the collector cuts checkpoint files from them. */
export interface MessageLogs {
  /** The log of run `runId`, if the parser has seen that run. */
  history(runId: string): MessageLog | undefined;
}

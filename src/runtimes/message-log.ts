// One run's conversation as the host knows it. It only grows: every checkpoint of the run holds a prefix of it
// (its first `count` messages), so events name messages by count instead of copying them, and a checkpoint file is
// cut from the log when it is written. Messages are kept as their JSON text, each serialized once: messages.jsonl and
// a checkpoint file are then written from these texts rather than from a serialization of the conversation again, and
// the log weighs about what the file does.
import type { Message } from "../model/perstack.js";

export class MessageLog {
  private readonly texts: string[] = [];
  private lastMessage: Message | undefined;

  get length(): number {
    return this.texts.length;
  }

  append(messages: readonly Message[]): void {
    for (const message of messages) {
      this.texts.push(JSON.stringify(message));
      this.lastMessage = message;
    }
  }

  /** The first `count` messages, as new objects. */
  head(count: number): Message[] {
    return this.texts.slice(0, count).map((text) => JSON.parse(text) as Message);
  }

  /** The messages from index `start` on, as new objects. */
  from(start: number): Message[] {
    return this.texts.slice(start).map((text) => JSON.parse(text) as Message);
  }

  last(): Message | undefined {
    return this.lastMessage;
  }

  /** Message `index` as JSON text, on one line: what messages.jsonl holds. */
  text(index: number): string {
    return this.texts[index]!;
  }
}

/** Where a stream parser keeps its runs' conversations: the collector cuts checkpoint files from them. */
export interface MessageLogs {
  /** The log of run `runId`, if the parser has seen that run. */
  history(runId: string): MessageLog | undefined;
}

// What a run's files already hold, for a collector that takes over a run whose perstack process died
// (job/recover-run.ts). It reads the agent's output again from the start; whatever of it is here already is
// recognised and not written twice: events by id, step checkpoints by id, messages by count, raw output by bytes.
//
// A process killed mid-write can leave the last line of a file cut short: each line file is first cut back to its
// last whole line (readers already ignore such a tail; the collector would otherwise append after it).
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { CHECKPOINTS_FILE, MESSAGES_FILE } from "./run-history-log.js";

export interface RecordedRun {
  /** Ids of the events in events.jsonl. */
  events: Set<string>;
  /** Ids of the step checkpoints in checkpoints.jsonl. */
  checkpoints: Set<string>;
  /** Lines of messages.jsonl. */
  messages: number;
  /** Bytes of raw.log and stderr.log: the first that many bytes of the agent's stdout and stderr. */
  rawBytes: number;
  stderrBytes: number;
}

export const EVENTS_FILE = "events.jsonl";

/** Reads (and trims to whole lines) what the run directory `dir` holds; an empty record when it holds nothing. */
export function readRecordedRun(dir: string): RecordedRun {
  const events = idsOfLines(join(dir, EVENTS_FILE));
  const checkpoints = idsOfLines(join(dir, CHECKPOINTS_FILE));
  const messages = wholeLines(join(dir, MESSAGES_FILE)).length;
  return { events, checkpoints, messages, rawBytes: sizeOf(join(dir, "raw.log")), stderrBytes: sizeOf(join(dir, "stderr.log")) };
}

function idsOfLines(path: string): Set<string> {
  const ids = new Set<string>();
  for (const line of wholeLines(path)) {
    try {
      const id = (JSON.parse(line) as { id?: unknown }).id;
      if (typeof id === "string") ids.add(id);
    } catch {
      // Only this program writes these files; a line that is not JSON names nothing to skip.
    }
  }
  return ids;
}

/** The file's whole lines, after cutting it back to the end of the last one. */
function wholeLines(path: string): string[] {
  let fd: number;
  try {
    fd = openSync(path, "r+");
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const got = readSync(fd, buffer, read, size - read, read);
      if (got === 0) break;
      read += got;
    }
    const end = buffer.lastIndexOf(0x0a, read - 1) + 1;
    if (end < size) ftruncateSync(fd, end);
    const text = buffer.toString("utf8", 0, end);
    const lines = text.split("\n");
    lines.pop();
    return lines;
  } finally {
    closeSync(fd);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

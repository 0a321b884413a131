// Reads a job's events.jsonl files line by line (never a whole file in memory) and merges the runs' streams into
// one, ordered by timestamp: each run's file is already in order, so a merge of their heads is enough.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { wholeToolCalls } from "../model/recorded-tool-calls.js";
import { asLoggedEvent, type LoggedEvent } from "./logged-event.js";

export interface EventsFile {
  runId: string;
  path: string;
}

/** What went wrong reading the files: lines that are not events are skipped and counted, never fatal. */
export interface ReadProblems {
  /** Per run id: lines that are not JSON or lack an event's envelope (type, id, timestamp, runId). */
  malformedLines: Map<string, number>;
  /** Files that exist but could not be read, with why. */
  unreadable: Array<{ runId: string; path: string; reason: string }>;
}

export function newReadProblems(): ReadProblems {
  return { malformedLines: new Map(), unreadable: [] };
}

/** The events of one file, in file order. A missing file has none (a run that recorded nothing yet). */
export async function* readEventsFile(file: EventsFile, problems: ReadProblems): AsyncGenerator<LoggedEvent> {
  const input = createReadStream(file.path, { encoding: "utf8" });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      let event: LoggedEvent | undefined;
      try {
        event = asLoggedEvent(asEmitted(JSON.parse(line)));
      } catch {
        event = undefined;
      }
      if (event) yield event;
      else problems.malformedLines.set(file.runId, (problems.malformedLines.get(file.runId) ?? 0) + 1);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") problems.unreadable.push({ runId: file.runId, path: file.path, reason: code ?? (error as Error).message });
  } finally {
    lines.close();
    input.destroy();
  }
}

/**
 * A line's event with its tool calls whole (model/recorded-tool-calls.ts), so that filters and summaries see their
 * args; one whose shortcuts do not resolve stays as it is (`perstack log --json` says why when it expands it).
 * References to messages and checkpoints stay as recorded: they are read back, from other files, only when asked for.
 */
function asEmitted(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  try {
    return wholeToolCalls(value as Record<string, unknown>);
  } catch {
    return value;
  }
}

/**
 * One stream of every file's events by timestamp. Equal timestamps keep the order of `streams` (and each file's
 * own order), so the result is deterministic.
 */
export async function* mergeByTimestamp(streams: Array<AsyncIterable<LoggedEvent>>): AsyncGenerator<LoggedEvent> {
  const heads: Array<{ iterator: AsyncIterator<LoggedEvent>; event: LoggedEvent }> = [];
  for (const stream of streams) {
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (!first.done) heads.push({ iterator, event: first.value });
  }
  try {
    // A job has a handful of runs: a linear scan of the heads beats a heap's bookkeeping.
    while (heads.length > 0) {
      let next = 0;
      for (let i = 1; i < heads.length; i++) if (heads[i]!.event.timestamp < heads[next]!.event.timestamp) next = i;
      const head = heads[next]!;
      yield head.event;
      const advanced = await head.iterator.next();
      if (advanced.done) heads.splice(next, 1);
      else head.event = advanced.value;
    }
  } finally {
    // A consumer that stops early must not leave files open.
    await Promise.all(heads.map((head) => head.iterator.return?.()));
  }
}

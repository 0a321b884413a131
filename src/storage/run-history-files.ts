// Reads back what run-history-log.ts appends: the runs' checkpoints.jsonl (a step checkpoint per line) and
// messages.jsonl (a message per line) of one job. Each file is read once and kept (the messages of the few runs read
// last, an index of every step checkpoint), and read again only when something asked for is not in what was read: a
// run that is still going appends. Only whole lines count: a line still being written is not there yet. Nothing read
// here is trusted: a line is kept only if it is JSON, its id is safe and its run is the directory it was found in;
// job-reader.ts validates the checkpoint it makes of them.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isSafeId } from "../model/ids.js";
import { CHECKPOINTS_FILE, MESSAGES_FILE } from "./run-history-log.js";

export interface LoggedCheckpoint {
  /** The file it is a line of, for messages. */
  path: string;
  /** The line, parsed: a checkpoint with `messagesLog` instead of messages. */
  value: Record<string, unknown>;
}

type Read<T> = { ok: true; value: T } | { ok: false; reason: string };

export class RunHistoryFiles {
  private readonly recentMessages = new Map<string, unknown[]>();
  private readonly checkpoints = new Map<string, LoggedCheckpoint>();
  /** How much of each run's checkpoints.jsonl is indexed (its length in characters). */
  private readonly indexed = new Map<string, number>();

  constructor(
    private readonly perstackDir: string,
    private readonly jobId: string,
    private readonly keepRuns = 2,
  ) {}

  private runsDir(): string {
    return join(this.perstackDir, "jobs", this.jobId, "runs");
  }

  /** The step checkpoint `checkpointId` of any of the job's runs. */
  checkpoint(checkpointId: string): LoggedCheckpoint | undefined {
    const known = this.checkpoints.get(checkpointId);
    if (known) return known;
    this.index();
    return this.checkpoints.get(checkpointId);
  }

  /** The ids of every step checkpoint the job's runs have logged. */
  checkpointIds(): string[] {
    this.index();
    return [...this.checkpoints.keys()];
  }

  /** The first `count` messages of run `runId`, parsed JSON that the caller validates. */
  messages(runId: string, count: number): Read<unknown[]> {
    let messages = this.recentMessages.get(runId);
    if (!messages || messages.length < count) {
      const read = readLines(join(this.runsDir(), runId, MESSAGES_FILE));
      if (!read.ok) return read;
      messages = [];
      for (const [index, line] of read.value.entries()) {
        try {
          messages.push(JSON.parse(line));
        } catch {
          return { ok: false, reason: `${read.path}: line ${index + 1} is not JSON` };
        }
      }
      this.recentMessages.delete(runId);
      this.recentMessages.set(runId, messages);
      if (this.recentMessages.size > this.keepRuns) this.recentMessages.delete(this.recentMessages.keys().next().value!);
    }
    if (messages.length < count) return { ok: false, reason: `its run's ${MESSAGES_FILE} holds ${messages.length}` };
    return { ok: true, value: messages.slice(0, count) };
  }

  /** Indexes the lines of every run's checkpoints.jsonl not indexed yet. */
  private index(): void {
    let runs: string[];
    try {
      runs = readdirSync(this.runsDir()).filter(isSafeId);
    } catch {
      return;
    }
    for (const runId of runs) {
      const path = join(this.runsDir(), runId, CHECKPOINTS_FILE);
      const read = readLines(path);
      if (!read.ok || read.chars === (this.indexed.get(runId) ?? 0)) continue;
      this.indexed.set(runId, read.chars);
      for (const line of read.value) {
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          continue;
        }
        if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
        const { id, runId: lineRun } = value as Record<string, unknown>;
        if (typeof id !== "string" || !isSafeId(id) || lineRun !== runId || this.checkpoints.has(id)) continue;
        this.checkpoints.set(id, { path, value: value as Record<string, unknown> });
      }
    }
  }
}

/** A file's whole lines (a last line without its newline is left out) and their length in characters. */
function readLines(path: string): { ok: true; value: string[]; chars: number; path: string } | { ok: false; reason: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    return { ok: false, reason: (error as NodeJS.ErrnoException).code === "ENOENT" ? `${path} is missing` : (error as Error).message };
  }
  const whole = text.slice(0, text.lastIndexOf("\n") + 1);
  const lines = whole.split("\n");
  lines.pop();
  return { ok: true, value: lines, chars: whole.length, path };
}

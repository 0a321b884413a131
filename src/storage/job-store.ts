// perstack/jobs/<jobId>/: job.json, checkpoints/<id>.json, runs/<runId>/{run-setting.json, events.jsonl,
// messages.jsonl, checkpoints.jsonl, raw.log}. JSON documents are replaced atomically (temp file + rename) so a reader
// or a crash never sees half a file; events, messages, step checkpoints and raw output are appended through streams so
// the collector never waits on the disk per line.
//
// Storage stays linear in a run's length: a step's checkpoint is a line of its run's checkpoints.jsonl that names its
// messages in messages.jsonl (run-history-log.ts). The checkpoint a run stops on is a file, whole, in Perstack's shape,
// for `--continue` and for tools that read the files; job-reader.ts reads any checkpoint back whole, so each one can
// be resumed from.
import { createWriteStream, mkdirSync, readdirSync, type WriteStream } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join, relative, isAbsolute } from "node:path";
import { isSafeId } from "../model/ids.js";
import { wholeCheckpointJson } from "../model/event-messages.js";
import type { Checkpoint, CheckpointRef, Job, PerstackEvent } from "../model/perstack.js";
import { RunHistoryLog, type MessagesSource } from "./run-history-log.js";

export type { MessagesSource } from "./run-history-log.js";

let tempCounter = 0;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
  await writeFile(temp, text, { mode: 0o644 });
  await rename(temp, path);
}

/**
 * Ids reach this class from the agent's stream (the built-in engine issues checkpoint and delegated run ids). The
 * collector validates them first; this is the last line: a path is only ever built from a safe id, and checked to
 * stay inside the job's directory.
 */
export class UnsafeJobPathError extends Error {}

export class JobStore {
  readonly jobDir: string;

  constructor(
    readonly perstackDir: string,
    readonly jobId: string,
  ) {
    this.jobDir = join(perstackDir, "jobs", checkedId(jobId, "job"));
    mkdirSync(join(this.jobDir, "checkpoints"), { recursive: true });
  }

  writeJob(job: Job): Promise<void> {
    return writeJsonAtomic(join(this.jobDir, "job.json"), job);
  }

  checkpointPath(checkpointId: string): string {
    return this.inside(join("checkpoints", `${checkedId(checkpointId, "checkpoint")}.json`));
  }

  /** The ids of the checkpoint files on disk now. */
  checkpointIds(): Set<string> {
    const names = readdirSync(join(this.jobDir, "checkpoints"));
    return new Set(names.filter((name) => name.endsWith(".json")).map((name) => name.slice(0, -".json".length)));
  }

  writeCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return writeJsonAtomic(this.checkpointPath(checkpoint.id), checkpoint);
  }

  /** A checkpoint file, whole: its messages the first messagesRef.count of `messages`. Not indented. */
  async writeCheckpointFrom(checkpoint: CheckpointRef, messages: MessagesSource | undefined): Promise<void> {
    const count = checkpoint.messagesRef.count;
    if (count > (messages?.length ?? 0)) throw new Error(`checkpoint ${checkpoint.id}: its run has fewer than ${count} messages`);
    await writeTextAtomic(this.checkpointPath(checkpoint.id), `${wholeCheckpointJson(checkpoint, messages?.json(count) ?? "[]")}\n`);
  }

  runDir(runId: string): string {
    return this.inside(join("runs", checkedId(runId, "run")));
  }

  /** `logs: false` for a delegated run: the container's raw output and stderr belong to the job's root run. */
  openRun(runId: string, options: { logs?: boolean } = {}): RunFiles {
    return new RunFiles(this.runDir(runId), options);
  }

  private inside(rel: string): string {
    const path = join(this.jobDir, rel);
    const back = relative(this.jobDir, path);
    if (back === "" || back.startsWith("..") || isAbsolute(back)) throw new UnsafeJobPathError(`refusing a path outside ${this.jobDir}: ${rel}`);
    return path;
  }
}

function checkedId(id: string, what: string): string {
  if (!isSafeId(id)) throw new UnsafeJobPathError(`refusing ${what} id ${JSON.stringify(String(id).slice(0, 80))}: ids are letters, digits, '-' and '_'`);
  return id;
}

/** Past this many bytes of events waiting for their write, they are written at once. */
const EVENT_BATCH_BYTES = 256 * 1024;

export class RunFiles {
  private readonly events: WriteStream;
  private pendingEvents: string[] = [];
  private pendingBytes = 0;
  private readonly raw: WriteStream | undefined;
  private readonly stderr: WriteStream | undefined;
  private readonly history: RunHistoryLog;

  constructor(
    readonly dir: string,
    options: { logs?: boolean } = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.events = createWriteStream(join(dir, "events.jsonl"), { flags: "a" });
    this.history = new RunHistoryLog(dir);
    if (options.logs !== false) {
      this.raw = createWriteStream(join(dir, "raw.log"), { flags: "a" });
      this.stderr = createWriteStream(join(dir, "stderr.log"), { flags: "a" });
    }
  }

  writeSetting(setting: unknown): Promise<void> {
    return writeJsonAtomic(join(this.dir, "run-setting.json"), setting);
  }

  /**
   * Events of one chunk of output (all handled before the next turn of the event loop) go to the file as one write:
   * a write per event costs more than the event.
   */
  appendEvent(event: PerstackEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    this.pendingEvents.push(line);
    this.pendingBytes += line.length;
    if (this.pendingEvents.length === 1) queueMicrotask(() => this.flushEvents());
    else if (this.pendingBytes >= EVENT_BATCH_BYTES) this.flushEvents();
  }

  private flushEvents(): void {
    if (this.pendingEvents.length === 0) return;
    this.events.write(this.pendingEvents.join(""));
    this.pendingEvents = [];
    this.pendingBytes = 0;
  }

  /** A step checkpoint as a line of checkpoints.jsonl (run-history-log.ts); false: write it as a file instead. */
  appendCheckpoint(checkpoint: CheckpointRef, messages: MessagesSource): boolean {
    return this.history.append(checkpoint, messages);
  }

  appendRaw(chunk: Buffer | string): void {
    this.raw?.write(chunk);
  }

  appendStderr(chunk: Buffer | string): void {
    this.stderr?.write(chunk);
  }

  /** Bytes written but not yet on disk, over all of this run's files. */
  backlog(): number {
    return this.pendingBytes + [this.events, this.raw, this.stderr, ...this.history.streams()].reduce((sum, stream) => sum + (stream?.writableLength ?? 0), 0);
  }

  /** Resolves when every file whose buffer is full has drained. */
  async drained(): Promise<void> {
    this.flushEvents();
    await Promise.all(
      [this.events, this.raw, this.stderr, ...this.history.streams()].map((stream) =>
        stream && stream.writableNeedDrain ? new Promise<void>((resolve) => stream.once("drain", () => resolve())) : undefined,
      ),
    );
  }

  async close(): Promise<void> {
    this.flushEvents();
    await Promise.all(
      [
        ...[this.events, this.raw, this.stderr].map((stream) => stream && new Promise<void>((resolve) => stream.end(() => resolve()))),
        this.history.close(),
      ],
    );
  }
}

// perstack/jobs/<jobId>/: job.json, checkpoints/<id>.json, runs/<runId>/{run-setting.json, events.jsonl,
// messages.jsonl, checkpoints.jsonl, raw.log}. JSON documents are replaced atomically (temp file + rename) so a reader
// or a crash never sees half a file; events, messages, step checkpoints and raw output are appended through streams so
// the collector never waits on the disk per line.
//
// Storage stays linear in a run's length: a step's checkpoint is a line of its run's checkpoints.jsonl that names its
// messages in messages.jsonl (run-history-log.ts). The checkpoint a run stops on is a file, whole, in Perstack's shape,
// for `--continue` and for tools that read the files; job-reader.ts reads any checkpoint back whole, so each one can
// be resumed from.
import { appendFileSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import { isSafeId } from "../model/ids.js";
import { recordedEvent, wholeCheckpointJsonAround } from "../model/event-messages.js";
import type { CheckpointRef, Job, PerstackEvent } from "../model/perstack.js";
import { LineWriter } from "../stream/line-writer.js";
import { AppendFile } from "./append-file.js";
import { RunHistoryFiles } from "./run-history-files.js";
import { RunHistoryLog, type MessagesSource } from "./run-history-log.js";
import type { RecordedRun } from "./recorded-run.js";

export type { MessagesSource } from "./run-history-log.js";

let tempCounter = 0;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Replaces `path` whole: written aside, flushed to the disk (fsync), renamed into place, and the directory flushed too,
 * so that after a crash or a power cut the file is the old one or the new one, never a part, and once this resolves
 * the new one stays. A write that fails (a full disk) leaves the old file and no temporary one.
 */
async function writeTextAtomic(path: string, text: string | Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> {
  const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
  try {
    const handle = await open(temp, "w", 0o644);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Flushes a directory's entries (a rename in it) to the disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** How much of a long text is encoded at a time. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * The pieces of a text as UTF-8, a chunk at a time, each piece encoded straight into its chunk: a whole checkpoint's
 * conversation is never one string (joined, then copied again to be encoded). Each chunk is written (writeFile awaits
 * its write) before the next is asked for, so the next is encoded into the same memory.
 */
function* utf8Chunks(pieces: Iterable<string>): Generator<Buffer> {
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let used = 0;
  for (const piece of pieces) {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    const room = piece.length * 3;
    if (used + room > chunk.length) {
      if (used > 0) yield chunk.subarray(0, used);
      if (room > chunk.length) chunk = Buffer.allocUnsafe(room);
      used = 0;
    }
    used += chunk.write(piece, used);
  }
  if (used > 0) yield chunk.subarray(0, used);
}

/**
 * A checkpoint file's text: its fields, its messages, a newline. Those the source released come as bytes (`released`:
 * messages.jsonl's lines, joined by commas, RunHistoryLog.releasedMessages), then those it holds (`held`, JSON texts).
 */
async function* wholeCheckpointChunks(checkpoint: CheckpointRef, released: AsyncIterable<Buffer> | undefined, held: string[]): AsyncGenerator<Buffer> {
  const { before, after } = wholeCheckpointJsonAround(checkpoint);
  yield Buffer.from(`${before}[`);
  if (released) {
    yield* released;
    if (held.length > 0) yield Buffer.from(",");
  }
  yield* utf8Chunks(joined(held, `]${after}\n`));
}

/** The texts with commas between them, then `end`. */
function* joined(texts: string[], end: string): Generator<string> {
  for (let index = 0; index < texts.length; index++) {
    if (index > 0) yield ",";
    yield texts[index]!;
  }
  yield end;
}

/** Where a whole checkpoint's released messages are read back from: its run's files (RunFiles). */
export interface ReleasedMessages {
  releasedMessages(count: number): AsyncIterable<Buffer>;
}

/**
 * Ids reach this class from the agent's stream (the built-in engine issues checkpoint and delegated run ids). The
 * collector validates them first; this is the last line: a path is only ever built from a safe id, and checked to
 * stay inside the job's directory.
 */
export class UnsafeJobPathError extends Error {}

/** runs/<rootRunId>/delegated-runs: the delegated runs an invocation opened, an id a line. */
export const DELEGATED_RUNS_FILE = "delegated-runs";

export class JobStore {
  readonly jobDir: string;
  private history: RunHistoryFiles | undefined;

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

  /** The ids of the job's checkpoints on disk now: the files, and the step checkpoints its runs have logged. */
  checkpointIds(): Set<string> {
    const names = readdirSync(join(this.jobDir, "checkpoints"));
    const files = names.filter((name) => name.endsWith(".json")).map((name) => name.slice(0, -".json".length));
    return new Set([...files, ...new RunHistoryFiles(this.perstackDir, this.jobId).checkpointIds()]);
  }

  /** Notes that the invocation of root run `rootRunId` delegated to run `runId` (before that run's files are made). */
  noteDelegatedRun(rootRunId: string, runId: string): void {
    const dir = this.runDir(rootRunId);
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, DELEGATED_RUNS_FILE), `${checkedId(runId, "run")}\n`);
  }

  /** The runs the invocation of root run `rootRunId` delegated to, as noted. */
  delegatedRuns(rootRunId: string): Set<string> {
    try {
      const text = readFileSync(join(this.runDir(rootRunId), DELEGATED_RUNS_FILE), "utf8");
      return new Set(text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter(isSafeId));
    } catch {
      return new Set();
    }
  }

  /**
   * The run a checkpoint on disk belongs to: the run whose checkpoints.jsonl logs it, else the runId its file names.
   * Only this program writes these files.
   */
  checkpointOwner(checkpointId: string): string | undefined {
    this.history ??= new RunHistoryFiles(this.perstackDir, this.jobId);
    const logged = this.history.checkpoint(checkpointId);
    if (logged) return basename(dirname(logged.path));
    try {
      const runId = (JSON.parse(readFileSync(this.checkpointPath(checkpointId), "utf8")) as { runId?: unknown }).runId;
      return typeof runId === "string" ? runId : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A checkpoint file, whole: its messages the first messagesRef.count of `messages`; those `messages` released are
   * read back from `files`, the run's messages.jsonl. Not indented.
   */
  async writeCheckpointFrom(checkpoint: CheckpointRef, messages: MessagesSource | undefined, files?: ReleasedMessages): Promise<void> {
    const count = checkpoint.messagesRef.count;
    if (count > (messages?.length ?? 0)) throw new Error(`checkpoint ${checkpoint.id}: its run has fewer than ${count} messages`);
    // Taken now, before anything is awaited: the source may release more meanwhile, and what it releases then is in
    // the file by the time it is read.
    const released = Math.min(count, messages?.firstHeld ?? 0);
    const held: string[] = [];
    for (let index = released; index < count; index++) held.push(messages!.text(index));
    if (released > 0 && !files) throw new Error(`checkpoint ${checkpoint.id}: ${released} of its messages were released and there is no file to read them from`);
    await writeTextAtomic(this.checkpointPath(checkpoint.id), wholeCheckpointChunks(checkpoint, released > 0 ? files!.releasedMessages(released) : undefined, held));
  }

  runDir(runId: string): string {
    return this.inside(join("runs", checkedId(runId, "run")));
  }

  /** `logs: false` for a delegated run: the container's raw output and stderr belong to the job's root run. */
  openRun(runId: string, options: RunFilesOptions = {}): RunFiles {
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

export interface RunFilesOptions {
  /** false for a delegated run: the container's raw output and stderr belong to the job's root run. */
  logs?: boolean;
  /** The run is taken over after its collector died: what its files hold is not written again (recorded-run.ts). */
  resumed?: RecordedRun;
}

export class RunFiles {
  private readonly events: AppendFile;
  private readonly eventLines: LineWriter;
  private readonly raw: AppendFile | undefined;
  private readonly stderr: AppendFile | undefined;
  private readonly history: RunHistoryLog;
  /** The first write that failed (ENOSPC: the disk is full); each file keeps what it had whole. */
  failure: NodeJS.ErrnoException | undefined;
  private readonly failureListeners: Array<(error: NodeJS.ErrnoException) => void> = [];

  /** Taken over: ids of the events already recorded, and bytes of raw output and stderr still to skip. */
  private readonly recordedEvents: ReadonlySet<string> | undefined;
  private rawToSkip: number;
  private stderrToSkip: number;

  constructor(
    readonly dir: string,
    options: RunFilesOptions = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.events = this.append("events.jsonl");
    this.eventLines = new LineWriter(this.events);
    this.history = new RunHistoryLog(dir, (error) => this.failed(error), options.resumed);
    this.recordedEvents = options.resumed?.events;
    this.rawToSkip = options.resumed?.rawBytes ?? 0;
    this.stderrToSkip = options.resumed?.stderrBytes ?? 0;
    if (options.logs !== false) {
      this.raw = this.append("raw.log");
      this.stderr = this.append("stderr.log");
    }
  }

  /** Called once, on the first failed write. */
  onFailure(listener: (error: NodeJS.ErrnoException) => void): void {
    this.failureListeners.push(listener);
  }

  private append(name: string): AppendFile {
    const file = new AppendFile(join(this.dir, name));
    file.on("error", (error: NodeJS.ErrnoException) => this.failed(error));
    return file;
  }

  private failed(error: NodeJS.ErrnoException): void {
    if (this.failure) return;
    this.failure = error;
    for (const listener of this.failureListeners) listener(error);
  }

  writeSetting(setting: unknown): Promise<void> {
    return writeJsonAtomic(join(this.dir, "run-setting.json"), setting);
  }

  /**
   * Events of one chunk of output (all handled before the next turn of the event loop) go to the file as one write.
   * False when the run was taken over and the event is recorded already.
   */
  appendEvent(event: PerstackEvent): boolean {
    if (this.recordedEvents?.has(event.id)) return false;
    this.eventLines.line(JSON.stringify(recordedEvent(event)));
    return true;
  }

  /**
   * A step checkpoint as a line of checkpoints.jsonl (run-history-log.ts); false: write it as a file instead. With
   * `release`, `messages` lets go of the messages that are lines of messages.jsonl now.
   */
  appendCheckpoint(checkpoint: CheckpointRef, messages: MessagesSource, release = false): boolean {
    return this.history.append(checkpoint, messages, release);
  }

  /** The first `count` messages of messages.jsonl, joined by commas, once every queued line is written. */
  releasedMessages(count: number): AsyncIterable<Buffer> {
    return this.history.releasedMessages(count);
  }

  appendRaw(chunk: Buffer): void {
    const skip = Math.min(this.rawToSkip, chunk.length);
    this.rawToSkip -= skip;
    if (skip < chunk.length) this.raw?.write(skip > 0 ? chunk.subarray(skip) : chunk);
  }

  appendStderr(chunk: Buffer): void {
    const skip = Math.min(this.stderrToSkip, chunk.length);
    this.stderrToSkip -= skip;
    if (skip < chunk.length) this.stderr?.write(skip > 0 ? chunk.subarray(skip) : chunk);
  }

  /** Bytes written but not yet on disk, over all of this run's files. */
  backlog(): number {
    return this.eventLines.queued + this.history.queued() + [this.events, this.raw, this.stderr, ...this.history.streams()].reduce((sum, stream) => sum + (stream?.writableLength ?? 0), 0);
  }

  /** Resolves when every file whose buffer is full has drained. */
  async drained(): Promise<void> {
    this.eventLines.flush();
    this.history.flush();
    await Promise.all(
      [this.events, this.raw, this.stderr, ...this.history.streams()].map((stream) =>
        stream && stream.writableNeedDrain && !stream.destroyed
          ? new Promise<void>((resolve) => {
              // A file whose write failed never drains: it is done.
              stream.once("drain", () => resolve());
              stream.once("close", () => resolve());
            })
          : undefined,
      ),
    );
  }

  async close(): Promise<void> {
    this.eventLines.flush();
    await Promise.all(
      [
        ...[this.events, this.raw, this.stderr].map((stream) => stream && new Promise<void>((resolve) => stream.end(() => resolve()))),
        this.history.close(),
      ],
    );
  }
}

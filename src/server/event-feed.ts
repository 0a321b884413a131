// A job's events for Server-Sent Events (`GET /v1/runs/{jobId}/events`): every line of every run's events.jsonl, what
// was written before the client came and what is written while it stays, until the job stops running and every file
// is read to its end. Independent of any HTTP framework: the server turns items into wire text with formatSse.
//
// A client that drops must resume exactly where it left off, with every event once. Runs append to their own files
// concurrently and delegated runs appear while the job runs, so no single position in one file says what a client has
// seen, and the order in which lines of different runs are discovered differs between two readers. The SSE id is
// therefore a cursor with a count per run: how many lines of its events.jsonl the client has been given (or skipped).
// Whatever order a resumed feed reads in, it starts each run after that many lines, and a run the cursor does not
// name starts at line 0.
//
// The Last-Event-ID header comes from the client, so parseCursor trusts nothing: a bounded length, one strict format,
// safe ids only (a run id names a directory), and every failure is an InvalidCursorError (a 400). A cursor that names a
// run the job does not have, or more lines than a run has, is refused when the feed opens, before any byte is sent.
//
// Files are read from byte offsets that only move past whole lines (a last line without its newline is still being
// written), in chunks, so a job's history is never in memory at once. fs.watch only makes the feed react sooner: it
// is unreliable or absent on some file systems and runs out of inotify watches, so a poll every pollMs does the work
// on its own.
import { statSync, watch, type FSWatcher } from "node:fs";
import { open, readdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { BadInputError, PerstackError } from "../errors.js";
import { isSafeId } from "../model/ids.js";
import { jobsDir, readJob } from "../storage/job-reader.js";

/** What a client has seen: per run id, how many lines of its events.jsonl. A run not named has been seen not at all. */
export type FeedCursor = ReadonlyMap<string, number>;

export interface FeedItem {
  /** The cursor just after this event, as text: the SSE id, and what Last-Event-ID sends back. */
  id: string;
  runId: string;
  event: Record<string, unknown>;
}

export interface JobEventFeedOptions {
  /** Resume after this cursor (parseCursor of Last-Event-ID); none: from the first line of every run. */
  after?: FeedCursor;
  /** Ends the feed (quietly) once aborted: the client went away or the server is closing. */
  signal?: AbortSignal;
  /** How often to look for new lines, runs and the job's status when no watch event came first. */
  pollMs?: number;
  /** Whether to use fs.watch to react sooner (the poll alone is correct). */
  watch?: boolean;
  /** The most bytes read at once. */
  chunkBytes?: number;
  /** A line longer than this is skipped unread (still counted), so one runaway line cannot exhaust memory. */
  maxLineBytes?: number;
}

/** A Last-Event-ID that is not a cursor of this job's feed. The server answers 400 with the message. */
export class InvalidCursorError extends BadInputError {}

/** The job's files changed in a way append-only files cannot (a file shrank below what was already sent). */
export class EventFeedError extends PerstackError {}

export const MAX_CURSOR_LENGTH = 16 * 1024;
const CURSOR_VERSION = "v1:";
// A run id (ids.ts SAFE_ID), a dot, a line count without leading zeros. Anchored, no nested repetition: linear time
// on any input.
const CURSOR_ENTRY = /^([A-Za-z0-9][A-Za-z0-9_-]{0,127})\.([1-9][0-9]{0,15})$/;

const DEFAULT_POLL_MS = 250;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
// Beyond this many runs, new run directories are polled only: each watch holds an inotify watch of the machine's.
const MAX_RUN_WATCHERS = 64;
const EVENTS_FILE = "events.jsonl";
const NEWLINE = 0x0a;

/**
 * The cursor as SSE id text: `v1:` then `<runId>.<lines>` for each run with lines seen, comma-separated, e.g.
 * `v1:mb2k9x0a1b2c3d4e5f6.12,mb2k9x1f00aa11bb22cc.3`. Only letters, digits, `-`, `_`, `.`, `:` and `,`: safe in a
 * header and in an SSE field, with no encoding to undo (run ids already are safe ids).
 */
export function formatCursor(cursor: FeedCursor): string {
  const entries: string[] = [];
  for (const [runId, lines] of cursor) if (lines > 0) entries.push(`${runId}.${lines}`);
  return CURSOR_VERSION + entries.join(",");
}

/**
 * A Last-Event-ID header's value as a cursor. Throws InvalidCursorError, and nothing else, for anything formatCursor
 * would not have written: wrong type (a repeated header arrives as an array), longer than MAX_CURSOR_LENGTH, another
 * version, an id that is not a safe id, a count that is 0, has leading zeros or is not a safe integer, a run twice.
 */
export function parseCursor(text: unknown): FeedCursor {
  if (typeof text !== "string") throw new InvalidCursorError("Last-Event-ID: expected one cursor as sent in an event's id");
  if (text.length > MAX_CURSOR_LENGTH) throw new InvalidCursorError(`Last-Event-ID: longer than ${MAX_CURSOR_LENGTH} characters; send an event's id as it was received`);
  if (!text.startsWith(CURSOR_VERSION)) throw new InvalidCursorError(`Last-Event-ID: not a cursor of this server (it starts with "${CURSOR_VERSION}"); send an event's id as it was received`);
  const cursor = new Map<string, number>();
  const body = text.slice(CURSOR_VERSION.length);
  if (body === "") return cursor;
  for (const [index, entry] of body.split(",").entries()) {
    const match = CURSOR_ENTRY.exec(entry);
    const lines = match ? Number(match[2]) : Number.NaN;
    if (!match || !Number.isSafeInteger(lines)) {
      throw new InvalidCursorError(`Last-Event-ID: entry ${index + 1} is not <runId>.<lines>; send an event's id as it was received`);
    }
    const runId = match[1]!;
    if (cursor.has(runId)) throw new InvalidCursorError(`Last-Event-ID: run ${runId} is named twice; send an event's id as it was received`);
    cursor.set(runId, lines);
  }
  return cursor;
}

/** One run's events.jsonl as far as the feed has read it. */
interface RunState {
  runId: string;
  path: string;
  /** Lines given out or skipped: the run's count in the cursor. */
  lines: number;
  /** Bytes up to the end of the last whole line counted. Everything after it is read again next time (see readRun). */
  offset: number;
  /**
   * Set while a line longer than maxLineBytes is being skipped: where the search for its newline goes on (its bytes
   * up to there, from `offset`, hold none). Its bytes are not kept; the line will be counted, not given out.
   */
  skippingTo: number | undefined;
}

/**
 * The feed of job `jobId`'s events. Iterate it once (`for await`); call open() first to have a missing job or a bad
 * cursor refused before the response starts (iteration opens it too). The iteration ends when the job is no longer
 * `running` and every file has been read to its end, or when the signal aborts; it throws JobNotFoundError when
 * job.json goes away or cannot be read, EventFeedError when a file shrinks under it.
 */
export class JobEventFeed implements AsyncIterable<FeedItem> {
  private readonly jobDir: string;
  private readonly runsDir: string;
  private readonly pollMs: number;
  private readonly chunkBytes: number;
  private readonly maxLineBytes: number;
  private readonly useWatch: boolean;
  private readonly signal: AbortSignal | undefined;
  /** In the order they were found, which is the order of each pass (any order is right: the cursor counts per run). */
  private readonly runs = new Map<string, RunState>();
  private opened: Promise<void> | undefined;
  private iterated = false;
  private readonly watchers = new Map<string, FSWatcher>();
  /** A watch event came since the last pass began: the next wait returns at once. */
  private woken = false;
  private wake: (() => void) | undefined;
  /** job.json as last read: it is parsed again only when it was replaced or changed. */
  private jobSeen: { key: string; running: boolean } | undefined;

  constructor(
    private readonly perstackDir: string,
    private readonly jobId: string,
    private readonly options: JobEventFeedOptions = {},
  ) {
    this.jobDir = join(jobsDir(perstackDir), jobId);
    this.runsDir = join(this.jobDir, "runs");
    this.pollMs = positive(options.pollMs, DEFAULT_POLL_MS, "pollMs");
    this.chunkBytes = positive(options.chunkBytes, DEFAULT_CHUNK_BYTES, "chunkBytes");
    this.maxLineBytes = positive(options.maxLineBytes, DEFAULT_MAX_LINE_BYTES, "maxLineBytes");
    this.useWatch = options.watch ?? true;
    this.signal = options.signal;
  }

  /** What the feed has given out so far (the id of the last item, as a map). */
  get cursor(): FeedCursor {
    return new Map([...this.runs.values()].filter((run) => run.lines > 0).map((run) => [run.runId, run.lines]));
  }

  /**
   * Checks that the job exists (JobNotFoundError) and that the cursor is one of its feed's (InvalidCursorError: a run
   * the job does not have, or more lines than a run has), and finds where each run resumes. Idempotent.
   */
  open(): Promise<void> {
    this.opened ??= this.openOnce();
    return this.opened;
  }

  private async openOnce(): Promise<void> {
    // readJob refuses an unsafe job id before it names a path.
    readJob(this.perstackDir, this.jobId);
    const found = await this.listRuns();
    const after = this.options.after ?? new Map<string, number>();
    for (const runId of after.keys()) {
      // A cursor names runs its feed read lines of, and run directories are never removed while a job is kept.
      if (!found.includes(runId)) throw new InvalidCursorError(`Last-Event-ID: job ${this.jobId} has no run ${runId}; send an id of this job's events`);
    }
    for (const runId of found) {
      const run = this.addRun(runId);
      const lines = after.get(runId) ?? 0;
      if (lines > 0) await this.skipLines(run, lines);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<FeedItem> {
    if (this.iterated) throw new Error("a JobEventFeed is iterated once; make another for another client");
    this.iterated = true;
    return this.items();
  }

  private async *items(): AsyncGenerator<FeedItem> {
    const onAbort = () => this.wake?.();
    this.signal?.addEventListener("abort", onAbort);
    try {
      await this.open();
      if (this.useWatch) {
        this.watchDir(this.jobDir, (name) => name === null || name === "runs" || name.startsWith("job.json"));
        for (const run of this.runs.values()) this.watchRun(run);
      }
      for (;;) {
        if (this.signal?.aborted) return;
        this.woken = false;
        // The status is read before the files: whatever was written before the job stopped running is then in them,
        // so a pass that finds nothing new after a stopped status has read everything there is.
        const running = this.jobRunning();
        let progressed = await this.discoverRuns();
        for (const run of this.runs.values()) {
          if (yield* this.readRun(run)) progressed = true;
          if (this.signal?.aborted) return;
        }
        if (!running && !progressed) return;
        // Once stopped, a pass that read something is followed by one more at once, to make sure nothing is left.
        if (running) await this.idle();
      }
    } finally {
      this.signal?.removeEventListener("abort", onAbort);
      for (const watcher of this.watchers.values()) watcher.close();
      this.watchers.clear();
    }
  }

  /** Waits for a watch event, pollMs or the signal, whichever comes first. */
  private async idle(): Promise<void> {
    if (this.woken || this.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.pollMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = undefined;
  }

  private jobRunning(): boolean {
    // Written by rename: a new inode, or at least a new mtime or size, whenever it changes. A missing or unreadable
    // file is left to readJob, whose error names it and says what to do.
    let key: string | undefined;
    try {
      const info = statSync(join(this.jobDir, "job.json"), { throwIfNoEntry: false });
      key = info && `${info.ino}:${info.mtimeMs}:${info.size}`;
    } catch {
      key = undefined;
    }
    if (key !== undefined && this.jobSeen?.key === key) return this.jobSeen.running;
    const running = readJob(this.perstackDir, this.jobId).status === "running";
    if (key !== undefined) this.jobSeen = { key, running };
    return running;
  }

  /** The job's run directories, sorted; none while runs/ does not exist yet. */
  private async listRuns(): Promise<string[]> {
    try {
      const entries = await readdir(this.runsDir, { withFileTypes: true });
      return entries.filter((entry) => entry.isDirectory() && isSafeId(entry.name)).map((entry) => entry.name).sort();
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  /** Adds the runs that appeared since the last look (delegates); whether there were any. */
  private async discoverRuns(): Promise<boolean> {
    let added = false;
    // runs/ may appear only after the feed began watching (a job that has just started).
    if (this.useWatch) this.watchDir(this.runsDir, () => true);
    for (const runId of await this.listRuns()) {
      if (this.runs.has(runId)) continue;
      const run = this.addRun(runId);
      if (this.useWatch) this.watchRun(run);
      added = true;
    }
    return added;
  }

  private addRun(runId: string): RunState {
    const run: RunState = { runId, path: join(this.runsDir, runId, EVENTS_FILE), lines: 0, offset: 0, skippingTo: undefined };
    this.runs.set(runId, run);
    return run;
  }

  /** Moves a resumed run past the `lines` lines the client has seen, counting newlines without parsing. */
  private async skipLines(run: RunState, lines: number): Promise<void> {
    const handle = await openQuiet(run.path);
    let position = 0;
    let counted = 0;
    if (handle) {
      try {
        const { size } = await handle.stat();
        while (counted < lines && position < size) {
          const chunk = await readChunk(handle, position, Math.min(this.chunkBytes, size - position));
          if (chunk.length === 0) break;
          let start = 0;
          let newline: number;
          while (counted < lines && (newline = chunk.indexOf(NEWLINE, start)) !== -1) {
            counted++;
            start = newline + 1;
          }
          position += counted === lines ? start : chunk.length;
        }
      } finally {
        await handle.close();
      }
    }
    if (counted < lines) {
      throw new InvalidCursorError(`Last-Event-ID: run ${run.runId} of job ${this.jobId} has ${counted} lines of events, not ${lines}; send an id of this job's events`);
    }
    run.lines = lines;
    run.offset = position;
  }

  /**
   * Gives out the run's whole lines from its offset up to the file's size when the read began (a file that keeps
   * growing must not keep the other runs waiting); returns whether any line was counted. The bytes of a last line
   * without its newline are not kept between passes: they are read again from `offset` next time, so a file cut back to
   * its last whole line (append-file.ts on a full disk) and written again is read as it now is.
   */
  private async *readRun(run: RunState): AsyncGenerator<FeedItem, boolean> {
    const handle = await openQuiet(run.path);
    if (!handle) return false;
    let progressed = false;
    try {
      const { size } = await handle.stat();
      if (size < run.offset) {
        throw new EventFeedError(`${run.path}: the file is ${size} bytes, shorter than the ${run.offset} bytes (${run.lines} lines) already sent; it was rewritten, so its events can no longer be followed`);
      }
      if (run.skippingTo !== undefined && run.skippingTo > size) run.skippingTo = undefined;
      let position = run.skippingTo ?? run.offset;
      let partial: Buffer[] = [];
      let partialBytes = 0;
      while (position < size) {
        if (this.signal?.aborted) return progressed;
        const chunk = await readChunk(handle, position, Math.min(this.chunkBytes, size - position));
        if (chunk.length === 0) break;
        let start = 0;
        let newline: number;
        while ((newline = chunk.indexOf(NEWLINE, start)) !== -1) {
          // Judged on the whole line's length, not on where chunks happen to end, so that every reader skips the same lines.
          const skipped = run.skippingTo !== undefined || partialBytes + newline - start > this.maxLineBytes;
          const line = skipped ? undefined : partialBytes === 0 ? chunk.subarray(start, newline) : Buffer.concat([...partial, chunk.subarray(start, newline)]);
          partial = [];
          partialBytes = 0;
          run.skippingTo = undefined;
          run.lines++;
          run.offset = position + newline + 1;
          start = newline + 1;
          progressed = true;
          const event = line && asObject(line);
          if (event) yield { id: this.cursorText(), runId: run.runId, event };
          if (this.signal?.aborted) return progressed;
        }
        if (run.skippingTo === undefined && start < chunk.length) {
          if (partialBytes + chunk.length - start > this.maxLineBytes) {
            run.skippingTo = position + chunk.length;
            partial = [];
            partialBytes = 0;
          } else {
            // A copy: the rest of the chunk is dropped with it, only the line's start must stay.
            partial.push(Buffer.from(chunk.subarray(start)));
            partialBytes += chunk.length - start;
          }
        } else if (run.skippingTo !== undefined) {
          run.skippingTo = position + chunk.length;
        }
        position += chunk.length;
      }
      return progressed;
    } finally {
      await handle.close();
    }
  }

  /** The cursor's text now; the same as formatCursor(this.cursor) without building the map. */
  private cursorText(): string {
    const entries: string[] = [];
    for (const run of this.runs.values()) if (run.lines > 0) entries.push(`${run.runId}.${run.lines}`);
    return CURSOR_VERSION + entries.join(",");
  }

  private watchRun(run: RunState): void {
    if (this.watchers.size >= MAX_RUN_WATCHERS + 2) return;
    this.watchDir(join(this.runsDir, run.runId), (name) => name === null || name === EVENTS_FILE);
  }

  /** Wakes the feed on changes in `dir` that `relevant` accepts; where watching fails, the poll does the work. */
  private watchDir(dir: string, relevant: (name: string | null) => boolean): void {
    if (this.watchers.has(dir)) return;
    let watcher: FSWatcher;
    try {
      // Not persistent: a feed must never be what keeps the process alive.
      watcher = watch(dir, { persistent: false }, (_type, name) => {
        if (!relevant(typeof name === "string" ? name : null)) return;
        this.woken = true;
        this.wake?.();
      });
    } catch {
      return;
    }
    watcher.on("error", () => {
      watcher.close();
      this.watchers.delete(dir);
    });
    this.watchers.set(dir, watcher);
  }
}

/** A JSON object line's value; anything else (not JSON, an array, a number) is not an event. */
function asObject(line: Buffer): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line.toString("utf8"));
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Up to `length` bytes at `position`: fewer only when the file ends sooner (it shrank since its stat). */
async function readChunk(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  // Allocated per read and sized to what is there: an idle feed holds no buffer, and live tailing reads a few bytes.
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

/** The file open for reading, or undefined when it does not exist yet (a run that has recorded nothing). */
async function openQuiet(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`JobEventFeed: ${name} must be a positive number, not ${value}`);
  return value;
}

// SSE wire text. A field ends at CR or LF, so nothing put in one may hold either: JSON.stringify escapes them inside
// strings and adds none between tokens, the id is a cursor (formatCursor: no such characters), and an event type
// that is not a plain name is left out, which makes the event a "message" (the type is in the data too).
const SSE_EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,128}$/;

/** One event as SSE: `id: <cursor>`, `event: <type>`, `data: <json>`, then the blank line that ends it. */
export function formatSse(item: FeedItem): string {
  if (/[\r\n\0]/.test(item.id)) throw new RangeError("formatSse: an SSE id cannot hold CR, LF or NUL");
  const type = item.event.type;
  const eventLine = typeof type === "string" && SSE_EVENT_TYPE.test(type) ? `event: ${type}\n` : "";
  return `id: ${item.id}\n${eventLine}data: ${JSON.stringify(item.event)}\n\n`;
}

/**
 * An SSE comment line: ignored by clients, but it keeps proxies and load balancers from closing a quiet stream.
 * Send one every 15-30 s while no event comes.
 */
export function sseKeepAlive(text = "keep-alive"): string {
  return `: ${text.replace(/[\r\n]+/g, " ")}\n\n`;
}

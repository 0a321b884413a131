// Lines of text appended to a stream in batches. A line is encoded as UTF-8 straight into a slab of memory, and the
// lines queued in one turn (or up to BATCH_BYTES of them) reach the stream as one Buffer: a write per line costs more
// than the line, and joining the lines into one string first would copy every byte twice more before the disk. A slab
// whose batches are all written is used again: fresh memory costs a page fault per page on its first touch.
import type { Writable } from "node:stream";

/** Past this many queued bytes the batch is written at once rather than at the end of the turn. */
const BATCH_BYTES = 256 * 1024;
/** Batches are cut from slabs this large, so that a batch costs no allocation of its own. */
const SLAB_BYTES = 1024 * 1024;
/** The most UTF-8 bytes one UTF-16 code unit of a string can take (a surrogate pair: 4 for 2). */
const MAX_BYTES_PER_UNIT = 3;

type WriteCallback = (error?: Error | null) => void;

/** A write handed to the stream, and what waits for it. */
interface Batch {
  done: boolean;
  callbacks: WriteCallback[];
}

/** Memory batches are encoded into, and how many of the batches cut from it the stream has yet to write. */
interface Slab {
  bytes: Buffer;
  unwritten: number;
}

export class LineWriter {
  private slab: Slab = { bytes: Buffer.allocUnsafe(SLAB_BYTES), unwritten: 0 };
  /** A slab done with, all its batches written: the next one. */
  private spare: Slab | undefined;
  /** The queued batch is slab[start, end). */
  private start = 0;
  private end = 0;
  /** What waits for the queued batch. */
  private waiting: WriteCallback[] = [];
  /** The last batch handed to the stream. */
  private last: Batch | undefined;

  constructor(private readonly stream: Writable) {}

  /** Bytes queued and not yet handed to the stream. */
  get queued(): number {
    return this.end - this.start;
  }

  /** Queues `text` and a newline; they are written by the end of the current turn. */
  line(text: string): void {
    const room = text.length * MAX_BYTES_PER_UNIT + 1;
    if (room > BATCH_BYTES) {
      // A long line is a batch of its own, in a buffer of its own size.
      this.flush();
      this.send(Buffer.from(`${text}\n`));
      return;
    }
    if (this.end + room > this.slab.bytes.length) this.newSlab();
    if (this.end === this.start) queueMicrotask(() => this.flush());
    const bytes = this.slab.bytes;
    this.end += bytes.write(text, this.end);
    bytes[this.end++] = 0x0a;
    if (this.queued >= BATCH_BYTES) this.flush();
  }

  /**
   * Calls back once every line queued so far is written, with the stream's error if a write failed; at once if they
   * all are. The stream calls back in the order of its writes, so callbacks run in the order they were given.
   */
  whenWritten(callback: WriteCallback): void {
    if (this.queued > 0) this.waiting.push(callback);
    else if (this.last && !this.last.done) this.last.callbacks.push(callback);
    else callback();
  }

  /** Hands the queued lines to the stream. */
  flush(): void {
    if (this.queued === 0) return;
    const slab = this.slab;
    const bytes = slab.bytes.subarray(this.start, this.end);
    this.start = this.end;
    slab.unwritten += 1;
    this.send(bytes, slab);
  }

  private send(bytes: Buffer, slab?: Slab): void {
    const batch: Batch = { done: false, callbacks: this.waiting };
    this.waiting = [];
    this.last = batch;
    this.stream.write(bytes, (error) => {
      batch.done = true;
      if (slab && --slab.unwritten === 0 && slab !== this.slab) this.spare = slab;
      for (const callback of batch.callbacks) callback(error);
    });
  }

  /**
   * Another slab, the queued batch moved to its start: the spare one, or a new one while the stream still writes from
   * the others. A batch and a line fit in a slab, both being under BATCH_BYTES.
   */
  private newSlab(): void {
    const old = this.slab;
    const slab = this.spare ?? { bytes: Buffer.allocUnsafe(SLAB_BYTES), unwritten: 0 };
    this.spare = undefined;
    this.end = old.bytes.copy(slab.bytes, 0, this.start, this.end);
    this.start = 0;
    this.slab = slab;
    if (old.unwritten === 0) this.spare = old;
  }
}

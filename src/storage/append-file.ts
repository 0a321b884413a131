// An append-only file as a Writable stream that never leaves half a write behind. Each chunk it is given is written
// whole or not at all: when a write fails (ENOSPC: the disk is full), the file is cut back to the end of the last chunk
// written whole. Writers that hand it whole lines (LineWriter) so keep a file of whole lines, whatever happens to the
// disk. The first failure is kept in `failure` and ends the stream ('error'); later writes fail at once.
import { close, fdatasync, fstatSync, ftruncateSync, openSync, write } from "node:fs";
import { Writable } from "node:stream";

export class AppendFile extends Writable {
  private readonly fd: number;
  /** Bytes of the file that are whole writes. */
  private committed: number;
  failure: NodeJS.ErrnoException | undefined;
  private fdClosed = false;
  /** Group commit (syncSoon): a flush to the disk under way, and whether another was asked for meanwhile. */
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private closing = false;

  constructor(readonly path: string) {
    super({ highWaterMark: 64 * 1024 });
    this.fd = openSync(path, "a", 0o644);
    this.committed = fstatSync(this.fd).size;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeFrom(chunk, 0, callback);
  }

  /** fs.write may take part of a buffer: the rest follows, and only a chunk written to its end counts. */
  private writeFrom(chunk: Buffer, offset: number, callback: (error?: Error | null) => void): void {
    write(this.fd, chunk, offset, chunk.length - offset, null, (error, written) => {
      if (error) {
        this.failure ??= error;
        try {
          ftruncateSync(this.fd, this.committed);
        } catch {
          // The file keeps the partial chunk; readers skip a last line without its newline.
        }
        callback(error);
        return;
      }
      if (offset + written < chunk.length) {
        this.writeFrom(chunk, offset + written, callback);
        return;
      }
      this.committed += chunk.length;
      callback();
    });
  }

  /**
   * Flushes what has been written to the disk (fdatasync) soon: at once if no flush is under way, else right after it,
   * once for all the writes asked for meanwhile. So a writer that asks after every record pays one flush per batch
   * of records, not per record, and a power cut loses at most what came during the last flush.
   */
  syncSoon(): void {
    if (this.fdClosed || this.closing) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = new Promise<void>((resolve) => {
      fdatasync(this.fd, () => resolve());
    }).then(() => {
      this.syncing = undefined;
      if (this.syncAgain) {
        this.syncAgain = false;
        this.syncSoon();
      }
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    // A flush under way must end before the descriptor is closed under it; none starts after this.
    this.closing = true;
    void (this.syncing ?? Promise.resolve()).then(() => this.closeOnce((error) => callback(error)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.closing = true;
    void (this.syncing ?? Promise.resolve()).then(() => this.closeOnce(() => callback(error)));
  }

  /** The descriptor is closed once: a second close could close a descriptor reused by something else by then. */
  private closeOnce(done: (error?: Error | null) => void): void {
    if (this.fdClosed) {
      done();
      return;
    }
    this.fdClosed = true;
    close(this.fd, done);
  }
}

// Splits a byte stream into lines without ever holding more than one bounded line in memory. Lines longer than
// the limit are reported as overlong (their bytes still reach raw.log through the caller) instead of parsed.
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

export type LineHandler = (line: string) => void;
export type OverlongHandler = (bytes: number) => void;

export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overlong = 0;

  constructor(
    private readonly onLine: LineHandler,
    private readonly onOverlong: OverlongHandler = () => {},
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) {
        this.keep(chunk.subarray(start));
        return;
      }
      this.keep(chunk.subarray(start, newline));
      this.emit();
      start = newline + 1;
    }
  }

  /** Flushes a last line that had no newline. */
  end(): void {
    if (this.size > 0 || this.overlong > 0) this.emit();
  }

  private keep(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.overlong > 0 || this.size + piece.length > this.maxLineBytes) {
      this.overlong += this.size + piece.length;
      this.parts = [];
      this.size = 0;
      return;
    }
    this.parts.push(piece);
    this.size += piece.length;
  }

  private emit(): void {
    if (this.overlong > 0) {
      this.onOverlong(this.overlong);
    } else {
      // A line within one chunk (most of them) is decoded where it lies, without a copy.
      const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
      const text = bytes.toString("utf8");
      this.onLine(text.endsWith("\r") ? text.slice(0, -1) : text);
    }
    this.parts = [];
    this.size = 0;
    this.overlong = 0;
  }
}

// Finds the JSON objects in a body as it streams past, holding only the object being read: a whole JSON body
// (one object), NDJSON (one object per line) and a streamed JSON array of objects (Gemini's
// streamGenerateContent without alt=sse) all come out as a sequence of objects. It tracks nesting and strings
// on bytes; JSON's structural characters are ASCII and never occur inside a multi-byte UTF-8 sequence, so chunk
// boundaries anywhere are safe. Text between objects (commas, brackets, whitespace, garbage) is skipped.
import { MAX_BUFFERED_BYTES } from "./byte-limit.js";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

export class JsonObjectSplitter {
  /** Nesting depth of braces and brackets, counted from the start of the body. */
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The depth at which the object being captured opened; -1 when not capturing. */
  private captureDepth = -1;
  /** Whether the body's outermost value is an array, whose objects are then its elements. */
  private topLevelArray = false;
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Set once one object was larger than the limit; the caller then gives up on the response. */
  overflowed = false;

  constructor(
    private readonly onObject: (value: unknown) => void,
    private readonly limit: number = MAX_BUFFERED_BYTES,
  ) {}

  write(chunk: Buffer): void {
    if (this.overflowed) return;
    let captureStart = this.captureDepth === -1 ? -1 : 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === BACKSLASH) this.escaped = true;
        else if (byte === QUOTE) this.inString = false;
        continue;
      }
      if (byte === QUOTE) {
        this.inString = true;
      } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        if (this.depth === 0 && byte === OPEN_BRACKET) this.topLevelArray = true;
        else if (this.depth === 0) this.topLevelArray = false;
        const elementDepth = this.topLevelArray ? 1 : 0;
        if (byte === OPEN_BRACE && this.captureDepth === -1 && this.depth === elementDepth) {
          this.captureDepth = this.depth;
          captureStart = i;
        }
        this.depth += 1;
      } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        // Unbalanced closers in garbage must not drive the depth negative.
        if (this.depth > 0) this.depth -= 1;
        if (this.captureDepth !== -1 && this.depth === this.captureDepth) {
          this.take(chunk.subarray(captureStart, i + 1));
          if (this.overflowed) return;
          this.emit();
          captureStart = -1;
        }
      }
    }
    if (captureStart !== -1 && this.captureDepth !== -1) this.take(chunk.subarray(captureStart));
  }

  private take(bytes: Buffer): void {
    this.partsBytes += bytes.length;
    if (this.partsBytes > this.limit) {
      this.overflowed = true;
      this.parts = [];
      return;
    }
    this.parts.push(Buffer.from(bytes));
  }

  private emit(): void {
    const text = Buffer.concat(this.parts, this.partsBytes).toString("utf8");
    this.parts = [];
    this.partsBytes = 0;
    this.captureDepth = -1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // Balanced braces are not yet valid JSON (garbage, truncation); such an object carries no usage.
      return;
    }
    this.onObject(value);
  }
}

// Server-sent events, split incrementally: the body arrives in arbitrary chunks (mid-line, mid-UTF-8), and only
// the current line and the current event's data are held. Lines are split on bytes (CR, LF, CRLF, as the SSE
// spec allows) before decoding, which is safe because those bytes never occur inside a UTF-8 sequence.
import { MAX_BUFFERED_BYTES } from "./byte-limit.js";

const LF = 0x0a;
const CR = 0x0d;

export interface SseEvent {
  event: string;
  data: string;
}

export class SseSplitter {
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private skipLfAfterCr = false;
  private eventName = "";
  private dataLines: string[] = [];
  private dataBytes = 0;
  /** Set once something was larger than the limit; the caller then gives up on the response. */
  overflowed = false;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly limit: number = MAX_BUFFERED_BYTES,
  ) {}

  write(chunk: Buffer): void {
    if (this.overflowed) return;
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== LF && byte !== CR) continue;
      if (byte === LF && this.skipLfAfterCr && i === start && this.partsBytes === 0) {
        // The LF of a CRLF whose CR ended the previous line.
        this.skipLfAfterCr = false;
        start = i + 1;
        continue;
      }
      this.skipLfAfterCr = byte === CR;
      this.take(chunk.subarray(start, i));
      this.line();
      if (this.overflowed) return;
      start = i + 1;
    }
    if (start < chunk.length) {
      this.skipLfAfterCr = false;
      this.take(chunk.subarray(start));
    }
  }

  end(): void {
    if (this.overflowed) return;
    if (this.partsBytes > 0) this.line();
    // A stream cut off after its last data line still carried that event.
    this.dispatch();
  }

  private take(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.partsBytes += bytes.length;
    if (this.partsBytes + this.dataBytes > this.limit) {
      this.overflowed = true;
      this.parts = [];
      return;
    }
    this.parts.push(Buffer.from(bytes));
  }

  private line(): void {
    if (this.overflowed) return;
    const text = Buffer.concat(this.parts, this.partsBytes).toString("utf8");
    this.parts = [];
    this.partsBytes = 0;
    if (text.length === 0) {
      this.dispatch();
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventName = value;
    else if (field === "data") {
      this.dataLines.push(value);
      this.dataBytes += value.length;
    }
  }

  private dispatch(): void {
    if (this.dataLines.length > 0) this.onEvent({ event: this.eventName, data: this.dataLines.join("\n") });
    this.eventName = "";
    this.dataLines = [];
    this.dataBytes = 0;
  }
}

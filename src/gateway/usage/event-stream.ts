// AWS's binary event-stream framing (Bedrock ConverseStream, InvokeModelWithResponseStream), split
// incrementally. Each message is [total length u32][headers length u32][prelude CRC][headers][payload][CRC];
// only the message being read is held, and the codec checks both CRCs and parses the headers.
// @smithy/eventstream-codec is what the AWS SDK and @ai-sdk/amazon-bedrock decode these streams with.
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { MAX_BUFFERED_BYTES } from "./byte-limit.js";

/** The smallest message: prelude (12 bytes) and message CRC (4), no headers, no payload. */
const MIN_MESSAGE_BYTES = 16;

export interface EventStreamMessage {
  /** `:message-type`: "event", "exception" or "error". */
  messageType: string | undefined;
  /** `:event-type` (events) or `:exception-type` (exceptions). */
  eventType: string | undefined;
  payload: Buffer;
}

const codec = new EventStreamCodec(
  (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  (text: string) => Buffer.from(text, "utf8"),
);

function headerString(headers: Record<string, { type: string; value: unknown }>, name: string): string | undefined {
  const header = headers[name];
  return header?.type === "string" && typeof header.value === "string" ? header.value : undefined;
}

export class EventStreamSplitter {
  private pending: Buffer = Buffer.alloc(0);
  /** Set once the framing could not be trusted (bad length or CRC, oversized message); the caller gives up. */
  broken = false;

  constructor(
    private readonly onMessage: (message: EventStreamMessage) => void,
    private readonly limit: number = MAX_BUFFERED_BYTES,
  ) {}

  write(chunk: Buffer): void {
    if (this.broken || chunk.length === 0) return;
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4) {
      const total = this.pending.readUInt32BE(0);
      if (total < MIN_MESSAGE_BYTES || total > this.limit) {
        this.fail();
        return;
      }
      if (this.pending.length < total) return;
      const frame = this.pending.subarray(0, total);
      this.pending = this.pending.subarray(total);
      let decoded;
      try {
        decoded = codec.decode(frame);
      } catch {
        this.fail();
        return;
      }
      const headers = decoded.headers as Record<string, { type: string; value: unknown }>;
      const messageType = headerString(headers, ":message-type");
      this.onMessage({
        messageType,
        eventType: headerString(headers, messageType === "exception" ? ":exception-type" : ":event-type"),
        payload: Buffer.from(decoded.body.buffer, decoded.body.byteOffset, decoded.body.byteLength),
      });
    }
  }

  private fail(): void {
    this.broken = true;
    this.pending = Buffer.alloc(0);
  }
}

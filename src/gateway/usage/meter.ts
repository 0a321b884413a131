// Picks how to read one response's usage: the framing from its content type (SSE, AWS event-stream, or JSON /
// NDJSON / a streamed JSON array), the reader from the protocol and path. The body is hostile-ish: write() and
// end() never throw, and anything malformed, oversized or unexpected ends as "no usage" (undefined), never as
// a guess.
import type { GatewayProtocol, UsageMeter } from "../types.js";
import { anthropicUsageReader } from "./anthropic.js";
import { bedrockUsageReader } from "./bedrock.js";
import { EventStreamSplitter } from "./event-stream.js";
import { googleUsageReader } from "./google.js";
import { JsonObjectSplitter } from "./json-objects.js";
import { ollamaUsageReader } from "./ollama.js";
import { openAIUsageReader } from "./openai.js";
import { SseSplitter } from "./sse.js";
import type { UsageReader } from "./token-counts.js";

export interface MeteredResponse {
  /** The response's Content-Type header, if any. */
  contentType: string | undefined;
  /** The upstream path, without the query string. */
  path: string;
}

type Framing = "sse" | "event-stream" | "json";

/** A body splitter: feeds the reader and says when it gave up on the response. */
interface Splitter {
  write(chunk: Buffer): void;
  end(): void;
  readonly failed: boolean;
}

function readerFor(protocol: GatewayProtocol, path: string): UsageReader {
  switch (protocol) {
    case "anthropic":
      return anthropicUsageReader();
    case "openai":
      return openAIUsageReader();
    case "google":
      return googleUsageReader();
    case "vertex":
      // Vertex serves partner models in their own format: Claude through rawPredict / streamRawPredict, and an
      // OpenAI-compatible Chat Completions endpoint.
      if (path.includes("/publishers/anthropic/")) return anthropicUsageReader();
      if (path.includes("/endpoints/openapi/") || path.endsWith("/chat/completions")) return openAIUsageReader();
      return googleUsageReader();
    case "ollama":
      return /^(?:\/[^/]+)*\/v1\//.test(path) ? openAIUsageReader() : ollamaUsageReader();
    case "bedrock":
      return bedrockUsageReader();
  }
}

function framingOf(contentType: string | undefined): Framing | undefined {
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  if (type === "text/event-stream") return "sse";
  if (type === "application/vnd.amazon.eventstream") return "event-stream";
  if (type === undefined || type === "" || type === "application/octet-stream") return undefined;
  // JSON, NDJSON (application/x-ndjson), and anything else that may still be JSON (text/plain from a proxy).
  return "json";
}

/** The framing a body starts with, for responses whose content type says nothing useful. */
function sniffFraming(firstByte: number): Framing {
  if (firstByte === 0x7b || firstByte === 0x5b) return "json"; // { [
  // An event-stream message starts with its big-endian length, whose top byte is 0 for any message we accept.
  if (firstByte === 0x00) return "event-stream";
  return "sse";
}

function splitterFor(framing: Framing, reader: UsageReader): Splitter {
  switch (framing) {
    case "sse": {
      const sse = new SseSplitter(({ event, data }) => {
        if (data === "[DONE]") return;
        let value: unknown;
        try {
          value = JSON.parse(data);
        } catch {
          return;
        }
        reader.observe(value, event === "" ? undefined : event);
      });
      return { write: (c) => sse.write(c), end: () => sse.end(), get failed() { return sse.overflowed; } };
    }
    case "event-stream": {
      const stream = new EventStreamSplitter(({ messageType, eventType, payload }) => {
        if (messageType !== "event") return;
        let value: unknown;
        try {
          value = JSON.parse(payload.toString("utf8"));
        } catch {
          return;
        }
        reader.observe(value, eventType);
      });
      return { write: (c) => stream.write(c), end: () => undefined, get failed() { return stream.broken; } };
    }
    case "json": {
      const json = new JsonObjectSplitter((value) => reader.observe(value));
      return { write: (c) => json.write(c), end: () => undefined, get failed() { return json.overflowed; } };
    }
  }
}

/** A meter for one response of `protocol`; see UsageMeter. */
export function meterFor(protocol: GatewayProtocol, response: MeteredResponse): UsageMeter {
  const reader = readerFor(protocol, response.path);
  const declared = framingOf(response.contentType);
  let splitter: Splitter | undefined = declared ? splitterFor(declared, reader) : undefined;
  let failed = false;

  return {
    write(chunk) {
      if (failed) return;
      try {
        if (!splitter) {
          const first = chunk.findIndex((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
          if (first === -1) return;
          splitter = splitterFor(sniffFraming(chunk[first]!), reader);
        }
        splitter.write(chunk);
        if (splitter.failed) failed = true;
      } catch {
        failed = true;
      }
    },
    end() {
      if (failed || !splitter) return undefined;
      try {
        splitter.end();
        if (splitter.failed) return undefined;
        return reader.result();
      } catch {
        return undefined;
      }
    },
  };
}

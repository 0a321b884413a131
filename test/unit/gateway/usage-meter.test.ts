// The usage meters against hand-built bodies in each vendor's documented wire format (the fake model servers
// cover Anthropic, OpenAI Responses and Gemini with real bodies in usage-fake-models.test.ts).
import { describe, expect, it } from "vitest";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { meterFor } from "../../../src/gateway/usage/meter.ts";
import { MAX_BUFFERED_BYTES } from "../../../src/gateway/usage/byte-limit.ts";
import type { GatewayProtocol } from "../../../src/gateway/types.ts";
import type { MeterInput } from "./meter-feed.ts";
import { meterEveryWay, meterWhole } from "./meter-feed.ts";

const sse = (events: Array<[string | undefined, unknown]>, eol = "\n"): string =>
  events
    .map(([event, data]) => `${event ? `event: ${event}${eol}` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}${eol}${eol}`)
    .join("");

const usage = (u: Partial<Record<string, number>>) => ({
  inputTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  totalTokens: (u.inputTokens ?? 0) + (u.outputTokens ?? 0),
  ...u,
});

const anthropicJson: MeterInput = { protocol: "anthropic", contentType: "application/json", path: "/v1/messages" };
const anthropicSse: MeterInput = { ...anthropicJson, contentType: "text/event-stream; charset=utf-8" };

describe("anthropic", () => {
  it("reads a Message: input includes cache creation and cache reads", () => {
    const body = {
      id: "msg_1",
      type: "message",
      model: "claude-sonnet-4-5-20250929",
      content: [{ type: "text", text: "héllo ✓" }],
      usage: { input_tokens: 10, output_tokens: 7, cache_creation_input_tokens: 20, cache_read_input_tokens: 30 },
    };
    expect(meterEveryWay(anthropicJson, JSON.stringify(body))).toEqual({
      model: "claude-sonnet-4-5-20250929",
      usage: usage({ inputTokens: 60, outputTokens: 7, cachedInputTokens: 30, cacheWriteTokens: 20 }),
    });
  });

  it("takes message_start's counts, then the latest of each field from message_delta (cumulative, not summed)", () => {
    const body = sse([
      ["message_start", { type: "message_start", message: { model: "claude-haiku-4-5", usage: { input_tokens: 5, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 100 } } }],
      ["ping", { type: "ping" }],
      ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "日本語 🙂" } }],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 12 } }],
      // Server tools: a later delta repeats every count, grown.
      ["message_delta", { type: "message_delta", delta: {}, usage: { input_tokens: 9, output_tokens: 40, cache_read_input_tokens: 100, cache_creation_input_tokens: 3 } }],
      ["message_stop", { type: "message_stop" }],
    ]);
    expect(meterEveryWay(anthropicSse, body)).toEqual({
      model: "claude-haiku-4-5",
      usage: usage({ inputTokens: 112, outputTokens: 40, cachedInputTokens: 100, cacheWriteTokens: 3 }),
    });
  });

  it("accepts CRLF and CR line ends", () => {
    const events: Array<[string, unknown]> = [
      ["message_start", { type: "message_start", message: { model: "m", usage: { input_tokens: 2, output_tokens: 1 } } }],
      ["message_delta", { type: "message_delta", usage: { output_tokens: 4 } }],
    ];
    const expected = { model: "m", usage: usage({ inputTokens: 2, outputTokens: 4 }) };
    expect(meterEveryWay(anthropicSse, sse(events, "\r\n"))).toEqual(expected);
    expect(meterEveryWay(anthropicSse, sse(events, "\r"))).toEqual(expected);
  });

  it("says nothing for an error body or a stream with no usage", () => {
    expect(meterWhole({ ...anthropicJson }, JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "x" } }))).toBeUndefined();
    expect(meterWhole(anthropicSse, sse([["ping", { type: "ping" }]]))).toBeUndefined();
  });

  it("counts a stream cut off after its last event without the blank line", () => {
    const body = `event: message_delta\ndata: ${JSON.stringify({ type: "message_delta", usage: { output_tokens: 3 } })}`;
    expect(meterWhole(anthropicSse, body)).toEqual({ usage: usage({ outputTokens: 3 }) });
  });
});

describe("openai", () => {
  const responses: MeterInput = { protocol: "openai", contentType: "text/event-stream", path: "/v1/responses" };
  const chat: MeterInput = { protocol: "openai", contentType: "text/event-stream", path: "/v1/chat/completions" };

  it("reads Chat Completions JSON with cached and reasoning details", () => {
    const body = {
      id: "chatcmpl-1",
      object: "chat.completion",
      model: "gpt-5-mini-2025-08-07",
      choices: [],
      usage: {
        prompt_tokens: 100,
        completion_tokens: 50,
        total_tokens: 150,
        prompt_tokens_details: { cached_tokens: 64 },
        completion_tokens_details: { reasoning_tokens: 30 },
      },
    };
    expect(meterEveryWay({ ...chat, contentType: "application/json" }, JSON.stringify(body))).toEqual({
      model: "gpt-5-mini-2025-08-07",
      usage: usage({ inputTokens: 100, outputTokens: 50, cachedInputTokens: 64, reasoningTokens: 30 }),
    });
  });

  it("reads the Chat Completions chunk that carries usage (include_usage), ignoring usage: null and [DONE]", () => {
    const chunk = (extra: Record<string, unknown>) => ({ id: "c", object: "chat.completion.chunk", model: "gpt-5", choices: [], usage: null, ...extra });
    const body = sse([
      [undefined, chunk({ choices: [{ index: 0, delta: { content: "Grüße" } }] })],
      [undefined, chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })],
      [undefined, chunk({ usage: { prompt_tokens: 11, completion_tokens: 22, total_tokens: 33 } })],
      [undefined, "[DONE]"],
    ]);
    expect(meterEveryWay(chat, body)).toEqual({ model: "gpt-5", usage: usage({ inputTokens: 11, outputTokens: 22 }) });
  });

  it("reads DeepSeek's prompt_cache_hit_tokens as cached input", () => {
    const body = {
      model: "deepseek-chat",
      usage: { prompt_tokens: 90, completion_tokens: 10, total_tokens: 100, prompt_cache_hit_tokens: 80, prompt_cache_miss_tokens: 10 },
    };
    expect(meterWhole({ ...chat, contentType: "application/json" }, JSON.stringify(body))).toEqual({
      model: "deepseek-chat",
      usage: usage({ inputTokens: 90, outputTokens: 10, cachedInputTokens: 80 }),
    });
  });

  it("reads response.completed's usage in a Responses stream", () => {
    const response = (status: string, u: unknown) => ({ id: "resp_1", object: "response", status, model: "gpt-5-codex", output: [], usage: u });
    const body = sse([
      ["response.created", { type: "response.created", response: response("in_progress", null) }],
      ["response.output_text.delta", { type: "response.output_text.delta", delta: "ok" }],
      ["response.completed", { type: "response.completed", response: response("completed", { input_tokens: 300, input_tokens_details: { cached_tokens: 256 }, output_tokens: 80, output_tokens_details: { reasoning_tokens: 64 }, total_tokens: 380 }) }],
    ]);
    expect(meterEveryWay(responses, body)).toEqual({
      model: "gpt-5-codex",
      usage: usage({ inputTokens: 300, outputTokens: 80, cachedInputTokens: 256, reasoningTokens: 64 }),
    });
  });
});

describe("google", () => {
  const gemini: MeterInput = { protocol: "google", contentType: "application/json; charset=UTF-8", path: "/v1beta/models/gemini-2.5-pro:streamGenerateContent" };
  const chunk = (text: string, usageMetadata: Record<string, number>) => ({
    candidates: [{ content: { role: "model", parts: [{ text }] }, index: 0 }],
    usageMetadata,
    modelVersion: "gemini-2.5-pro",
  });

  it("reads a streamed JSON array (no alt=sse): the last usageMetadata wins; output = candidates + thoughts", () => {
    const body = `[${JSON.stringify(chunk("Hallo {", { promptTokenCount: 40, totalTokenCount: 40 }))}\r\n,\r\n${JSON.stringify(
      chunk("} Welt ✓", { promptTokenCount: 40, cachedContentTokenCount: 20, candidatesTokenCount: 9, thoughtsTokenCount: 30, totalTokenCount: 79 }),
    )}\r\n]`;
    expect(meterEveryWay(gemini, body)).toEqual({
      model: "gemini-2.5-pro",
      usage: usage({ inputTokens: 40, outputTokens: 39, reasoningTokens: 30, cachedInputTokens: 20 }),
    });
  });

  it("reads ?alt=sse streams and counts tool-use prompt tokens as input", () => {
    const body = sse([
      [undefined, chunk("a", { promptTokenCount: 7, totalTokenCount: 7 })],
      [undefined, chunk("b", { promptTokenCount: 7, toolUsePromptTokenCount: 5, candidatesTokenCount: 3, totalTokenCount: 15 })],
    ], "\r\n");
    expect(meterEveryWay({ ...gemini, contentType: "text/event-stream" }, body)).toEqual({
      model: "gemini-2.5-pro",
      usage: usage({ inputTokens: 12, outputTokens: 3 }),
    });
  });

  it("reads Vertex's Gemini bodies, and Claude and OpenAI-compatible bodies on Vertex by path", () => {
    const base = "/v1/projects/p/locations/us-central1";
    const geminiBody = JSON.stringify(chunk("x", { promptTokenCount: 3, candidatesTokenCount: 4, totalTokenCount: 7 }));
    expect(meterWhole({ protocol: "vertex", contentType: "application/json", path: `${base}/publishers/google/models/gemini-2.5-flash:generateContent` }, geminiBody)).toEqual({
      model: "gemini-2.5-pro",
      usage: usage({ inputTokens: 3, outputTokens: 4 }),
    });
    const claude = JSON.stringify({ type: "message", model: "claude-sonnet-4-5", usage: { input_tokens: 1, output_tokens: 2 } });
    expect(meterWhole({ protocol: "vertex", contentType: "application/json", path: `${base}/publishers/anthropic/models/claude-sonnet-4-5:rawPredict` }, claude)).toEqual({
      model: "claude-sonnet-4-5",
      usage: usage({ inputTokens: 1, outputTokens: 2 }),
    });
    const openai = JSON.stringify({ model: "google/gemini-2.5-flash", usage: { prompt_tokens: 5, completion_tokens: 6 } });
    expect(meterWhole({ protocol: "vertex", contentType: "application/json", path: `${base}/endpoints/openapi/chat/completions` }, openai)).toEqual({
      model: "google/gemini-2.5-flash",
      usage: usage({ inputTokens: 5, outputTokens: 6 }),
    });
  });
});

describe("ollama", () => {
  const native: MeterInput = { protocol: "ollama", contentType: "application/x-ndjson", path: "/api/chat" };

  it("reads the done:true line of an NDJSON stream", () => {
    const lines = [
      { model: "llama3.2", message: { role: "assistant", content: "Hé" }, done: false },
      { model: "llama3.2", message: { role: "assistant", content: "" }, done: true, done_reason: "stop", prompt_eval_count: 26, eval_count: 298 },
    ];
    const body = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
    expect(meterEveryWay(native, body)).toEqual({ model: "llama3.2", usage: usage({ inputTokens: 26, outputTokens: 298 }) });
  });

  it("reads a non-streamed /api/generate body; a missing prompt_eval_count (prompt cached) is 0", () => {
    const body = JSON.stringify({ model: "qwen3", response: "ok", done: true, eval_count: 5 });
    expect(meterWhole({ ...native, contentType: "application/json", path: "/api/generate" }, body)).toEqual({
      model: "qwen3",
      usage: usage({ outputTokens: 5 }),
    });
  });

  it("reads its /v1 endpoints as OpenAI", () => {
    const body = JSON.stringify({ model: "llama3.2", usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    expect(meterWhole({ protocol: "ollama", contentType: "application/json", path: "/v1/chat/completions" }, body)).toEqual({
      model: "llama3.2",
      usage: usage({ inputTokens: 3, outputTokens: 4 }),
    });
  });
});

describe("bedrock", () => {
  const codec = new EventStreamCodec(
    (b: Uint8Array) => Buffer.from(b).toString("utf8"),
    (s: string) => Buffer.from(s, "utf8"),
  );
  const frame = (eventType: string, payload: unknown, messageType = "event"): Buffer =>
    Buffer.from(
      codec.encode({
        headers: {
          ":message-type": { type: "string", value: messageType },
          [messageType === "exception" ? ":exception-type" : ":event-type"]: { type: "string", value: eventType },
          ":content-type": { type: "string", value: "application/json" },
        },
        body: Buffer.from(JSON.stringify(payload)),
      }),
    );
  const converse: MeterInput = { protocol: "bedrock", contentType: "application/json", path: "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse" };
  const converseStream: MeterInput = { protocol: "bedrock", contentType: "application/vnd.amazon.eventstream", path: "/model/x/converse-stream" };

  it("reads Converse JSON: input adds cache reads and writes (Bedrock reports them apart)", () => {
    const body = {
      output: { message: { role: "assistant", content: [{ text: "ok" }] } },
      stopReason: "end_turn",
      usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15, cacheReadInputTokens: 100, cacheWriteInputTokens: 7 },
      metrics: { latencyMs: 12 },
    };
    expect(meterEveryWay(converse, JSON.stringify(body))).toEqual({
      usage: usage({ inputTokens: 117, outputTokens: 5, cachedInputTokens: 100, cacheWriteTokens: 7 }),
    });
  });

  it("reads the metadata event of a ConverseStream event-stream", () => {
    const body = Buffer.concat([
      frame("messageStart", { role: "assistant", p: "abc" }),
      frame("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "Grüße ✓" }, p: "abcdef" }),
      frame("messageStop", { stopReason: "end_turn" }),
      frame("metadata", { usage: { inputTokens: 21, outputTokens: 8, totalTokens: 29, cacheReadInputTokens: 4 }, metrics: { latencyMs: 300 } }),
    ]);
    expect(meterEveryWay(converseStream, body)).toEqual({ usage: usage({ inputTokens: 25, outputTokens: 8, cachedInputTokens: 4 }) });
    // Without a content type the framing is recognised from the first byte.
    expect(meterWhole({ ...converseStream, contentType: undefined }, body)).toEqual({
      usage: usage({ inputTokens: 25, outputTokens: 8, cachedInputTokens: 4 }),
    });
  });

  it("reads Claude's stream events inside InvokeModelWithResponseStream chunks", () => {
    const chunk = (event: unknown) => frame("chunk", { bytes: Buffer.from(JSON.stringify(event)).toString("base64") });
    const body = Buffer.concat([
      chunk({ type: "message_start", message: { model: "claude-haiku-4-5-20251001", usage: { input_tokens: 9, output_tokens: 1, cache_read_input_tokens: 50 } } }),
      chunk({ type: "message_delta", usage: { output_tokens: 6 } }),
      chunk({ type: "message_stop", "amazon-bedrock-invocationMetrics": { inputTokenCount: 9, outputTokenCount: 6, invocationLatency: 1, firstByteLatency: 1 } }),
    ]);
    expect(meterEveryWay({ ...converseStream, path: "/model/x/invoke-with-response-stream" }, body)).toEqual({
      model: "claude-haiku-4-5-20251001",
      usage: usage({ inputTokens: 59, outputTokens: 6, cachedInputTokens: 50 }),
    });
  });

  it("falls back to the invocation metrics when the model's events carry no usage", () => {
    const body = frame("chunk", { bytes: Buffer.from(JSON.stringify({ outputText: "hi", "amazon-bedrock-invocationMetrics": { inputTokenCount: 3, outputTokenCount: 2 } })).toString("base64") });
    expect(meterWhole({ ...converseStream, path: "/model/amazon.titan/invoke-with-response-stream" }, body)).toEqual({
      usage: usage({ inputTokens: 3, outputTokens: 2 }),
    });
  });

  it("gives up on a corrupted frame (CRC mismatch) and ignores exception events", () => {
    const good = frame("metadata", { usage: { inputTokens: 1, outputTokens: 1 } });
    const bad = Buffer.from(good);
    bad[bad.length - 6] = bad[bad.length - 6]! ^ 0xff;
    expect(meterWhole(converseStream, bad)).toBeUndefined();
    expect(meterWhole(converseStream, frame("throttlingException", { usage: { inputTokens: 1, outputTokens: 1 } }, "exception"))).toBeUndefined();
  });
});

describe("hostile bodies", () => {
  const protocols: GatewayProtocol[] = ["anthropic", "openai", "google", "ollama", "bedrock", "vertex"];
  const contentTypes = [undefined, "application/json", "text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream", "text/html"];

  function randomBytes(seed: number, length: number): Buffer {
    let state = seed;
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      out[i] = state & 0xff;
    }
    return out;
  }

  const garbage: Array<Buffer | string> = [
    "",
    "}}}]]]{{{",
    "[[[[[[[[",
    '{"usage": {"input_tokens": "12", "output_tokens": -3}}',
    '{"usage": {"input_tokens": 1e400, "output_tokens": 1.5}}',
    '{"usage": {"input_tokens": 9007199254740993, "output_tokens": null}}',
    '{"type":"message","usage":["not","an","object"]}',
    "data: {not json}\n\ndata: [DONE]\n\n",
    "event: message_delta\ndata: null\n\n",
    '{"model": "\\u0000evil\\nname", "usage": {"prompt_tokens": 1}}',
    '"just a string with { braces }"',
    "\u0000\u0000\u0000\u0010garbage-prelude",
    "\u00ff\u00fe\u00fd",
    randomBytes(1, 4096),
    randomBytes(2, 65536),
  ];

  it("never throws, and reads no usage from values that are not non-negative integers", () => {
    for (const protocol of protocols) {
      for (const contentType of contentTypes) {
        for (const body of garbage) {
          const meter = meterFor(protocol, { contentType, path: "/v1/messages" });
          expect(() => {
            const bytes = Buffer.from(body);
            for (let i = 0; i < bytes.length; i += 7) meter.write(bytes.subarray(i, i + 7));
          }).not.toThrow();
          let result: unknown;
          expect(() => (result = meter.end())).not.toThrow();
          // Only the one body above with a (partly) valid count may produce usage, and never a bad count.
          if (result !== undefined) {
            const u = (result as { usage: Record<string, number> }).usage;
            for (const value of Object.values(u)) expect(Number.isSafeInteger(value) && value >= 0).toBe(true);
          }
        }
      }
    }
  });

  it("drops model names that are not short printable strings", () => {
    const body = JSON.stringify({ model: "bad\nname", usage: { prompt_tokens: 1, completion_tokens: 1 } });
    expect(meterWhole({ protocol: "openai", contentType: "application/json", path: "/v1/chat/completions" }, body)).toEqual({
      usage: usage({ inputTokens: 1, outputTokens: 1 }),
    });
  });

  it("gives up on a JSON body larger than the buffer limit", () => {
    const padding = "x".repeat(MAX_BUFFERED_BYTES);
    const body = JSON.stringify({ type: "message", model: "m", content: [{ type: "text", text: padding }], usage: { input_tokens: 1, output_tokens: 1 } });
    const meter = meterFor("anthropic", { contentType: "application/json", path: "/v1/messages" });
    const bytes = Buffer.from(body);
    for (let i = 0; i < bytes.length; i += 65536) meter.write(bytes.subarray(i, i + 65536));
    expect(meter.end()).toBeUndefined();
  });

  it("gives up on an SSE event larger than the buffer limit, and keeps nothing from before", () => {
    const meter = meterFor("anthropic", { contentType: "text/event-stream", path: "/v1/messages" });
    meter.write(Buffer.from(sse([["message_delta", { type: "message_delta", usage: { output_tokens: 3 } }]])));
    const big = Buffer.from(`data: ${"y".repeat(MAX_BUFFERED_BYTES)}`);
    for (let i = 0; i < big.length; i += 65536) meter.write(big.subarray(i, i + 65536));
    expect(meter.end()).toBeUndefined();
  });

  it("holds only the current event of a long stream (many events, each small)", () => {
    const meter = meterFor("openai", { contentType: "text/event-stream", path: "/v1/chat/completions" });
    const event = Buffer.from(sse([[undefined, { model: "gpt-5", choices: [{ delta: { content: "z".repeat(1000) } }], usage: null }]]));
    // ~20 MiB in total: well over the limit, which applies per event only.
    for (let i = 0; i < 20_000; i++) meter.write(event);
    meter.write(Buffer.from(sse([[undefined, { model: "gpt-5", usage: { prompt_tokens: 1, completion_tokens: 2 } }]])));
    expect(meter.end()).toEqual({ model: "gpt-5", usage: usage({ inputTokens: 1, outputTokens: 2 }) });
  });
});

// The Amazon Bedrock Runtime part of the fake model server: the Converse API, as @ai-sdk/amazon-bedrock (the
// built-in runtime's provider) calls it, so a run can go through Bedrock's wire format without AWS.
//
// API endpoints (model ids arrive percent-encoded, e.g. `us.anthropic.claude-sonnet-4-5-20250929-v1%3A0`):
//   POST /model/<modelId>/converse          one JSON ConverseResponse
//   POST /model/<modelId>/converse-stream   `application/vnd.amazon.eventstream`: binary AWS event-stream messages
//                                           messageStart, [contentBlockStart], contentBlockDelta..., contentBlockStop
//                                           per block, messageStop, metadata {usage, metrics}
// Other Bedrock operations (InvokeModel, ...) get Bedrock's UnknownOperationException.
//
// Every Converse request is a turn of the main conversation (the AI SDK sends nothing else); the number of
// `assistant` messages it carries names the turn, its first user message's text blocks are what `forQuery`
// matches. Requests are not refused for their credentials (the fake cannot check a SigV4 signature without the
// secret key): the log records how they were signed instead (`auth`, `sigv4`), with the Authorization header's
// Signature value, x-amz-security-token and any Bedrock API key (`Bearer`) redacted.

import type { ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, estimateTokens, isObject, sendJson, uniqueId } from "./script.ts";

type ContentBlock =
  | { text: string }
  | { reasoningContent: { reasoningText: { text: string; signature: string } } }
  | { toolUse: { toolUseId: string; name: string; input: Record<string, unknown> } };

interface ConverseBody {
  messages?: unknown;
  system?: unknown;
  toolConfig?: unknown;
  inferenceConfig?: unknown;
}

interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
}

const EXHAUSTED_REPLY = "The fake Bedrock script has no more steps.";

const MODEL_PATH = /^\/model\/([^/]+)\/(converse|converse-stream)$/;

/** Bedrock's exception names by HTTP status, for script error types that are not one already. */
const EXCEPTIONS: Record<number, string> = {
  400: "ValidationException",
  401: "UnrecognizedClientException",
  403: "AccessDeniedException",
  404: "ResourceNotFoundException",
  408: "ModelTimeoutException",
  424: "ModelErrorException",
  429: "ThrottlingException",
  500: "InternalServerException",
  503: "ServiceUnavailableException",
};

function exceptionName(error: ErrorSpec): string {
  if (/^[A-Z][A-Za-z]*Exception$/.test(error.type)) return error.type;
  return EXCEPTIONS[error.status] ?? (error.status >= 500 ? "InternalServerException" : "ValidationException");
}

/**
 * Answers like Bedrock's REST-JSON errors: the status, `x-amzn-ErrorType: <Exception>:<namespace>` and a body of
 * `{"message": ...}` (the AI SDK reads the message from the body).
 */
function sendError(res: ServerResponse, error: ErrorSpec): void {
  sendJson(res, error.status, { message: error.message }, {
    "x-amzn-RequestId": requestId(),
    "x-amzn-ErrorType": `${exceptionName(error)}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
  });
}

function requestId(): string {
  return randomUUID();
}

interface Message {
  role?: unknown;
  content?: unknown;
}

function messagesOf(body: ConverseBody): Message[] {
  return Array.isArray(body.messages) ? body.messages.filter((m: unknown): m is Message => isObject(m)) : [];
}

function countAssistantMessages(body: ConverseBody): number {
  return messagesOf(body).filter((m) => m.role === "assistant").length;
}

/** The text blocks of the first message joined by newlines, when it is the user's. */
function firstUserText(body: ConverseBody): string | undefined {
  const first = messagesOf(body)[0];
  if (!first || first.role !== "user" || !Array.isArray(first.content)) return undefined;
  return first.content
    .filter((b: unknown): b is { text: string } => isObject(b) && typeof b.text === "string")
    .map((b) => b.text)
    .join("\n");
}

/** Whether the request asks for prompt caching (a `cachePoint` block anywhere in system, messages or tools). */
function hasCachePoint(body: ConverseBody): boolean {
  return JSON.stringify([body.system, body.messages, body.toolConfig]).includes('"cachePoint"');
}

function buildBlocks(step: Step): ContentBlock[] {
  const blocks: ContentBlock[] = [];
  if (step.thinking !== undefined) {
    // Real signatures are opaque base64; clients only store and echo them back.
    const signature = Buffer.from(`fake-signature-${uniqueId("sig")}`).toString("base64");
    blocks.push({ reasoningContent: { reasoningText: { text: step.thinking, signature } } });
  }
  if (step.text !== undefined) blocks.push({ text: step.text });
  for (const tool of step.toolUse ?? []) {
    blocks.push({ toolUse: { toolUseId: uniqueId("tooluse"), name: tool.name, input: tool.input } });
  }
  if (blocks.length === 0) blocks.push({ text: "" });
  return blocks;
}

/**
 * The usage Bedrock reports: inputTokens leaves out cache reads and writes, which only requests with a
 * cachePoint have (the first turn writes half the prompt, later turns read it), totalTokens adds them all up.
 */
function usageFor(body: ConverseBody, blocks: ContentBlock[], turn: number): Usage {
  const prompt = estimateTokens({ system: body.system, messages: body.messages, toolConfig: body.toolConfig });
  const cached = hasCachePoint(body) ? Math.floor(prompt / 2) : 0;
  const cacheReadInputTokens = turn > 0 ? cached : 0;
  const cacheWriteInputTokens = turn > 0 ? 0 : cached;
  const inputTokens = prompt - cached;
  const outputTokens = estimateTokens(blocks);
  return {
    inputTokens,
    outputTokens,
    totalTokens: inputTokens + outputTokens + cacheReadInputTokens + cacheWriteInputTokens,
    cacheReadInputTokens,
    cacheWriteInputTokens,
  };
}

// AWS event-stream framing: [total length u32][headers length u32][prelude CRC32][headers][payload][message CRC32],
// each header [name length u8][name][type u8 = 7 (string)][value length u16][value].
function encodeHeaders(headers: Array<[string, string]>): Buffer {
  return Buffer.concat(
    headers.map(([name, value]) => {
      const n = Buffer.from(name, "utf8");
      const v = Buffer.from(value, "utf8");
      const out = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
      out.writeUInt8(n.length, 0);
      n.copy(out, 1);
      out.writeUInt8(7, 1 + n.length);
      out.writeUInt16BE(v.length, 2 + n.length);
      v.copy(out, 4 + n.length);
      return out;
    }),
  );
}

/** One event-stream message of a ConverseStream event: `:event-type`, `:content-type`, `:message-type` headers. */
export function encodeEvent(eventType: string, payload: unknown): Buffer {
  const headers = encodeHeaders([
    [":event-type", eventType],
    [":content-type", "application/json"],
    [":message-type", "event"],
  ]);
  const body = Buffer.from(JSON.stringify(payload), "utf8");
  const total = 12 + headers.length + body.length + 4;
  const message = Buffer.alloc(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(headers.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headers.copy(message, 12);
  body.copy(message, 12 + headers.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - 4)), total - 4);
  return message;
}

/** The `p` padding Bedrock adds to each stream event (so lengths do not leak the content); clients drop it. */
function padding(n: number): string {
  return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".slice(0, 1 + (n % 60));
}

/** Sends the Converse(Stream) answer and returns the usage it reported. */
function sendConverse(res: ServerResponse, stream: boolean, body: ConverseBody, blocks: ContentBlock[], turn: number): ReportedUsage {
  const stopReason = blocks.some((b) => "toolUse" in b) ? "tool_use" : "end_turn";
  const usage = usageFor(body, blocks, turn);
  const reported: ReportedUsage = {
    vendor: { ...usage },
    inputTokens: usage.inputTokens + usage.cacheReadInputTokens + usage.cacheWriteInputTokens,
    outputTokens: usage.outputTokens,
  };
  const latencyMs = 1 + (usage.outputTokens % 100);

  if (!stream) {
    sendJson(
      res,
      200,
      { output: { message: { role: "assistant", content: blocks } }, stopReason, usage, metrics: { latencyMs } },
      { "x-amzn-RequestId": requestId() },
    );
    return reported;
  }

  res.writeHead(200, { "content-type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": requestId() });
  let count = 0;
  const emit = (event: string, payload: Record<string, unknown>): void => {
    count += 1;
    res.write(encodeEvent(event, { ...payload, p: padding(count * 7) }));
  };
  emit("messageStart", { role: "assistant" });
  blocks.forEach((block, contentBlockIndex) => {
    if ("toolUse" in block) {
      const { toolUseId, name, input } = block.toolUse;
      emit("contentBlockStart", { contentBlockIndex, start: { toolUse: { toolUseId, name } } });
      for (const piece of chunk(JSON.stringify(input))) {
        emit("contentBlockDelta", { contentBlockIndex, delta: { toolUse: { input: piece } } });
      }
    } else if ("reasoningContent" in block) {
      const { text, signature } = block.reasoningContent.reasoningText;
      for (const piece of chunk(text)) {
        emit("contentBlockDelta", { contentBlockIndex, delta: { reasoningContent: { text: piece } } });
      }
      emit("contentBlockDelta", { contentBlockIndex, delta: { reasoningContent: { signature } } });
    } else {
      for (const piece of chunk(block.text)) emit("contentBlockDelta", { contentBlockIndex, delta: { text: piece } });
    }
    emit("contentBlockStop", { contentBlockIndex });
  });
  emit("messageStop", { stopReason });
  emit("metadata", { usage, metrics: { latencyMs } });
  res.end();
  return reported;
}

/** How a request was signed, for the log; the Authorization header with only its Signature value redacted. */
function noteAuth(record: RecordedRequest, authorization: string | string[] | undefined): void {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  if (value === undefined || value === "") {
    record.auth = "none";
    return;
  }
  const sigv4 = /^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=[0-9a-fA-F]+\s*$/.exec(value);
  if (sigv4) {
    record.auth = "sigv4";
    record.sigv4 = {
      accessKeyId: sigv4[1]!,
      date: sigv4[2]!,
      region: sigv4[3]!,
      service: sigv4[4]!,
      signedHeaders: sigv4[5]!.split(";"),
    };
    record.headers.authorization = value.replace(/Signature=[0-9a-fA-F]+/, "Signature=<redacted>");
    return;
  }
  record.auth = /^Bearer\s/i.test(value) ? "bearer" : "none";
  record.headers.authorization = "<redacted>";
}

export function createBedrock(): Protocol {
  // authorization is redacted by noteAuth (only the signature of a SigV4 header), the rest here.
  const state = new ScriptState(["x-amz-security-token", "proxy-authorization", "x-api-key"]);

  function handle(request: ApiRequest): void {
    const { req, res, method, url, parsed } = request;
    const record = state.record(req, request.logBody);
    noteAuth(record, req.headers.authorization);

    const match = MODEL_PATH.exec(url.pathname);
    if (method === "POST" && match) {
      let model: string;
      try {
        model = decodeURIComponent(match[1]!);
      } catch {
        model = match[1]!;
      }
      record.model = model;
      if (!parsed.ok || !isObject(parsed.value)) {
        sendError(res, { status: 400, type: "ValidationException", message: "Malformed input request, please reformat your input and try again." });
        return;
      }
      const body = parsed.value as ConverseBody;
      const stream = match[2] === "converse-stream";
      record.kind = "main";
      record.turn = countAssistantMessages(body);
      const answer = state.answer(record.turn, firstUserText(body), record);
      if (answer.kind === "error") {
        sendError(res, answer.error);
        return;
      }
      const blocks = answer.step ? buildBlocks(answer.step) : [{ text: EXHAUSTED_REPLY }];
      record.usage = sendConverse(res, stream, body, blocks, record.turn);
      return;
    }
    sendError(res, { status: 404, type: "UnknownOperationException", message: `${method} ${url.pathname} is not an operation of this fake` });
  }

  return {
    name: "bedrock",
    state,
    badRequestType: "ValidationException",
    serverErrorType: "InternalServerException",
    owns: (_method, pathname) => pathname.startsWith("/model/"),
    handle,
    sendError,
  };
}

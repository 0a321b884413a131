// The Anthropic Messages API part of the fake model server, so agent CLIs (Claude Code) can be driven through a
// deterministic conversation without network access or a real key.
//
// API endpoints:
//   POST /v1/messages                `stream: true`: SSE (`event: <type>\ndata: {...}\n\n`); otherwise one Message
//   POST /v1/messages/count_tokens   {"input_tokens": n}
//   HEAD|GET /api/hello              connectivity probe

import type { ServerResponse } from "node:http";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, estimateTokens, openEventStream, sendJson, sendText, uniqueId } from "./script.ts";

type ContentBlock =
  | { type: "text"; text: string }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

interface MessagesBody {
  model?: unknown;
  messages?: unknown;
  tools?: unknown;
  max_tokens?: unknown;
  stream?: unknown;
  system?: unknown;
}

const SIDE_REPLY = "OK";
const EXHAUSTED_REPLY = "The fake Anthropic script has no more steps.";

/**
 * Decides whether a /v1/messages request is a turn of the main conversation, whose answer comes from the
 * script; everything else gets a short generic reply and leaves the script where it is.
 *
 * What Claude Code 2.1.330 sends in `-p` mode (checked against the real CLI): every turn of the main
 * conversation is a streaming request with the agent's tool list (`tools` non-empty) and a real
 * `max_tokens` (32000). The CLI's utility calls do not look like that: the quota probe ("quota"), the
 * start-up model check ("."), the API-key check ("test") and model validation all send `max_tokens: 1`
 * without tools. Subagents (the Agent/Task tool) do send tools and a full budget, but start their own
 * conversation from zero assistant messages, so they would replay the script from its first step; they
 * are told apart by the `x-claude-code-agent-id` header (and a `cc_is_subagent=true` marker in the first
 * system block), and are answered like side requests, which ends each subagent after one reply.
 * No prompt wording is matched, because it changes between CLI versions.
 */
function isMainConversation(request: ApiRequest, body: MessagesBody): boolean {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  const maxTokens = typeof body.max_tokens === "number" ? body.max_tokens : 0;
  return hasTools && maxTokens > 1 && !isSubagent(request, body);
}

function isSubagent(request: ApiRequest, body: MessagesBody): boolean {
  if (request.req.headers["x-claude-code-agent-id"] !== undefined) return true;
  return JSON.stringify(body.system ?? "").includes("cc_is_subagent=true");
}

function countAssistantMessages(body: MessagesBody): number {
  if (!Array.isArray(body.messages)) return 0;
  return body.messages.filter(
    (m: unknown) => typeof m === "object" && m !== null && (m as { role?: unknown }).role === "assistant",
  ).length;
}

/** The text of the first message when it is the user's: a string, or its text blocks joined by newlines. */
function firstUserText(body: MessagesBody): string | undefined {
  if (!Array.isArray(body.messages)) return undefined;
  const first: unknown = body.messages[0];
  if (typeof first !== "object" || first === null) return undefined;
  const { role, content } = first as { role?: unknown; content?: unknown };
  if (role !== "user") return undefined;
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  return content
    .filter((b: unknown): b is { type: "text"; text: string } => typeof b === "object" && b !== null && (b as { type?: unknown }).type === "text" && typeof (b as { text?: unknown }).text === "string")
    .map((b) => b.text)
    .join("\n");
}

function buildBlocks(step: Step): ContentBlock[] {
  const blocks: ContentBlock[] = [];
  if (step.thinking !== undefined) {
    // Real signatures are opaque base64; Claude Code only stores and echoes them back, never checks them.
    const signature = Buffer.from(`fake-signature-${uniqueId("sig")}`).toString("base64");
    blocks.push({ type: "thinking", thinking: step.thinking, signature });
  }
  if (step.text !== undefined) blocks.push({ type: "text", text: step.text });
  for (const tool of step.toolUse ?? []) {
    blocks.push({ type: "tool_use", id: uniqueId("toolu"), name: tool.name, input: tool.input });
  }
  if (blocks.length === 0) blocks.push({ type: "text", text: "" });
  return blocks;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { "request-id": uniqueId("req"), ...headers });
}

function sendError(res: ServerResponse, error: ErrorSpec, shouldRetry?: boolean): void {
  // The real API sends retry-after with 429s. (Claude Code 2.1.330 backs off exponentially regardless.)
  const headers: Record<string, string> = error.status === 429 ? { "retry-after": "0" } : {};
  if (shouldRetry !== undefined) headers["x-should-retry"] = String(shouldRetry);
  json(res, error.status, { type: "error", error: { type: error.type, message: error.message } }, headers);
}

/** Sends the message and returns the usage it reported. */
function sendMessage(res: ServerResponse, body: MessagesBody, blocks: ContentBlock[]): ReportedUsage {
  const model = typeof body.model === "string" ? body.model : "claude-fake";
  const stopReason = blocks.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn";
  const inputTokens = estimateTokens({ system: body.system, messages: body.messages });
  const outputTokens = estimateTokens(blocks);
  const usage = {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
  const id = uniqueId("msg");
  const reported: ReportedUsage = { vendor: usage, inputTokens, outputTokens };

  if (body.stream !== true) {
    json(res, 200, {
      id,
      type: "message",
      role: "assistant",
      model,
      content: blocks,
      stop_reason: stopReason,
      stop_sequence: null,
      usage,
    });
    return reported;
  }

  openEventStream(res, { "request-id": uniqueId("req") });
  const emit = (event: string, data: unknown): void => {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };

  emit("message_start", {
    type: "message_start",
    message: {
      id,
      type: "message",
      role: "assistant",
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...usage, output_tokens: 1 },
    },
  });
  emit("ping", { type: "ping" });

  blocks.forEach((block, index) => {
    if (block.type === "text") {
      emit("content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } });
      for (const piece of chunk(block.text)) {
        emit("content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: piece } });
      }
    } else if (block.type === "thinking") {
      emit("content_block_start", {
        type: "content_block_start",
        index,
        content_block: { type: "thinking", thinking: "", signature: "" },
      });
      for (const piece of chunk(block.thinking)) {
        emit("content_block_delta", {
          type: "content_block_delta",
          index,
          delta: { type: "thinking_delta", thinking: piece },
        });
      }
      emit("content_block_delta", {
        type: "content_block_delta",
        index,
        delta: { type: "signature_delta", signature: block.signature },
      });
    } else {
      emit("content_block_start", {
        type: "content_block_start",
        index,
        content_block: { type: "tool_use", id: block.id, name: block.name, input: {} },
      });
      // The real API opens with an empty partial_json before the argument fragments.
      for (const piece of ["", ...chunk(JSON.stringify(block.input))]) {
        emit("content_block_delta", {
          type: "content_block_delta",
          index,
          delta: { type: "input_json_delta", partial_json: piece },
        });
      }
    }
    emit("content_block_stop", { type: "content_block_stop", index });
  });

  emit("message_delta", {
    type: "message_delta",
    delta: { stop_reason: stopReason, stop_sequence: null },
    usage,
  });
  emit("message_stop", { type: "message_stop" });
  res.end();
  return reported;
}

export function createAnthropic(): Protocol {
  const state = new ScriptState(["x-api-key", "authorization", "proxy-authorization"]);

  // turnIndex is the number of assistant messages the request carries: Claude Code resends the whole
  // conversation each turn, so this names the turn without any server-side session state.
  function answerMain(res: ServerResponse, body: MessagesBody, record: RecordedRequest, turnIndex: number): void {
    const answer = state.answer(turnIndex, firstUserText(body), record);
    if (answer.kind === "error") {
      sendError(res, answer.error, answer.shouldRetry);
      return;
    }
    record.usage = sendMessage(res, body, answer.step ? buildBlocks(answer.step) : [{ type: "text", text: EXHAUSTED_REPLY }]);
  }

  function handle(request: ApiRequest): void {
    const { req, res, method, url, parsed } = request;
    const record = state.record(req, request.logBody);

    if (method === "POST" && url.pathname === "/v1/messages") {
      if (!parsed.ok || typeof parsed.value !== "object" || parsed.value === null) {
        sendError(res, { status: 400, type: "invalid_request_error", message: "request body is not a JSON object" });
        return;
      }
      const body = parsed.value as MessagesBody;
      if (isMainConversation(request, body)) {
        record.kind = "main";
        record.turn = countAssistantMessages(body);
        answerMain(res, body, record, record.turn);
      } else {
        record.kind = "side";
        // Side replies report usage too: the provider gateway meters every call, so the log must count them all.
        record.usage = sendMessage(res, body, [{ type: "text", text: SIDE_REPLY }]);
      }
      return;
    }
    if (method === "POST" && url.pathname === "/v1/messages/count_tokens") {
      const body = parsed.ok ? (parsed.value as MessagesBody | undefined) : undefined;
      json(res, 200, { input_tokens: estimateTokens({ system: body?.system, messages: body?.messages }) });
      return;
    }
    // Connectivity probe Claude Code sends to the base URL unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
    // is set; the CLI copes with a 404 too, but the real API answers it.
    if ((method === "HEAD" || method === "GET") && url.pathname === "/api/hello") {
      sendText(res, 200, method === "HEAD" ? undefined : "ok");
      return;
    }
    sendError(res, { status: 404, type: "not_found_error", message: `${method} ${url.pathname} not found` });
  }

  return {
    name: "anthropic",
    state,
    badRequestType: "invalid_request_error",
    serverErrorType: "api_error",
    owns: (_method, pathname) => pathname === "/v1/messages" || pathname.startsWith("/v1/messages/") || pathname === "/api/hello",
    handle,
    sendError: (res, error) => sendError(res, error),
  };
}

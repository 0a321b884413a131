// Ollama's native API part of the fake model server, so clients of a local Ollama (the AI SDK's ollama
// provider, agents configured for Ollama) can be driven through a deterministic conversation without a model.
//
// API endpoints (Ollama's /v1 OpenAI-compatible endpoints are chat.ts's /v1/chat/completions):
//   POST /api/chat      streams NDJSON (`application/x-ndjson`) unless `stream: false`, as Ollama does: one
//                       chunk per line, the last with `done: true`, `done_reason`, the counts and durations;
//                       with `stream: false` one object with the whole message
//   GET|HEAD /api/tags      one fake model
//   GET|HEAD /api/version   {"version": "..."}
// Anything else under /api/ (except Anthropic's /api/hello) gets 404 `{"error": "..."}`, Ollama's error body.
//
// Which step answers a request: like chat.ts, a request with tools and a user message is a main-conversation
// turn, answered by the step whose index is the number of runs of assistant messages in `messages`; requests
// without tools get a plain "OK" and leave the script alone.
//
// Usage: Ollama has no usage object; the last chunk carries `prompt_eval_count` (input) and `eval_count`
// (output, thinking included) and the durations (nanoseconds), all deterministic here. Ollama reports no
// cached or reasoning counts.

import type { ServerResponse } from "node:http";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, countAssistantRuns, estimateTokens, objectMessages, isObject, sendJson } from "./script.ts";

interface OllamaChatBody {
  model?: unknown;
  messages?: unknown;
  tools?: unknown;
  stream?: unknown;
  think?: unknown;
  format?: unknown;
  options?: unknown;
}

interface OllamaToolCall {
  id: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

interface OllamaMessage {
  role: "assistant";
  content: string;
  thinking?: string;
  tool_calls?: OllamaToolCall[];
}

/** The usage fields of the final chunk (what ReportedUsage.vendor holds for Ollama). */
export interface OllamaMetrics {
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
  prompt_eval_duration: number;
  eval_count: number;
  eval_duration: number;
}

const SIDE_REPLY = "OK";
const EXHAUSTED_REPLY = "The fake Ollama script has no more steps.";
const VERSION = "0.13.0";
const FAKE_MODEL = "llama3.2:latest";

/** The content of the conversation's first user message (Ollama message content is a string). */
function firstUserText(body: OllamaChatBody): string | undefined {
  const first = objectMessages(body).find((m) => m.role === "user");
  if (!first) return undefined;
  return typeof first.content === "string" ? first.content : "";
}

/** A request with tools and a user message is a main-conversation turn; see chat.ts isMainConversation. */
function isMainConversation(body: OllamaChatBody): boolean {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  return hasTools && firstUserText(body) !== undefined;
}

/** Ollama's tool call ids: `call_` and 8 lowercase letters or digits. */
function toolCallId(): string {
  const letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  let id = "call_";
  for (let i = 0; i < 8; i++) id += letters[Math.floor(Math.random() * letters.length)];
  return id;
}

function buildMessage(step: Step): OllamaMessage {
  const message: OllamaMessage = { role: "assistant", content: step.text ?? "" };
  if (step.thinking !== undefined) message.thinking = step.thinking;
  const calls = (step.toolUse ?? []).map((tool, index) => ({
    id: toolCallId(),
    function: { index, name: tool.name, arguments: tool.input },
  }));
  if (calls.length > 0) message.tool_calls = calls;
  return message;
}

function textMessage(text: string): OllamaMessage {
  return { role: "assistant", content: text };
}

/** Deterministic counts and durations (nanoseconds) derived from the request and the reply. */
function metricsFor(body: OllamaChatBody, message: OllamaMessage): OllamaMetrics {
  const promptEvalCount = estimateTokens({ messages: body.messages, tools: body.tools });
  const thinking = message.thinking === undefined ? 0 : estimateTokens(message.thinking);
  // Without the generated call ids, so the counts depend on the request and the step only.
  const calls = (message.tool_calls ?? []).map((call) => call.function);
  const evalCount = estimateTokens({ content: message.content, tool_calls: calls }) + thinking;
  const loadDuration = 1_000_000;
  const promptEvalDuration = promptEvalCount * 100_000;
  const evalDuration = evalCount * 1_000_000;
  return {
    total_duration: loadDuration + promptEvalDuration + evalDuration + 500_000,
    load_duration: loadDuration,
    prompt_eval_count: promptEvalCount,
    prompt_eval_duration: promptEvalDuration,
    eval_count: evalCount,
    eval_duration: evalDuration,
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, { "content-type": "application/json; charset=utf-8" });
}

/** Ollama's error body: `{"error": "<message>"}` with the step's status; the error type has no place in it. */
function sendError(res: ServerResponse, error: ErrorSpec): void {
  json(res, error.status, { error: error.message });
}

/** Sends the chat response and returns the usage it reported. */
function sendChat(res: ServerResponse, body: OllamaChatBody, message: OllamaMessage): ReportedUsage {
  const model = typeof body.model === "string" ? body.model : FAKE_MODEL;
  const metrics = metricsFor(body, message);
  const reported: ReportedUsage = { vendor: { ...metrics }, inputTokens: metrics.prompt_eval_count, outputTokens: metrics.eval_count };
  const createdAt = (): string => new Date().toISOString();
  const done = { done: true, done_reason: "stop", ...metrics };

  if (body.stream === false) {
    json(res, 200, { model, created_at: createdAt(), message, ...done });
    return reported;
  }

  res.writeHead(200, { "content-type": "application/x-ndjson" });
  const line = (msg: Record<string, unknown>, extra: Record<string, unknown> = { done: false }): void => {
    res.write(`${JSON.stringify({ model, created_at: createdAt(), message: { role: "assistant", ...msg }, ...extra })}\n`);
  };
  // Like the real stream: thinking first, then the content in pieces, each tool call whole in a chunk of its own.
  if (message.thinking !== undefined) {
    for (const piece of chunk(message.thinking)) line({ content: "", thinking: piece });
  }
  if (message.content.length > 0) {
    for (const piece of chunk(message.content)) line({ content: piece });
  }
  for (const call of message.tool_calls ?? []) line({ content: "", tool_calls: [call] });
  line({ content: "" }, done);
  res.end();
  return reported;
}

const MODEL_LIST = {
  models: [
    {
      name: FAKE_MODEL,
      model: FAKE_MODEL,
      modified_at: "2025-01-01T00:00:00Z",
      size: 2019393189,
      digest: "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
      details: {
        parent_model: "",
        format: "gguf",
        family: "llama",
        families: ["llama"],
        parameter_size: "3.2B",
        quantization_level: "Q4_K_M",
      },
    },
  ],
};

export function createOllama(): Protocol {
  // Ollama itself takes no key; a proxy in front of it (or ollama.com) takes a bearer token.
  const state = new ScriptState(["authorization", "proxy-authorization"]);

  function answerMain(res: ServerResponse, body: OllamaChatBody, entry: RecordedRequest, turnIndex: number): void {
    const answer = state.answer(turnIndex, firstUserText(body), entry);
    if (answer.kind === "error") {
      sendError(res, answer.error);
      return;
    }
    entry.usage = sendChat(res, body, answer.step ? buildMessage(answer.step) : textMessage(EXHAUSTED_REPLY));
  }

  function handle(request: ApiRequest): void {
    const { req, res, method, url, parsed } = request;
    const entry = state.record(req, request.logBody);
    const { pathname } = url;

    if (method === "POST" && pathname === "/api/chat") {
      if (!parsed.ok || !isObject(parsed.value)) {
        sendError(res, { status: 400, type: "invalid_request_error", message: "invalid character in request body" });
        return;
      }
      const body = parsed.value as OllamaChatBody;
      if (isMainConversation(body)) {
        entry.kind = "main";
        entry.turn = countAssistantRuns(objectMessages(body));
        answerMain(res, body, entry, entry.turn);
      } else {
        entry.kind = "side";
        // Side replies report usage too: the provider gateway meters every call.
        entry.usage = sendChat(res, body, textMessage(SIDE_REPLY));
      }
      return;
    }
    if ((method === "GET" || method === "HEAD") && (pathname === "/api/tags" || pathname === "/api/version")) {
      const payload = pathname === "/api/tags" ? MODEL_LIST : { version: VERSION };
      if (method === "HEAD") {
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.end();
      } else {
        json(res, 200, payload);
      }
      return;
    }
    sendError(res, { status: 404, type: "not_found", message: `${method} ${pathname} not found` });
  }

  return {
    name: "ollama",
    state,
    badRequestType: "invalid_request_error",
    serverErrorType: "server_error",
    // /api/hello is Anthropic's connectivity probe (anthropic.ts).
    owns: (_method, pathname) => pathname.startsWith("/api/") && pathname !== "/api/hello",
    handle,
    sendError,
  };
}

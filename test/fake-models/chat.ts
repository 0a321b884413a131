// The OpenAI Chat Completions part of the fake model server, as DeepSeek, OpenAI and Azure OpenAI serve it, so
// clients of that API (the AI SDK's deepseek provider, OpenAI-compatible agents) can be driven through a
// deterministic conversation without network access or a real key.
//
// API endpoints (DeepSeek's base URL has no version path, OpenAI's ends in /v1, Azure's v1 API in /openai/v1):
//   POST /chat/completions, /v1/chat/completions, /openai/v1/chat/completions
//     `stream: true`: SSE, one `data: {chat.completion.chunk}` per chunk and a final `data: [DONE]`;
//     otherwise one `chat.completion` object
// Any other path under those prefixes' `chat/` is answered 404 in OpenAI's error shape.
//
// Which step answers a request: a main-conversation request (see isMainConversation) is answered by the step
// whose index is the number of model turns the conversation already holds (runs of assistant messages, see
// countAssistantRuns in script.ts), so the script advances once per model turn and retries of a turn get the same step. Side
// requests (no tools: titles, summaries) get a plain "OK" and leave the script alone.
//
// Usage is reported in the union of the vendors' shapes, as DeepSeek sends it: OpenAI's `prompt_tokens`,
// `completion_tokens`, `total_tokens`, `prompt_tokens_details.cached_tokens`,
// `completion_tokens_details.reasoning_tokens`, plus DeepSeek's `prompt_cache_hit_tokens` /
// `prompt_cache_miss_tokens`. A stream always reports it: with `stream_options.include_usage` as OpenAI does
// (every chunk says `usage: null`, then one extra chunk with `choices: []` and the usage), otherwise as
// DeepSeek does (on the chunk with the finish_reason).

import type { ServerResponse } from "node:http";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, countAssistantRuns, estimateTokens, objectMessages, isObject, openEventStream, sendJson, uniqueId } from "./script.ts";
import { errorBody } from "./openai.ts";

interface ChatBody {
  model?: unknown;
  messages?: unknown;
  tools?: unknown;
  tool_choice?: unknown;
  stream?: unknown;
  stream_options?: unknown;
}

interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** What one reply says: DeepSeek's reasoning_content, the content and the tool calls. */
interface Reply {
  reasoning?: string;
  content?: string;
  toolCalls: ToolCall[];
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details: { reasoning_tokens: number };
  prompt_cache_hit_tokens: number;
  prompt_cache_miss_tokens: number;
}

const SIDE_REPLY = "OK";
const EXHAUSTED_REPLY = "The fake Chat Completions script has no more steps.";
const SYSTEM_FINGERPRINT = "fp_fake";

/** The text of a message's content: a string, or its `text` parts joined by newlines. */
function contentText(content: unknown): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  return content
    .filter((part: unknown): part is { text: string } => isObject(part) && (part.type === undefined || part.type === "text") && typeof part.text === "string")
    .map((part) => part.text)
    .join("\n");
}

/** The text of the conversation's first user message (system and developer messages come before it). */
function firstUserText(body: ChatBody): string | undefined {
  const first = objectMessages(body).find((m) => m.role === "user");
  return first ? contentText(first.content) : undefined;
}

/**
 * Whether a request is a turn of the main conversation, whose answer comes from the script: it offers tools
 * and holds a user message. Agent loops send their tools on every turn; the utility calls clients make
 * through the same API (titles, summaries, compaction) send none, and get a generic reply instead. No prompt
 * wording is matched.
 */
function isMainConversation(body: ChatBody): boolean {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  return hasTools && firstUserText(body) !== undefined;
}

function buildReply(step: Step): Reply {
  const reply: Reply = { toolCalls: [] };
  if (step.thinking !== undefined) reply.reasoning = step.thinking;
  if (step.text !== undefined) reply.content = step.text;
  for (const tool of step.toolUse ?? []) {
    reply.toolCalls.push({
      id: uniqueId("call"),
      type: "function",
      function: { name: tool.name, arguments: JSON.stringify(tool.input) },
    });
  }
  if (reply.reasoning === undefined && reply.content === undefined && reply.toolCalls.length === 0) reply.content = "";
  return reply;
}

/**
 * Deterministic counts from the request and reply: the prompt from the messages and tools, half of it (at
 * least 1) reported as a cache hit (the real APIs cache the resent conversation prefix), the completion
 * from content and tool calls plus the reasoning, which it includes.
 */
function usageFor(body: ChatBody, reply: Reply): ChatUsage {
  const promptTokens = estimateTokens({ messages: body.messages, tools: body.tools });
  const cachedTokens = Math.max(1, Math.floor(promptTokens / 2));
  const reasoningTokens = reply.reasoning === undefined ? 0 : estimateTokens(reply.reasoning);
  // Without the generated call ids, so the counts depend on the request and the step only.
  const answer = { content: reply.content ?? null, tool_calls: reply.toolCalls.map((call) => call.function) };
  const completionTokens = estimateTokens(answer) + reasoningTokens;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
    completion_tokens_details: { reasoning_tokens: reasoningTokens },
    prompt_cache_hit_tokens: cachedTokens,
    prompt_cache_miss_tokens: promptTokens - cachedTokens,
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { "x-request-id": uniqueId("req"), ...headers });
}

/** OpenAI's error body (see openai.ts errorBody), which DeepSeek and Azure use too. */
function sendError(res: ServerResponse, error: ErrorSpec, shouldRetry?: boolean): void {
  const headers: Record<string, string> = error.status === 429 ? { "retry-after": "0" } : {};
  if (shouldRetry !== undefined) headers["x-should-retry"] = String(shouldRetry);
  json(res, error.status, errorBody(error), headers);
}

/**
 * Sends the completion and returns the usage it reported (none: a stream OpenAI was not asked to report usage in).
 * `vendor` is who serves the path: OpenAI (and Azure) report a stream's usage only when `stream_options.include_usage`
 * asks for it; DeepSeek (no /v1 in its paths) on the chunk with the finish_reason otherwise.
 */
function sendCompletion(res: ServerResponse, body: ChatBody, reply: Reply, vendor: "openai" | "deepseek"): ReportedUsage | undefined {
  const id = uniqueId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const model = typeof body.model === "string" ? body.model : "gpt-fake";
  const finishReason = reply.toolCalls.length > 0 ? "tool_calls" : "stop";
  const usage = usageFor(body, reply);
  const reported: ReportedUsage = { vendor: { ...usage }, inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens };

  if (body.stream !== true) {
    const message: Record<string, unknown> = { role: "assistant", content: reply.content ?? null };
    if (reply.reasoning !== undefined) message.reasoning_content = reply.reasoning;
    if (reply.toolCalls.length > 0) message.tool_calls = reply.toolCalls;
    json(res, 200, {
      id,
      object: "chat.completion",
      created,
      model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
      usage,
    });
    return reported;
  }

  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
  openEventStream(res, { "x-request-id": uniqueId("req") });
  const emit = (choices: unknown[], extra: Record<string, unknown> = {}): void => {
    const data = {
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    };
    res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const delta = (d: Record<string, unknown>): void => emit([{ index: 0, delta: d, logprobs: null, finish_reason: null }]);

  delta({ role: "assistant", content: "" });
  if (reply.reasoning !== undefined) {
    for (const piece of chunk(reply.reasoning)) delta({ content: null, reasoning_content: piece });
  }
  if (reply.content !== undefined && reply.content.length > 0) {
    for (const piece of chunk(reply.content)) delta({ content: piece });
  }
  reply.toolCalls.forEach((call, index) => {
    // The first delta names the call; the arguments follow in pieces, like the real stream.
    delta({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] });
    for (const piece of chunk(call.function.arguments)) {
      delta({ tool_calls: [{ index, function: { arguments: piece } }] });
    }
  });
  const finish = [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }];
  if (includeUsage) {
    emit(finish);
    emit([], { usage });
  } else if (vendor === "deepseek") {
    emit(finish, { usage });
  } else {
    emit(finish);
  }
  res.write("data: [DONE]\n\n");
  res.end();
  return includeUsage || vendor === "deepseek" ? reported : undefined;
}

const COMPLETIONS_PATHS = new Set(["/chat/completions", "/v1/chat/completions", "/openai/v1/chat/completions"]);

export function createChat(): Protocol {
  const state = new ScriptState(["authorization", "proxy-authorization", "api-key", "x-api-key"]);

  function answerMain(res: ServerResponse, body: ChatBody, entry: RecordedRequest, turnIndex: number, vendor: "openai" | "deepseek"): void {
    const answer = state.answer(turnIndex, firstUserText(body), entry);
    if (answer.kind === "error") {
      sendError(res, answer.error, answer.shouldRetry);
      return;
    }
    const reply = answer.step ? buildReply(answer.step) : { content: EXHAUSTED_REPLY, toolCalls: [] };
    const usage = sendCompletion(res, body, reply, vendor);
    if (usage) entry.usage = usage;
  }

  function handle(request: ApiRequest): void {
    const { req, res, method, url, parsed } = request;
    const entry = state.record(req, request.logBody);

    if (method === "POST" && COMPLETIONS_PATHS.has(url.pathname)) {
      if (!parsed.ok || !isObject(parsed.value)) {
        sendError(res, { status: 400, type: "invalid_request_error", message: "request body is not a JSON object" });
        return;
      }
      const body = parsed.value as ChatBody;
      const vendor = url.pathname === "/chat/completions" ? "deepseek" : "openai";
      if (isMainConversation(body)) {
        entry.kind = "main";
        entry.turn = countAssistantRuns(objectMessages(body));
        answerMain(res, body, entry, entry.turn, vendor);
      } else {
        entry.kind = "side";
        // Side replies report usage too: the provider gateway meters every call.
        const usage = sendCompletion(res, body, { content: SIDE_REPLY, toolCalls: [] }, vendor);
        if (usage) entry.usage = usage;
      }
      return;
    }
    sendError(res, { status: 404, type: "invalid_request_error", message: `Invalid URL (${method} ${url.pathname})` });
  }

  return {
    name: "chat",
    state,
    badRequestType: "invalid_request_error",
    serverErrorType: "server_error",
    owns: (_method, pathname) => /^\/(?:openai\/v1\/|v1\/)?chat(?:\/|$)/.test(pathname),
    handle,
    sendError: (res, error) => sendError(res, error),
  };
}

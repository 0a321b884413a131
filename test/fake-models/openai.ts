// The OpenAI Responses API part of the fake model server, so agent CLIs (Codex) can be driven through a
// deterministic conversation without network access or a real key.
//
// API endpoints (with or without the /v1 prefix, so a provider base_url may end in /v1 or not, and under Azure
// OpenAI's v1 API path /openai/v1):
//   POST /v1/responses, /responses, /openai/v1/responses
//     `stream: true`: SSE (`event: <type>\ndata: {...}\n\n`); otherwise one Response object
// Chat Completions (/v1/chat/completions ...) belong to chat.ts.
//
// Which step answers a request: a main-conversation request (see isMainConversation) is answered by the step
// whose index is the number of model responses the conversation already holds (see countModelTurns and
// TurnOffsets), so the script advances once per model turn, retries of a turn get the same step, and a
// `codex exec resume` run continues where the earlier run's history ends (its script must keep the earlier
// steps). Side requests (compaction summaries, subagents) get a plain "OK" and leave the script alone.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, estimateTokens, isObject, openEventStream, sendJson, uniqueId } from "./script.ts";

interface ReasoningItem {
  type: "reasoning";
  id: string;
  summary: Array<{ type: "summary_text"; text: string }>;
  encrypted_content: string;
}

interface MessageItem {
  type: "message";
  id: string;
  status: "completed";
  role: "assistant";
  content: Array<{ type: "output_text"; text: string; annotations: unknown[]; logprobs: unknown[] }>;
}

interface FunctionCallItem {
  type: "function_call";
  id: string;
  status: "completed";
  call_id: string;
  name: string;
  namespace?: string;
  arguments: string;
}

type OutputItem = ReasoningItem | MessageItem | FunctionCallItem;

interface ResponsesBody {
  model?: unknown;
  instructions?: unknown;
  input?: unknown;
  tools?: unknown;
  tool_choice?: unknown;
  parallel_tool_calls?: unknown;
  reasoning?: unknown;
  store?: unknown;
  stream?: unknown;
  client_metadata?: unknown;
}

interface ErrorBody {
  error: { message: string; type: string; param: null; code: string | null };
}

const SIDE_REPLY = "OK";
const EXHAUSTED_REPLY = "The fake OpenAI script has no more steps.";

/** Codex's per-request metadata: the `x-codex-turn-metadata` header, or the same JSON in `client_metadata`. */
function turnMetadata(req: IncomingMessage, body: ResponsesBody): Record<string, unknown> | undefined {
  const header = req.headers["x-codex-turn-metadata"];
  const fromBody = isObject(body.client_metadata) ? body.client_metadata["x-codex-turn-metadata"] : undefined;
  const raw = typeof header === "string" ? header : typeof fromBody === "string" ? fromBody : undefined;
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as unknown;
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decides whether a /v1/responses request is a turn of the main conversation, whose answer comes from the
 * script; everything else gets a short generic reply and leaves the script where it is.
 *
 * What Codex 0.169.0 sends (checked against the real CLI): every request carries an `x-codex-turn-metadata`
 * header (the same JSON is repeated in `client_metadata`) with `request_kind`: `"turn"` for model turns,
 * `"compaction"` for the history summary of an automatic (local) compaction, which also has no tools.
 * Subagents spawned with the multi_agent_v1 tools send `request_kind: "turn"` too, but start their own
 * conversation from zero model turns, so they would replay the script from its first step; they carry the
 * `x-openai-subagent` (e.g. "collab_spawn") and `x-codex-parent-thread-id` headers and, in the metadata,
 * `thread_source: "subagent"`, `subagent_kind` and `parent_thread_id` (their `agent_name` is "/root" like the
 * main agent's). A request without Codex metadata (another client, a unit test) counts as a main turn.
 * No prompt wording is matched, because it changes between versions.
 */
function isMainConversation(req: IncomingMessage, meta: Record<string, unknown> | undefined): boolean {
  if (req.headers["x-openai-subagent"] !== undefined) return false;
  if (req.headers["x-codex-parent-thread-id"] !== undefined) return false;
  if (!meta) return true;
  if (meta.request_kind !== undefined && meta.request_kind !== "turn") return false;
  if (meta.thread_source === "subagent") return false;
  if (meta.parent_thread_id !== undefined || meta.subagent_kind !== undefined) return false;
  return true;
}

/** Item types the model produces (as opposed to user/developer messages and tool outputs the client adds). */
function isModelOutput(item: unknown): boolean {
  if (!isObject(item)) return false;
  switch (item.type) {
    case "message":
      return item.role === "assistant";
    case "reasoning":
    case "function_call":
    case "custom_tool_call":
    case "local_shell_call":
    case "web_search_call":
    case "tool_search_call":
    case "image_generation_call":
      return true;
    default:
      return false;
  }
}

/**
 * How many model responses a request's `input` holds.
 *
 * Codex resends the whole conversation on every request (`store: false`, no previous_response_id). One model
 * response becomes a run of consecutive output items in `input` (reasoning, assistant message, function
 * calls), followed by what the client adds (function_call_output items, or a new user message). So one turn
 * = one maximal run of model-output items; a run is ended by any other item. Codex 0.169 records all calls
 * of one response before their outputs (`fc1, fc2, out1, out2`), so several tool calls in one step still
 * count as one turn, and a retried request carries the same input and so gets the same step.
 */
function countModelTurns(body: ResponsesBody): number {
  if (!Array.isArray(body.input)) return 0;
  let turns = 0;
  let inRun = false;
  for (const item of body.input) {
    const output = isModelOutput(item);
    if (output && !inRun) turns += 1;
    inRun = output;
  }
  return turns;
}

/**
 * Turn bookkeeping across automatic compactions. A compaction replaces the model turns of the history with
 * one summary message, so after it `input` starts counting from zero again and the script would replay.
 * Codex numbers the context windows of a thread (`window_number` in the metadata, 0 first, +1 after each
 * compaction), and the compaction request carries the history being summarised. So the turns before window
 * w+1 = turns before window w + model turns in window w's compaction request, and a main request's turn =
 * turns before its window + model turns in its input. Keyed by thread_id and window, so a repeated
 * compaction request does not count twice.
 */
class TurnOffsets {
  private readonly byThread = new Map<string, Map<number, number>>();

  private windows(meta: Record<string, unknown> | undefined): { key: string; window: number } {
    const key = typeof meta?.thread_id === "string" ? meta.thread_id : "";
    const window = typeof meta?.window_number === "number" ? meta.window_number : 0;
    return { key, window };
  }

  /** Model turns that happened before the request's context window. */
  before(meta: Record<string, unknown> | undefined): number {
    const { key, window } = this.windows(meta);
    const offsets = this.byThread.get(key);
    if (!offsets) return 0;
    // Fall back to the nearest earlier window whose offset is known.
    for (let w = window; w >= 0; w -= 1) {
      const known = offsets.get(w);
      if (known !== undefined) return known;
    }
    return 0;
  }

  /** Records a compaction request: the next window starts after the turns it summarises. */
  compacted(meta: Record<string, unknown> | undefined, body: ResponsesBody): void {
    const { key, window } = this.windows(meta);
    const offsets = this.byThread.get(key) ?? new Map<number, number>();
    offsets.set(window + 1, this.before(meta) + countModelTurns(body));
    this.byThread.set(key, offsets);
  }
}

/**
 * The text of the first user item of `input`: a string `input` itself, else the first item with role "user"
 * (a message item, typed or not), its content a string or parts whose `input_text`/`text` texts are joined.
 */
function firstUserText(body: ResponsesBody): string | undefined {
  if (typeof body.input === "string") return body.input;
  if (!Array.isArray(body.input)) return undefined;
  const first = body.input.find((item: unknown) => isObject(item) && item.role === "user" && (item.type === undefined || item.type === "message"));
  if (!isObject(first)) return undefined;
  const { content } = first;
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  return content
    .filter((part: unknown): part is { text: string } => isObject(part) && (part.type === "input_text" || part.type === "text") && typeof part.text === "string")
    .map((part) => part.text)
    .join("\n");
}

/** Namespace tools the request offers (`{type: "namespace", name, tools: [{name}]}`), by namespace name. */
function namespaceTools(body: ResponsesBody): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  if (!Array.isArray(body.tools)) return out;
  for (const tool of body.tools) {
    if (!isObject(tool) || tool.type !== "namespace" || typeof tool.name !== "string") continue;
    const names = new Set<string>();
    if (Array.isArray(tool.tools)) {
      for (const inner of tool.tools) if (isObject(inner) && typeof inner.name === "string") names.add(inner.name);
    }
    out.set(tool.name, names);
  }
  return out;
}

/** Maps a flat `<namespace>__<tool>` name onto a namespace tool of the request, if there is one. */
function resolveToolName(name: string, namespaces: Map<string, Set<string>>): { name: string; namespace?: string } {
  for (const [namespace, tools] of namespaces) {
    const prefix = `${namespace}__`;
    if (!name.startsWith(prefix)) continue;
    const inner = name.slice(prefix.length);
    // MCP tool names with dashes are offered with underscores (get-sum -> get_sum).
    for (const candidate of [inner, inner.replace(/-/g, "_")]) {
      if (tools.has(candidate)) return { name: candidate, namespace };
    }
  }
  // With models Codex knows (gpt-5.5 ...), MCP tools are not offered up front but deferred behind its
  // `tool_search` tool; Codex 0.169 still runs a namespaced call to them, so split the flat name anyway.
  const deferred = /^(mcp__.+?)__(.+)$/.exec(name);
  if (deferred?.[1] && deferred[2]) return { name: deferred[2], namespace: deferred[1] };
  return { name };
}

function buildItems(step: Step, body: ResponsesBody): OutputItem[] {
  const items: OutputItem[] = [];
  if (step.thinking !== undefined) {
    // Real encrypted_content is opaque; Codex only stores it and sends it back, never reads it.
    const encrypted = Buffer.from(`fake-reasoning-${uniqueId("enc")}`).toString("base64");
    items.push({
      type: "reasoning",
      id: uniqueId("rs"),
      summary: [{ type: "summary_text", text: step.thinking }],
      encrypted_content: encrypted,
    });
  }
  if (step.text !== undefined) items.push(messageItem(step.text));
  const namespaces = namespaceTools(body);
  for (const tool of step.toolUse ?? []) {
    const resolved = resolveToolName(tool.name, namespaces);
    const call: FunctionCallItem = {
      type: "function_call",
      id: uniqueId("fc"),
      status: "completed",
      call_id: uniqueId("call"),
      name: resolved.name,
      arguments: JSON.stringify(tool.input),
    };
    if (resolved.namespace !== undefined) call.namespace = resolved.namespace;
    items.push(call);
  }
  if (items.length === 0) items.push(messageItem(""));
  return items;
}

function messageItem(text: string): MessageItem {
  return {
    type: "message",
    id: uniqueId("msg"),
    status: "completed",
    role: "assistant",
    content: [{ type: "output_text", text, annotations: [], logprobs: [] }],
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { "x-request-id": uniqueId("req"), ...headers });
}

const NON_OPENAI_TYPES = new Set([
  "api_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "rate_limit_error",
  "overloaded_error",
  "request_too_large",
  "error",
]);

/**
 * The OpenAI error body for an error step: `{"error":{"message","type","param":null,"code"}}`, with the
 * type and code the real API uses for that status: 401 invalid_request_error/invalid_api_key, 429
 * requests/rate_limit_exceeded, 5xx server_error/server_error, anything else invalid_request_error/null.
 */
export function errorBody(error: ErrorSpec): ErrorBody {
  let type: string;
  let code: string | null = null;
  const { status } = error;
  if (status === 401) {
    type = "invalid_request_error";
    code = "invalid_api_key";
  } else if (status === 429) {
    type = "requests";
    code = "rate_limit_exceeded";
  } else if (status >= 500) {
    type = "server_error";
    code = "server_error";
  } else {
    type = "invalid_request_error";
  }
  const given = error.type;
  const foreign = NON_OPENAI_TYPES.has(given) || /^[A-Z][A-Z_]*$/.test(given);
  if (given.length > 0 && !foreign) type = given;
  return { error: { message: error.message, type, param: null, code } };
}

function sendError(res: ServerResponse, error: ErrorSpec, shouldRetry?: boolean): void {
  const headers: Record<string, string> = error.status === 429 ? { "retry-after": "0" } : {};
  if (shouldRetry !== undefined) headers["x-should-retry"] = String(shouldRetry);
  json(res, error.status, errorBody(error), headers);
}

function usageFor(body: ResponsesBody, items: OutputItem[]): Record<string, unknown> {
  const inputTokens = estimateTokens({ instructions: body.instructions, input: body.input, tools: body.tools });
  const reasoningTokens = items
    .filter((item): item is ReasoningItem => item.type === "reasoning")
    .reduce((sum, item) => sum + estimateTokens(item.summary[0]?.text ?? ""), 0);
  const outputTokens = estimateTokens(items.filter((item) => item.type !== "reasoning")) + reasoningTokens;
  // The real API reports the conversation prefix it has seen before as cached; half is a plausible stand-in.
  const cachedTokens = Math.max(1, Math.floor(inputTokens / 2));
  return {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: cachedTokens },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: inputTokens + outputTokens,
  };
}

function responseObject(
  id: string,
  body: ResponsesBody,
  status: "in_progress" | "completed",
  output: OutputItem[],
  usage: Record<string, unknown> | null,
): Record<string, unknown> {
  return {
    id,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: null,
    model: typeof body.model === "string" ? body.model : "gpt-fake",
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null, ...(isObject(body.reasoning) ? body.reasoning : {}) },
    store: body.store ?? false,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: body.tool_choice ?? "auto",
    tools: Array.isArray(body.tools) ? body.tools : [],
    top_p: 1,
    truncation: "disabled",
    usage,
    user: null,
    metadata: {},
  };
}

/** Sends the response and returns the usage it reported. */
function sendResponse(res: ServerResponse, body: ResponsesBody, items: OutputItem[]): ReportedUsage {
  const id = uniqueId("resp");
  const usage = usageFor(body, items);
  const reported: ReportedUsage = { vendor: usage, inputTokens: Number(usage.input_tokens), outputTokens: Number(usage.output_tokens) };

  if (body.stream !== true) {
    json(res, 200, responseObject(id, body, "completed", items, usage));
    return reported;
  }

  openEventStream(res, { "x-request-id": uniqueId("req") });
  let sequence = 0;
  const emit = (type: string, data: Record<string, unknown>): void => {
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...data })}\n\n`);
    sequence += 1;
  };

  emit("response.created", { response: responseObject(id, body, "in_progress", [], null) });
  emit("response.in_progress", { response: responseObject(id, body, "in_progress", [], null) });

  items.forEach((item, outputIndex) => {
    const base = { item_id: item.id, output_index: outputIndex };
    if (item.type === "reasoning") {
      emit("response.output_item.added", { output_index: outputIndex, item: { ...item, summary: [] } });
      item.summary.forEach((part, summaryIndex) => {
        emit("response.reasoning_summary_part.added", {
          ...base,
          summary_index: summaryIndex,
          part: { type: "summary_text", text: "" },
        });
        for (const piece of chunk(part.text)) {
          emit("response.reasoning_summary_text.delta", { ...base, summary_index: summaryIndex, delta: piece });
        }
        emit("response.reasoning_summary_text.done", { ...base, summary_index: summaryIndex, text: part.text });
        emit("response.reasoning_summary_part.done", { ...base, summary_index: summaryIndex, part });
      });
    } else if (item.type === "message") {
      emit("response.output_item.added", {
        output_index: outputIndex,
        item: { ...item, status: "in_progress", content: [] },
      });
      item.content.forEach((part, contentIndex) => {
        const at = { ...base, content_index: contentIndex };
        emit("response.content_part.added", { ...at, part: { type: "output_text", text: "", annotations: [] } });
        for (const piece of chunk(part.text)) {
          emit("response.output_text.delta", { ...at, delta: piece, logprobs: [] });
        }
        emit("response.output_text.done", { ...at, text: part.text, logprobs: [] });
        emit("response.content_part.done", { ...at, part: { type: "output_text", text: part.text, annotations: [] } });
      });
    } else {
      emit("response.output_item.added", {
        output_index: outputIndex,
        item: { ...item, status: "in_progress", arguments: "" },
      });
      for (const piece of chunk(item.arguments)) {
        emit("response.function_call_arguments.delta", { ...base, delta: piece });
      }
      emit("response.function_call_arguments.done", { ...base, name: item.name, arguments: item.arguments });
    }
    emit("response.output_item.done", { output_index: outputIndex, item });
  });

  emit("response.completed", { response: responseObject(id, body, "completed", items, usage) });
  res.end();
  return reported;
}

function isResponsesPath(pathname: string): boolean {
  return pathname === "/v1/responses" || pathname === "/responses" || pathname === "/openai/v1/responses";
}

export function createOpenAI(): Protocol {
  const state = new ScriptState(["authorization", "proxy-authorization", "api-key", "x-api-key", "openai-api-key"]);
  let offsets = new TurnOffsets();

  function answerMain(res: ServerResponse, body: ResponsesBody, entry: RecordedRequest, turnIndex: number): void {
    const answer = state.answer(turnIndex, firstUserText(body), entry);
    if (answer.kind === "error") {
      sendError(res, answer.error, answer.shouldRetry);
      return;
    }
    entry.usage = sendResponse(res, body, answer.step ? buildItems(answer.step, body) : [messageItem(EXHAUSTED_REPLY)]);
  }

  function handle(request: ApiRequest): void {
    const { req, res, method, url, parsed } = request;
    const entry = state.record(req, request.logBody);

    if (method === "POST" && isResponsesPath(url.pathname)) {
      if (!parsed.ok || !isObject(parsed.value)) {
        sendError(res, { status: 400, type: "invalid_request_error", message: "request body is not a JSON object" });
        return;
      }
      const body = parsed.value as ResponsesBody;
      const meta = turnMetadata(req, body);
      if (isMainConversation(req, meta)) {
        entry.kind = "main";
        entry.turn = offsets.before(meta) + countModelTurns(body);
        answerMain(res, body, entry, entry.turn);
      } else {
        entry.kind = "side";
        if (meta?.request_kind === "compaction") offsets.compacted(meta, body);
        // Side replies report usage too: the provider gateway meters every call.
        entry.usage = sendResponse(res, body, [messageItem(SIDE_REPLY)]);
      }
      return;
    }
    sendError(res, { status: 404, type: "invalid_request_error", message: `Invalid URL (${method} ${url.pathname})` });
  }

  // The built-in OpenAI provider of Codex first tries a WebSocket to {base}/responses. This fake only speaks
  // HTTP: log the attempt and refuse it, so the client falls back to plain POST requests.
  function upgrade(req: IncomingMessage, socket: Duplex): void {
    state.record(req, undefined);
    const payload = JSON.stringify(
      errorBody({ status: 426, type: "invalid_request_error", message: "WebSocket is not supported by this fake" }),
    );
    const head = [
      "HTTP/1.1 426 Upgrade Required",
      "content-type: application/json",
      `content-length: ${Buffer.byteLength(payload)}`,
      "connection: close",
    ];
    socket.end(`${head.join("\r\n")}\r\n\r\n${payload}`);
  }

  return {
    name: "openai",
    state,
    badRequestType: "invalid_request_error",
    serverErrorType: "server_error",
    owns: (_method, pathname) =>
      isResponsesPath(pathname) || /^\/(?:openai\/v1\/|v1\/)?(?:responses|completions|embeddings)(?:\/|$)/.test(pathname),
    handle,
    sendError: (res, error) => sendError(res, error),
    reset: () => {
      offsets = new TurnOffsets();
    },
    upgrade,
  };
}

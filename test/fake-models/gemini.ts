// The Gemini API part of the fake model server (generativelanguage v1beta), so the Gemini CLI can be driven
// through a deterministic conversation without network access or a real key.
//
// API endpoints (any model name, any of v1beta / v1alpha / v1):
//   POST /v1beta/models/<model>:streamGenerateContent?alt=sse   SSE, one `data: {GenerateContentResponse}` per chunk
//   POST /v1beta/models/<model>:generateContent                 one JSON GenerateContentResponse
//   POST /v1beta/models/<model>:countTokens                     {"totalTokens": n}
//
// Vertex AI serves the same wire format under another path and auth (vertex.ts): answerModelAction is what both
// share.

import type { ServerResponse } from "node:http";
import type { ApiRequest, ErrorSpec, Protocol, RecordedRequest, ReportedUsage, Step } from "./script.ts";
import { ScriptState, chunk, estimateTokens, openEventStream, sendJson, uniqueId } from "./script.ts";

type Part =
  | { text: string; thought?: true }
  | { functionCall: { name: string; args: Record<string, unknown> } };

interface Content {
  role?: unknown;
  parts?: unknown;
}

interface GenerateContentBody {
  contents?: unknown;
  systemInstruction?: unknown;
  tools?: unknown;
  toolConfig?: unknown;
  generationConfig?: {
    responseMimeType?: unknown;
    responseSchema?: unknown;
    responseJsonSchema?: unknown;
    [key: string]: unknown;
  };
}

interface Usage {
  promptTokenCount: number;
  candidatesTokenCount: number;
  totalTokenCount: number;
  thoughtsTokenCount?: number;
  cachedContentTokenCount?: number;
}

const SIDE_REPLY = "OK";
const SIDE_REASONING = "Scripted answer from the fake Gemini server.";
const SUBAGENT_REPLY = "The fake Gemini server ends every subagent at once.";
const EXHAUSTED_REPLY = "The fake Gemini script has no more steps.";

/** What the real API calls the model in responses; any request model is echoed back as is. */
function modelVersion(model: string): string {
  return model.replace(/^models\//, "");
}

/**
 * Decides whether a request is a turn of the main conversation, whose answer comes from the script;
 * everything else gets a generic answer and leaves the script where it is.
 *
 * What Gemini CLI 0.61.0 sends in `-p` mode (checked against the real CLI, see test/fixtures/gemini/README.md):
 * - Main conversation turns: `:streamGenerateContent?alt=sse` on the requested (or routed) model, with the
 *   agent's tools in `tools[0].functionDeclarations` (run_shell_command, invoke_agent, ..., MCP tools),
 *   the agent system prompt and no JSON response format. The CLI resends the whole history each turn, so
 *   the count of `role: "model"` entries in `contents` names the turn.
 * - Subagents (the `invoke_agent` tool: generalist, codebase_investigator, cli_help) stream with tools
 *   and a near-identical system prompt and headers too, but start from zero model turns and always
 *   declare the `complete_task` tool, which the main agent never has. They are answered with one
 *   `complete_task` call built from its own parameter schema, which ends the subagent at once.
 * - Utility calls go through the CLI's "base LLM client" as plain `:generateContent` without tools: the
 *   model router ("auto" models: `classifier`, on a flash-lite model), the next-speaker check (only with
 *   `model.skipNextSpeakerCheck: false`), loop detection (after 30 turns), edit correction. These ask for
 *   JSON (`generationConfig.responseMimeType: "application/json"` + `responseJsonSchema`) and get a value
 *   made from that schema. The session summary (interactive mode or --list-sessions only) asks for text.
 *   The next-speaker check resends the conversation with its `role: "model"` entries, so counting them
 *   would misplace it in the script.
 * No prompt wording or model name is matched, because those change between CLI versions.
 */
function isMainConversation(body: GenerateContentBody): boolean {
  const subagent = findDeclaration(body, SUBAGENT_DONE_TOOL) !== undefined;
  return hasFunctionDeclarations(body) && !wantsJson(body) && !subagent;
}

const SUBAGENT_DONE_TOOL = "complete_task";

interface FunctionDeclaration {
  name?: unknown;
  parameters?: unknown;
  parametersJsonSchema?: unknown;
}

function declarations(body: GenerateContentBody): FunctionDeclaration[] {
  if (!Array.isArray(body.tools)) return [];
  return body.tools.flatMap((tool: unknown) => {
    if (typeof tool !== "object" || tool === null) return [];
    const decls = (tool as { functionDeclarations?: unknown }).functionDeclarations;
    if (!Array.isArray(decls)) return [];
    return decls.filter((d: unknown): d is FunctionDeclaration => typeof d === "object" && d !== null);
  });
}

function findDeclaration(body: GenerateContentBody, name: string): FunctionDeclaration | undefined {
  return declarations(body).find((d) => d.name === name);
}

function hasFunctionDeclarations(body: GenerateContentBody): boolean {
  return declarations(body).length > 0;
}

function wantsJson(body: GenerateContentBody): boolean {
  const config = body.generationConfig;
  if (!config) return false;
  return (
    config.responseMimeType === "application/json" ||
    config.responseJsonSchema !== undefined ||
    config.responseSchema !== undefined
  );
}

function contentsOf(body: GenerateContentBody): Content[] {
  if (!Array.isArray(body.contents)) return [];
  return body.contents.filter((c: unknown): c is Content => typeof c === "object" && c !== null);
}

/** The text parts of `contents[0]` joined by newlines, when it is the user's (role "user" or none). */
function firstUserText(body: GenerateContentBody): string | undefined {
  const first = contentsOf(body)[0];
  if (!first || (first.role !== undefined && first.role !== "user")) return undefined;
  if (!Array.isArray(first.parts)) return undefined;
  return first.parts
    .filter((p: unknown): p is { text: string } => typeof p === "object" && p !== null && typeof (p as { text?: unknown }).text === "string" && (p as { thought?: unknown }).thought !== true)
    .map((p) => p.text)
    .join("\n");
}

function countModelTurns(body: GenerateContentBody): number {
  return contentsOf(body).filter((c) => c.role === "model").length;
}

/**
 * A value that satisfies a (JSON or OpenAPI-style) schema, for the CLI's JSON side requests and the
 * subagents' `complete_task` call. A few fields get the answer that keeps a scripted run on its script:
 * the next-speaker check must say "user" (a "model" answer makes the CLI send "Please continue." as an
 * extra main turn), the loop detector must see no loop (confidence 0), and the router's complexity score
 * must lie in 1..100. Free-text fields get `text`, except that the edit corrector must get "" (it then
 * keeps the model's own string instead of replacing it).
 */
function sampleFromSchema(schema: unknown, text: string, key = ""): unknown {
  if (typeof schema !== "object" || schema === null) return {};
  const s = schema as {
    type?: unknown;
    enum?: unknown;
    properties?: unknown;
    minimum?: unknown;
    anyOf?: unknown;
  };
  if (key === "next_speaker") return "user";
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  if (Array.isArray(s.anyOf) && s.anyOf.length > 0) return sampleFromSchema(s.anyOf[0], text, key);
  const rawType = Array.isArray(s.type) ? s.type[0] : s.type;
  const type = typeof rawType === "string" ? rawType.toLowerCase() : typeof s.properties === "object" ? "object" : "";
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      const props = typeof s.properties === "object" && s.properties !== null ? s.properties : {};
      for (const [name, sub] of Object.entries(props)) out[name] = sampleFromSchema(sub, text, name);
      return out;
    }
    case "array":
      return [];
    case "integer":
      return typeof s.minimum === "number" ? s.minimum : 1;
    case "number":
      return typeof s.minimum === "number" ? s.minimum : 0;
    case "boolean":
      return false;
    case "string":
      return key.startsWith("corrected_") ? "" : text;
    default:
      return {};
  }
}

function sideParts(body: GenerateContentBody): Part[] {
  const done = findDeclaration(body, SUBAGENT_DONE_TOOL);
  if (done) {
    const schema = done.parametersJsonSchema ?? done.parameters;
    const args = sampleFromSchema(schema ?? { type: "object" }, SUBAGENT_REPLY) as Record<string, unknown>;
    return [{ functionCall: { name: SUBAGENT_DONE_TOOL, args } }];
  }
  if (!wantsJson(body)) return [{ text: SIDE_REPLY }];
  const schema = body.generationConfig?.responseJsonSchema ?? body.generationConfig?.responseSchema;
  const value = schema === undefined ? {} : sampleFromSchema(schema, SIDE_REASONING);
  return [{ text: JSON.stringify(value) }];
}

/** The API also takes the key as `?key=`; keep the rest of the query. */
function redactUrl(raw: string): string {
  return raw.replace(/([?&]key=)[^&#]*/g, "$1<redacted>");
}

function buildParts(step: Step): Part[] {
  const parts: Part[] = [];
  if (step.thinking !== undefined) parts.push({ thought: true, text: step.thinking });
  if (step.text !== undefined) parts.push({ text: step.text });
  for (const tool of step.toolUse ?? []) parts.push({ functionCall: { name: tool.name, args: tool.input } });
  // An empty step gives an empty answer, which the CLI treats as an invalid stream (and retries).
  if (parts.length === 0) parts.push({ text: "" });
  return parts;
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, { "content-type": "application/json; charset=UTF-8" });
}

const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ABORTED",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "NOT_IMPLEMENTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

function googleStatus(error: ErrorSpec): string {
  if (/^[A-Z][A-Z_]*$/.test(error.type)) return error.type;
  return GOOGLE_STATUS[error.status] ?? (error.status >= 500 ? "INTERNAL" : "UNKNOWN");
}

/**
 * Answers with the Google error body. No `details` (RetryInfo, QuotaFailure, ErrorInfo): Gemini CLI 0.61
 * retries 429/499/5xx with its own backoff (5 s doubling up to 30 s, 10 attempts; `general.maxAttempts`
 * in settings.json lowers that), and a RetryInfo delay can only lengthen the wait, never shorten it.
 */
export function sendError(res: ServerResponse, error: ErrorSpec): void {
  json(res, error.status, { error: { code: error.status, message: error.message, status: googleStatus(error) } });
}

function usageFor(body: GenerateContentBody, parts: Part[], turn: number | undefined): Usage {
  const promptTokenCount = estimateTokens({
    contents: body.contents,
    systemInstruction: body.systemInstruction,
    tools: body.tools,
  });
  const thoughts = parts.filter((p) => "thought" in p);
  const answer = parts.filter((p) => !("thought" in p));
  const candidatesTokenCount = estimateTokens(answer);
  const usage: Usage = { promptTokenCount, candidatesTokenCount, totalTokenCount: 0 };
  if (thoughts.length > 0) usage.thoughtsTokenCount = estimateTokens(thoughts);
  // Later turns resend the earlier ones; the real API reports part of that as implicitly cached.
  if (turn !== undefined && turn > 0) usage.cachedContentTokenCount = Math.floor(promptTokenCount / 2);
  usage.totalTokenCount = promptTokenCount + candidatesTokenCount + (usage.thoughtsTokenCount ?? 0);
  return usage;
}

/**
 * How streamGenerateContent answers: "sse" (`?alt=sse`: one `data: {...}` event per chunk) or "json-array" (without
 * it: the chunks as one JSON array, written as they come, which is what both real APIs send then).
 */
type StreamFormat = "sse" | "json-array";

function sendContent(
  res: ServerResponse,
  stream: StreamFormat | false,
  model: string,
  body: GenerateContentBody,
  parts: Part[],
  turn?: number,
): ReportedUsage {
  const responseId = uniqueId();
  const usage = usageFor(body, parts, turn);
  const reported: ReportedUsage = {
    vendor: { ...usage },
    inputTokens: usage.promptTokenCount,
    outputTokens: usage.candidatesTokenCount + (usage.thoughtsTokenCount ?? 0),
  };
  const version = modelVersion(model);
  const response = (chunkParts: Part[], last: boolean, chunkUsage: Usage): Record<string, unknown> => ({
    candidates: [
      {
        content: { parts: chunkParts, role: "model" },
        ...(last ? { finishReason: "STOP" } : {}),
        index: 0,
      },
    ],
    usageMetadata: chunkUsage,
    modelVersion: version,
    responseId,
  });

  if (!stream) {
    json(res, 200, response(parts, true, usage));
    return reported;
  }

  // Like the real stream: thoughts first, then the text in pieces, function calls whole in one chunk;
  // every chunk carries usageMetadata (output counts growing), only the last one a finishReason.
  // A thought goes out whole: the CLI takes a leading "**Subject**" of each thought chunk as its title.
  const chunks: Part[][] = [];
  for (const part of parts) {
    if ("functionCall" in part || part.thought) chunks.push([part]);
    else for (const piece of chunk(part.text)) chunks.push([{ text: piece }]);
  }
  if (stream === "sse") openEventStream(res);
  else res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
  chunks.forEach((chunkParts, i) => {
    const last = i === chunks.length - 1;
    const partial: Usage = last
      ? usage
      : { promptTokenCount: usage.promptTokenCount, candidatesTokenCount: 0, totalTokenCount: usage.promptTokenCount };
    const data = JSON.stringify(response(chunkParts, last, partial));
    if (stream === "sse") res.write(`data: ${data}\n\n`);
    else res.write(`${i === 0 ? "[" : ",\r\n"}${data}${last ? "]" : ""}`);
  });
  res.end();
  return reported;
}

const MODEL_PATH = /^\/v1(?:beta|alpha)?\/(models\/[^/:]+|tunedModels\/[^/:]+):([A-Za-z]+)$/;

/** What differs between the APIs that speak this wire format (the Gemini API, Vertex AI's Gemini models). */
export interface GenerateContentApi {
  state: ScriptState;
  /** The reply once the script is used up. */
  exhaustedReply: string;
  /**
   * Whether streamGenerateContent without `?alt=sse` answers with a streamed JSON array (Vertex) rather than SSE
   * (the Gemini fake, which has always answered SSE either way).
   */
  jsonArrayWithoutSse: boolean;
}

/**
 * Answers POST models/<model>:<action> (generateContent, streamGenerateContent, countTokens), noting the model,
 * kind, turn and usage on the request's log entry. Returns false for any other action (left to the caller).
 */
export function answerModelAction(
  api: GenerateContentApi,
  request: ApiRequest,
  record: RecordedRequest,
  model: string,
  action: string,
): boolean {
  const { res, url, parsed } = request;
  record.model = modelVersion(model);
  if (!parsed.ok || typeof parsed.value !== "object" || parsed.value === null) {
    sendError(res, { status: 400, type: "INVALID_ARGUMENT", message: "Invalid JSON payload received." });
    return true;
  }
  const body = parsed.value as GenerateContentBody;
  if (action === "streamGenerateContent" || action === "generateContent") {
    const sse = !api.jsonArrayWithoutSse || url.searchParams.get("alt") === "sse";
    const stream: StreamFormat | false = action === "streamGenerateContent" ? (sse ? "sse" : "json-array") : false;
    if (isMainConversation(body)) {
      record.kind = "main";
      record.turn = countModelTurns(body);
      const answer = api.state.answer(record.turn, firstUserText(body), record);
      if (answer.kind === "error") {
        sendError(res, answer.error);
        return true;
      }
      const parts = answer.step ? buildParts(answer.step) : [{ text: api.exhaustedReply }];
      record.usage = sendContent(res, stream, model, body, parts, record.turn);
    } else {
      record.kind = "side";
      // Side replies report usage too: the provider gateway meters every call.
      record.usage = sendContent(res, stream, model, body, sideParts(body));
    }
    return true;
  }
  if (action === "countTokens") {
    record.kind = "side";
    const inner = (body as { generateContentRequest?: GenerateContentBody }).generateContentRequest ?? body;
    json(res, 200, { totalTokens: estimateTokens({ contents: inner.contents }) });
    return true;
  }
  return false;
}

export function createGemini(): Protocol {
  const state = new ScriptState(["x-goog-api-key", "authorization", "proxy-authorization"]);
  const api: GenerateContentApi = { state, exhaustedReply: EXHAUSTED_REPLY, jsonArrayWithoutSse: false };

  function handle(request: ApiRequest): void {
    const { req, res, method, url } = request;
    const record = state.record(req, request.logBody, redactUrl(req.url ?? "/"));

    const match = MODEL_PATH.exec(url.pathname);
    if (method === "POST" && match && answerModelAction(api, request, record, match[1]!, match[2]!)) return;
    sendError(res, { status: 404, type: "NOT_FOUND", message: `${method} ${url.pathname} is not found.` });
  }

  return {
    name: "gemini",
    state,
    badRequestType: "INVALID_ARGUMENT",
    serverErrorType: "INTERNAL",
    owns: (_method, pathname) => MODEL_PATH.test(pathname) || /^\/v1(?:beta|alpha)\//.test(pathname),
    handle,
    sendError,
  };
}

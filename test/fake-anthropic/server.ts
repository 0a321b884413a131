// A scripted stand-in for the Anthropic Messages API, so agent CLIs (Claude Code) can be driven through a
// deterministic conversation without network access or a real key.
//
// Runs directly under Node 22 type stripping (`node --disable-warning=ExperimentalWarning server.ts`; Node
// before 22.18 also needs --experimental-strip-types), so it must stay dependency-free and use erasable
// TypeScript only: no enums, namespaces or parameter properties, and only `import type` for types.
// As a program it listens on $HOST:$PORT (default 0.0.0.0:8080); tests import startFakeAnthropic() instead.
//
// Control endpoints (not part of the Anthropic API):
//   POST /_script   {"steps": Step[]}  replace the script; also clears the turn state and the request log
//   GET  /_requests                    every API request received since the last /_script (secrets redacted)
//   GET  /health                       200 "ok"

import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";

export interface ToolUseSpec {
  name: string;
  input: Record<string, unknown>;
}

export interface ErrorSpec {
  status: number;
  type: string;
  message: string;
}

/**
 * One entry of the script. A "reply" step has text, thinking and/or toolUse; an "error" step has error.
 * Error steps do not use up a conversation turn: they are attached to the reply step that follows them and
 * answer that turn's first attempts (`times` each, or every attempt when `times` is absent).
 */
export interface Step {
  text?: string;
  thinking?: string;
  toolUse?: ToolUseSpec[];
  error?: ErrorSpec;
  times?: number;
  /**
   * Sent as the `x-should-retry` header. Claude Code obeys `false` and gives up after one attempt, which
   * lets a test see the failure path without sitting through its backoff (about 3 minutes by default).
   */
  shouldRetry?: boolean;
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /**
   * How the server classified the request: a main-conversation turn, a side request (utility call or
   * subagent, answered generically), or anything else (control probes, unknown paths).
   */
  kind: "main" | "side" | "other";
  /** For main requests: the conversation turn (number of assistant messages in the request). */
  turn?: number;
  receivedAt: string;
}

export interface FakeAnthropicOptions {
  port?: number;
  host?: string;
}

export interface FakeAnthropicHandle {
  url: string;
  port: number;
  close: () => Promise<void>;
}

interface Turn {
  errors: Step[];
  reply: Step | undefined;
}

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

// Lives for the whole process, not per script: Claude Code keeps tool_use ids across its session and loops
// when one repeats, and tests may reuse one server for many runs.
let idCounter = 0;

function uniqueId(prefix: string): string {
  idCounter += 1;
  return `${prefix}_fake_${idCounter}_${randomBytes(6).toString("hex")}`;
}

const SIDE_REPLY = "OK";
const EXHAUSTED_REPLY = "The fake Anthropic script has no more steps.";

/** Groups the flat step list into turns: error steps attach to the next reply step. */
function toTurns(steps: Step[]): Turn[] {
  const turns: Turn[] = [];
  let pendingErrors: Step[] = [];
  for (const step of steps) {
    if (step.error) {
      pendingErrors.push(step);
      continue;
    }
    turns.push({ errors: pendingErrors, reply: step });
    pendingErrors = [];
  }
  // Trailing errors still answer the next turn; once used up, that turn gets the "exhausted" reply.
  if (pendingErrors.length > 0) turns.push({ errors: pendingErrors, reply: undefined });
  return turns;
}

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
function isMainConversation(req: IncomingMessage, body: MessagesBody): boolean {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  const maxTokens = typeof body.max_tokens === "number" ? body.max_tokens : 0;
  return hasTools && maxTokens > 1 && !isSubagent(req, body);
}

function isSubagent(req: IncomingMessage, body: MessagesBody): boolean {
  if (req.headers["x-claude-code-agent-id"] !== undefined) return true;
  return JSON.stringify(body.system ?? "").includes("cc_is_subagent=true");
}

function countAssistantMessages(body: MessagesBody): number {
  if (!Array.isArray(body.messages)) return 0;
  return body.messages.filter(
    (m: unknown) => typeof m === "object" && m !== null && (m as { role?: unknown }).role === "assistant",
  ).length;
}

/** A rough token estimate: the CLI only needs plausible non-zero numbers for its usage and cost totals. */
function estimateTokens(value: unknown): number {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  return Math.max(1, Math.ceil(text.length / 4));
}

const SECRET_HEADERS = new Set(["x-api-key", "authorization", "proxy-authorization"]);

function redactHeaders(headers: IncomingMessage["headers"]): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] = SECRET_HEADERS.has(name) ? "<redacted>" : value;
  }
  return out;
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

/** Splits a string into a few pieces, so clients have to join deltas like they do with the real API. */
function chunk(text: string, pieces = 3): string[] {
  if (text.length === 0) return [""];
  const size = Math.max(1, Math.ceil(text.length / pieces));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    "request-id": uniqueId("req"),
    ...headers,
  });
  res.end(payload);
}

function sendError(res: ServerResponse, error: ErrorSpec, shouldRetry?: boolean): void {
  // The real API sends retry-after with 429s. (Claude Code 2.1.330 backs off exponentially regardless.)
  const headers: Record<string, string> = error.status === 429 ? { "retry-after": "0" } : {};
  if (shouldRetry !== undefined) headers["x-should-retry"] = String(shouldRetry);
  sendJson(res, error.status, { type: "error", error: { type: error.type, message: error.message } }, headers);
}

function sendMessage(res: ServerResponse, body: MessagesBody, blocks: ContentBlock[]): void {
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

  if (body.stream !== true) {
    sendJson(res, 200, {
      id,
      type: "message",
      role: "assistant",
      model,
      content: blocks,
      stop_reason: stopReason,
      stop_sequence: null,
      usage,
    });
    return;
  }

  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "request-id": uniqueId("req"),
  });
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
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false } {
  if (raw.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false };
  }
}

export function startFakeAnthropic(options: FakeAnthropicOptions = {}): Promise<FakeAnthropicHandle> {
  let turns: Turn[] = [];
  // Attempts per turn index, so the CLI's own retries of one turn walk through that turn's error steps.
  let attempts = new Map<number, number>();
  let requests: RecordedRequest[] = [];

  // turnIndex is the number of assistant messages the request carries: Claude Code resends the whole
  // conversation each turn, so this names the turn without any server-side session state.
  function answerMain(res: ServerResponse, body: MessagesBody, turnIndex: number): void {
    const attempt = (attempts.get(turnIndex) ?? 0) + 1;
    attempts.set(turnIndex, attempt);
    const turn = turns[turnIndex];
    if (!turn) {
      sendMessage(res, body, [{ type: "text", text: EXHAUSTED_REPLY }]);
      return;
    }
    let budget = attempt;
    for (const step of turn.errors) {
      const times = step.times ?? Number.POSITIVE_INFINITY;
      if (budget <= times && step.error) {
        sendError(res, step.error, step.shouldRetry);
        return;
      }
      budget -= times;
    }
    sendMessage(res, body, turn.reply ? buildBlocks(turn.reply) : [{ type: "text", text: EXHAUSTED_REPLY }]);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "GET";
    const raw = await readBody(req);
    const parsed = parseJson(raw);

    if (method === "GET" && url.pathname === "/health") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    if (method === "GET" && url.pathname === "/_requests") {
      sendJson(res, 200, requests);
      return;
    }
    if (method === "POST" && url.pathname === "/_script") {
      const steps = parsed.ok ? (parsed.value as { steps?: unknown } | undefined)?.steps : undefined;
      if (!Array.isArray(steps)) {
        sendError(res, { status: 400, type: "invalid_request_error", message: 'expected {"steps": [...]}' });
        return;
      }
      turns = toTurns(steps as Step[]);
      attempts = new Map();
      requests = [];
      sendJson(res, 200, { ok: true, turns: turns.length });
      return;
    }

    const record: RecordedRequest = {
      method,
      url: req.url ?? "/",
      headers: redactHeaders(req.headers),
      body: parsed.ok ? parsed.value : raw,
      kind: "other",
      receivedAt: new Date().toISOString(),
    };
    requests.push(record);

    if (method === "POST" && url.pathname === "/v1/messages") {
      if (!parsed.ok || typeof parsed.value !== "object" || parsed.value === null) {
        sendError(res, { status: 400, type: "invalid_request_error", message: "request body is not a JSON object" });
        return;
      }
      const body = parsed.value as MessagesBody;
      if (isMainConversation(req, body)) {
        record.kind = "main";
        record.turn = countAssistantMessages(body);
        answerMain(res, body, record.turn);
      } else {
        record.kind = "side";
        sendMessage(res, body, [{ type: "text", text: SIDE_REPLY }]);
      }
      return;
    }
    if (method === "POST" && url.pathname === "/v1/messages/count_tokens") {
      const body = parsed.ok ? (parsed.value as MessagesBody | undefined) : undefined;
      sendJson(res, 200, { input_tokens: estimateTokens({ system: body?.system, messages: body?.messages }) });
      return;
    }
    // Connectivity probe Claude Code sends to the base URL unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
    // is set; the CLI copes with a 404 too, but the real API answers it.
    if ((method === "HEAD" || method === "GET") && url.pathname === "/api/hello") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(method === "HEAD" ? undefined : "ok");
      return;
    }
    sendError(res, { status: 404, type: "not_found_error", message: `${method} ${url.pathname} not found` });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        sendError(res, { status: 500, type: "api_error", message: `fake server failure: ${String(err)}` });
      } else {
        res.destroy();
      }
    });
  });
  // The CLI keeps connections alive between turns; without this, close() would wait for them to time out.
  const closeServer = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });

  const host = options.host ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : (options.port ?? 0);
      const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
      resolve({ url: `http://${urlHost}:${port}`, port, close: closeServer });
    });
  });
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? "0.0.0.0";
  const handle = await startFakeAnthropic({ port, host });
  console.log(`fake-anthropic listening on ${host}:${handle.port}`);
  // As PID 1 in a container, Node gets no default signal handlers: without these, `docker stop` waits
  // for its timeout and then kills the container.
  const shutdown = (): void => {
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

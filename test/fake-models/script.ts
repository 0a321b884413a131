// The mechanics the scripted fake model servers share: the Step script format, the per-protocol script state
// (turn selection, error steps with `times`), the request log with secrets redacted, process-wide unique ids,
// JSON/SSE response helpers, the control endpoints and the HTTP plumbing. What differs between the APIs
// (which requests are conversation turns, wire formats, error bodies) lives in anthropic.ts, gemini.ts and
// openai.ts; server.ts puts them behind one port.
//
// Runs directly under Node 22 type stripping, so it must stay dependency-free and use erasable TypeScript
// only: no enums, namespaces or parameter properties, and only `import type` for types.

import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";

export type ProtocolName = "anthropic" | "gemini" | "openai" | "bedrock" | "vertex" | "chat" | "ollama";
export const PROTOCOLS: readonly ProtocolName[] = ["anthropic", "gemini", "openai", "bedrock", "vertex", "chat", "ollama"];

export interface ToolUseSpec {
  /**
   * The tool (function) name. Anthropic and Gemini get it as is. Codex 0.169 offers each MCP server's tools as
   * a `namespace` tool `mcp__<server>` holding functions named after the tools (dashes turned into
   * underscores), and only runs a call that names both: `{namespace: "mcp__<server>", name: "<tool>"}` (a flat
   * `mcp__<server>__<tool>` name is answered "unsupported call"). So the OpenAI fake sends a flat name
   * `<namespace>__<tool>` in that form: matched against the request's namespace tools (also
   * `multi_agent_v1__spawn_agent`), or for `mcp__` names split at the first `__` after the server name (for
   * models whose MCP tools are deferred behind `tool_search`). One script can so drive Claude Code (which uses
   * the flat name) and Codex alike.
   */
  name: string;
  input: Record<string, unknown>;
}

export interface ErrorSpec {
  status: number;
  /**
   * The error type in the fake's own protocol: Anthropic's `api_error`, `rate_limit_error`, ...; Google's
   * status string (`INTERNAL`, `UNAUTHENTICATED`, `RESOURCE_EXHAUSTED`, ...); OpenAI's `server_error`,
   * `invalid_request_error`, `requests`, .... The Gemini and OpenAI fakes replace foreign types by the one that
   * matches the HTTP status (see gemini.ts googleStatus() and openai.ts errorBody()), so one script can drive
   * every fake.
   */
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
  /**
   * Anthropic: a `thinking` block with a fake signature. Gemini: a `{thought: true, text}` part before the
   * answer (Gemini CLI 0.61 does not show it in stream-json). OpenAI: a `reasoning` output item with one
   * summary part (Codex shows it as a `reasoning` item). Chat Completions: `reasoning_content` (DeepSeek's
   * field). Ollama: `message.thinking`.
   */
  thinking?: string;
  /**
   * Anthropic: `tool_use` blocks. Gemini: each becomes a `functionCall {name, args: input}` part. OpenAI: each
   * becomes a `function_call` output item: `call_id` unique for the server's lifetime, `arguments` = JSON.
   * Chat Completions: `tool_calls` entries (`function.arguments` = JSON). Ollama: `message.tool_calls` entries
   * (`function.arguments` = the input object).
   */
  toolUse?: ToolUseSpec[];
  error?: ErrorSpec;
  times?: number;
  /**
   * Sent as the `x-should-retry` header by the Anthropic and OpenAI fakes. Claude Code obeys `false` and gives
   * up after one attempt, which lets a test see the failure path without sitting through its backoff (about 3
   * minutes by default); Codex 0.169 ignores it; the Gemini API has no such header (accepted for script
   * compatibility). The Chat Completions fake sends it too; Ollama's API has no such header.
   */
  shouldRetry?: boolean;
  /**
   * Puts the step in a script of its own, used only for conversations whose FIRST user message text contains
   * this string (turns counted the same way within that conversation); steps without it form the default
   * script. Lets one server answer a coordinator and the child runs it delegates to (fresh conversations
   * that would otherwise replay the coordinator's first turns). Several scripts may match a conversation:
   * the first step's forQuery (in script order) that matches wins.
   */
  forQuery?: string;
}

/** What a fake reported as a main reply's usage: the vendor's own object and a normalized view of it. */
export interface ReportedUsage {
  /**
   * The usage object exactly as the response carried it (the last, complete one for streams). Ollama has no
   * usage object: its vendor view is the counts and durations of the final (`done: true`) chunk
   * (prompt_eval_count, eval_count, total_duration, load_duration, prompt_eval_duration, eval_duration).
   */
  vendor: Record<string, unknown>;
  /**
   * inputTokens: every prompt token (Anthropic: input + cache creation + cache read; OpenAI: input_tokens;
   * Gemini and Vertex: promptTokenCount; Bedrock: inputTokens + cacheReadInputTokens + cacheWriteInputTokens).
   * outputTokens: every generated token (Anthropic: output_tokens; OpenAI: output_tokens, reasoning included;
   * Gemini and Vertex: candidatesTokenCount + thoughtsTokenCount; Bedrock: outputTokens).
   * Chat Completions (chat): prompt_tokens (cached_tokens = prompt_cache_hit_tokens included) and
   * completion_tokens (reasoning_tokens included). Ollama: prompt_eval_count and eval_count (thinking included).
   */
  inputTokens: number;
  outputTokens: number;
}

export interface RecordedRequest {
  method: string;
  /** The request path and query (the Gemini fake redacts the value of a `key=` query parameter). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /**
   * How the server classified the request: a main-conversation turn, a side request (utility call, subagent,
   * compaction, ...: answered generically), or anything else (control probes, unknown paths, WebSocket
   * upgrade attempts). Which requests are which is protocol-specific; see each protocol's isMainConversation.
   */
  kind: "main" | "side" | "other";
  /** For main requests: the conversation turn, counted from the request as each protocol describes. */
  turn?: number;
  /** For main requests: the text of the conversation's first user message (what `forQuery` is matched against). */
  firstUserText?: string;
  /** For main requests: the forQuery of the script that answered, if not the default script. */
  forQuery?: string;
  /** For main requests answered with a reply (not an error step): the usage the response reported. */
  usage?: ReportedUsage;
  /** Gemini, Vertex, Bedrock: the model name from the path (Bedrock: percent-decoded), for API requests. */
  model?: string;
  /**
   * Bedrock and Vertex: how the request authenticated. Bedrock: "sigv4" (an `AWS4-HMAC-SHA256` Authorization, see
   * sigv4), "bearer" (a Bedrock API key), "none". Vertex: "issued-token" (a bearer the fake's /token issued),
   * "expired-token" (one it issued, past its expiry), "unknown-bearer", "none" (no bearer at all).
   */
  auth?: "sigv4" | "bearer" | "none" | "issued-token" | "expired-token" | "unknown-bearer";
  /** Bedrock, SigV4-signed requests: the credential scope and signed headers of the Authorization header. */
  sigv4?: { accessKeyId: string; date: string; region: string; service: string; signedHeaders: string[] };
  receivedAt: string;
}

interface Turn {
  errors: Step[];
  reply: Step | undefined;
}

/** What answers a main-conversation turn: an error step, or the reply step (undefined: the script is used up). */
export type Answer = { kind: "error"; error: ErrorSpec; shouldRetry?: boolean } | { kind: "reply"; step: Step | undefined };

// Lives for the whole process, not per script: Claude Code keeps tool_use ids across its session and loops
// when one repeats, call ids must stay unique across a conversation, and tests may reuse one server for many
// runs.
let idCounter = 0;

/** `<prefix>_fake_<n>_<hex>`, or `fake-<n>-<hex>` without a prefix (the Gemini fake's response ids). */
export function uniqueId(prefix?: string): string {
  idCounter += 1;
  const random = randomBytes(6).toString("hex");
  return prefix === undefined ? `fake-${idCounter}-${random}` : `${prefix}_fake_${idCounter}_${random}`;
}

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

/** One protocol's script, turn state and request log. */
export class ScriptState {
  /** The default script's turns (steps without forQuery). */
  turns: Turn[] = [];
  /** The scripts of steps with forQuery, in the order their first step appears. */
  queryScripts: Array<{ forQuery: string; turns: Turn[] }> = [];
  // Attempts per script and turn index, so the CLI's own retries of one turn walk through that turn's error steps.
  attempts = new Map<string, number>();
  requests: RecordedRequest[] = [];
  readonly secretHeaders: ReadonlySet<string>;

  constructor(secretHeaders: Iterable<string>) {
    this.secretHeaders = new Set(secretHeaders);
  }

  /** Replaces the script; also clears the turn state and the request log. Returns the number of turns. */
  load(steps: Step[]): number {
    const byQuery = new Map<string, Step[]>();
    const plain: Step[] = [];
    for (const step of steps) {
      if (typeof step.forQuery === "string") {
        const list = byQuery.get(step.forQuery) ?? [];
        list.push(step);
        byQuery.set(step.forQuery, list);
      } else {
        plain.push(step);
      }
    }
    this.turns = toTurns(plain);
    this.queryScripts = [...byQuery].map(([forQuery, list]) => ({ forQuery, turns: toTurns(list) }));
    this.attempts = new Map();
    this.requests = [];
    return this.turns.length + this.queryScripts.reduce((sum, q) => sum + q.turns.length, 0);
  }

  /** The forQuery script for a conversation starting with this user text, if any. */
  scriptFor(firstUserText: string | undefined): { forQuery: string; turns: Turn[] } | undefined {
    if (firstUserText === undefined) return undefined;
    return this.queryScripts.find((q) => firstUserText.includes(q.forQuery));
  }

  /** Logs a request (secret headers redacted) as "other"; the protocol classifies it afterwards. */
  record(req: IncomingMessage, body: unknown, url: string = req.url ?? "/"): RecordedRequest {
    const entry: RecordedRequest = {
      method: req.method ?? "GET",
      url,
      headers: redactHeaders(req.headers, this.secretHeaders),
      body,
      kind: "other",
      receivedAt: new Date().toISOString(),
    };
    this.requests.push(entry);
    return entry;
  }

  /**
   * Picks the answer for an attempt at main-conversation turn `turnIndex`, from the forQuery script matching
   * the conversation's first user text, else the default script. With `record`, notes both on the log entry.
   */
  answer(turnIndex: number, firstUserText?: string, record?: RecordedRequest): Answer {
    const script = this.scriptFor(firstUserText);
    if (record) {
      if (firstUserText !== undefined) record.firstUserText = firstUserText;
      if (script) record.forQuery = script.forQuery;
    }
    const key = `${script ? `q:${script.forQuery}` : "default"}#${turnIndex}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    const turn = (script ? script.turns : this.turns)[turnIndex];
    if (!turn) return { kind: "reply", step: undefined };
    let budget = attempt;
    for (const step of turn.errors) {
      const times = step.times ?? Number.POSITIVE_INFINITY;
      if (budget <= times && step.error) return { kind: "error", error: step.error, shouldRetry: step.shouldRetry };
      budget -= times;
    }
    return { kind: "reply", step: turn.reply };
  }
}

function redactHeaders(
  headers: IncomingMessage["headers"],
  secrets: ReadonlySet<string>,
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] = secrets.has(name) ? "<redacted>" : value;
  }
  return out;
}

/** A rough token estimate: the CLIs only need plausible non-zero numbers for their usage and cost totals. */
/** The object entries of a request body's `messages` array (Chat Completions, Ollama): anything else is ignored. */
export function objectMessages(body: { messages?: unknown }): Array<Record<string, unknown>> {
  if (!Array.isArray(body.messages)) return [];
  return body.messages.filter((m: unknown): m is Record<string, unknown> => isObject(m));
}

/**
 * How many model turns a role-tagged message list holds: one per maximal run of assistant messages (a client
 * that splits one response into several assistant messages still counts it once). Clients resend the whole
 * conversation each turn, so this names the turn without server-side state, and a retry gets the same step.
 */
export function countAssistantRuns(messages: readonly { role?: unknown }[]): number {
  let turns = 0;
  let inRun = false;
  for (const message of messages) {
    const assistant = message.role === "assistant";
    if (assistant && !inRun) turns += 1;
    inRun = assistant;
  }
  return turns;
}

export function estimateTokens(value: unknown): number {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Splits a string into a few pieces, so clients have to join deltas like they do with the real API. */
export function chunk(text: string, pieces = 3): string[] {
  if (text.length === 0) return [""];
  const size = Math.max(1, Math.ceil(text.length / pieces));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** Starts a 200 `text/event-stream` answer; the caller writes the events and ends it. */
export function openEventStream(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    ...headers,
  });
}

export function sendText(res: ServerResponse, status: number, text: string | undefined): void {
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

export type ParsedBody = { ok: true; value: unknown } | { ok: false };

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(raw: string): ParsedBody {
  if (raw.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false };
  }
}

/** One API request, read and parsed, as the protocols see it. */
export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  url: URL;
  raw: string;
  parsed: ParsedBody;
  /** The parsed body if it is JSON, else the raw text: what the request log keeps. */
  logBody: unknown;
}

/** What a protocol module provides to server.ts. */
export interface Protocol {
  readonly name: ProtocolName;
  readonly state: ScriptState;
  /** The error `type` of a malformed /_script request and of an internal failure, in this protocol's terms. */
  readonly badRequestType: string;
  readonly serverErrorType: string;
  /** Whether a path belongs to this protocol's API. */
  owns(method: string, pathname: string): boolean;
  /** Logs and answers an API request (also one for an unknown path attributed to this protocol). */
  handle(request: ApiRequest): void;
  sendError(res: ServerResponse, error: ErrorSpec): void;
  /** Extra per-script state to clear when a new script is loaded. */
  reset?(): void;
  /** Answers an HTTP upgrade request (the socket must be ended). */
  upgrade?(req: IncomingMessage, socket: Duplex): void;
}

/**
 * The control endpoints (not part of any model API), per protocol so one server can serve several tests'
 * protocols independently; without `?protocol=` they act on all protocols:
 *   POST /_script?protocol=<p>   {"steps": Step[]}  replace the script; also clears the turn state and the request log
 *   GET  /_requests?protocol=<p>                    every API request received since the last /_script (secrets redacted)
 *   GET  /health                                    200 "ok"
 * Returns false for any other request.
 */
export function handleControl(request: ApiRequest, protocols: readonly Protocol[]): boolean {
  const { method, url, res, parsed } = request;
  const isScript = method === "POST" && url.pathname === "/_script";
  const isRequests = method === "GET" && url.pathname === "/_requests";
  if (method === "GET" && url.pathname === "/health") {
    sendText(res, 200, "ok");
    return true;
  }
  if (!isScript && !isRequests) return false;

  const wanted = url.searchParams.get("protocol");
  const selected = wanted === null ? protocols : protocols.filter((p) => p.name === wanted);
  if (selected.length === 0) {
    sendJson(res, 400, { error: { message: `unknown protocol ${wanted ?? ""}; expected one of ${PROTOCOLS.join(", ")}` } });
    return true;
  }
  if (isRequests) {
    const all = selected.flatMap((p) => p.state.requests);
    // Several protocols' logs together: in the order the requests arrived.
    if (selected.length > 1) all.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
    sendJson(res, 200, all);
    return true;
  }
  const steps = parsed.ok ? (parsed.value as { steps?: unknown } | undefined)?.steps : undefined;
  if (!Array.isArray(steps)) {
    const message = 'expected {"steps": [...]}';
    const [only] = selected;
    if (selected.length === 1 && only) only.sendError(res, { status: 400, type: only.badRequestType, message });
    else sendJson(res, 400, { error: { message } });
    return true;
  }
  let turns = 0;
  for (const protocol of selected) {
    turns = protocol.state.load(steps as Step[]);
    protocol.reset?.();
  }
  sendJson(res, 200, { ok: true, turns });
  return true;
}

export interface ListenOptions {
  port?: number;
  host?: string;
}

export interface ServerHandle {
  url: string;
  port: number;
  close: () => Promise<void>;
}

/** Reads and parses each request, hands it to `route`, and answers a thrown error with `fail`. */
export function listen(
  options: ListenOptions,
  route: (request: ApiRequest) => void,
  fail: (request: ApiRequest, err: unknown) => void,
  upgrade?: (req: IncomingMessage, socket: Duplex) => void,
): Promise<ServerHandle> {
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<ApiRequest> {
    const raw = await readBody(req);
    const parsed = parseJson(raw);
    const request: ApiRequest = {
      req,
      res,
      method: req.method ?? "GET",
      url: new URL(req.url ?? "/", "http://fake"),
      raw,
      parsed,
      logBody: parsed.ok ? parsed.value : raw,
    };
    try {
      route(request);
    } catch (err) {
      fail(request, err);
    }
    return request;
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: "fake server failure" } });
      else res.destroy();
    });
  });
  if (upgrade) server.on("upgrade", upgrade);
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

/** Whether the module with this import.meta.url is the program Node was started with. */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === moduleUrl;
  } catch {
    return false;
  }
}

/** Listens on $HOST:$PORT (default 0.0.0.0:8080) and stops cleanly on SIGTERM/SIGINT. */
export async function runAsProgram(name: string, start: (options: ListenOptions) => Promise<ServerHandle>): Promise<void> {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? "0.0.0.0";
  const handle = await start({ port, host });
  console.log(`${name} listening on ${host}:${handle.port}`);
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

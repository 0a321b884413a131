// Shared types of the provider gateway (issue 10): the per-run process on the egress side of the sandbox that holds
// the real provider credentials, forwards the agent's model calls to the run's one upstream, and meters them.
// The agent holds only a per-run token; the gateway checks it, strips the client's auth and injects the real one.

/** Which wire protocol a request speaks; decides the allowed paths, the auth to inject and how usage is read. */
export type GatewayProtocol =
  | "anthropic" // Messages API: POST /v1/messages (JSON or SSE), /v1/messages/count_tokens
  | "openai" // Responses (/v1/responses) and Chat Completions (/v1/chat/completions), JSON or SSE; also deepseek, azure-openai
  | "google" // Gemini API: /v1beta/models/<model>:generateContent | :streamGenerateContent (?alt=sse or JSON array)
  | "ollama" // /api/chat, /api/generate (JSON or NDJSON stream), and its OpenAI-compatible /v1/*
  | "bedrock" // Converse / ConverseStream / InvokeModel on bedrock-runtime.<region>.amazonaws.com, SigV4-signed
  | "vertex"; // Vertex AI generateContent / streamGenerateContent, OAuth bearer token

/** Token counts of one model call as the upstream reported them; absent counts are 0. */
export interface MeteredUsage {
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  /** Prompt tokens read from a cache (Anthropic cache_read_input_tokens, OpenAI cached_tokens, Gemini cachedContentTokenCount). */
  cachedInputTokens: number;
  /** Prompt tokens written to a cache (Anthropic cache_creation_input_tokens); 0 where the protocol has none. */
  cacheWriteTokens: number;
  totalTokens: number;
}

/** Reads usage out of one response body as it streams past, without holding the whole body. */
export interface UsageMeter {
  write(chunk: Buffer): void;
  /** The usage the response reported, and the model it named, once the body has ended; undefined if it said none. */
  end(): { usage: MeteredUsage; model?: string } | undefined;
}

/** One metered request: what the gateway prints (one JSON line) for the host collector. No bodies, no secrets. */
export interface GatewayUsageRecord {
  type: "providerUsage";
  requestId: string;
  protocol: GatewayProtocol;
  method: string;
  /** The upstream path without the query string (a query may carry a key). */
  path: string;
  status: number;
  model?: string;
  usage?: MeteredUsage;
  latencyMs: number;
  startedAt: number;
}

/** A price per million tokens of one model, with where and when it was read. */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheReadPerMTok?: number;
  cacheWritePerMTok?: number;
  source: string;
  /** YYYY-MM-DD the price was read from source. */
  date: string;
}

/** The first line the gateway prints: it listens and the host may start the agent. */
export interface GatewayReadyRecord {
  type: "gatewayReady";
  port: number;
}

/**
 * Printed on SIGUSR2, after the agent has exited: every record of the agent's calls that the gateway had printed
 * comes before it, so the host has read them all once it reads this.
 */
export interface GatewayMarkRecord {
  type: "gatewayMark";
}

/** Printed once, when the run's spending first reaches a budget; every later model call is refused. */
export interface BudgetExceededRecord {
  type: "budgetExceeded";
  budget: "maxCostUsd" | "maxTokens";
  limit: number;
  /** USD for maxCostUsd, tokens for maxTokens. */
  spent: number;
}

/** Why the gateway refused a request without contacting the upstream. */
export type GatewayRefusal =
  | "token" // 401: no token or a wrong one
  | "proxy-request" // 403: CONNECT, an upgrade, or an absolute-form request for another host
  | "path" // 403: not a path of the provider's model API
  | "traversal" // 403: dot segments, encoded or not
  | "budget" // 402: a budget is spent
  | "body-too-large"; // 413

/** One refused request. No path or query: both are the caller's and may carry what it tries to exfiltrate. */
export interface GatewayRefusedRecord {
  type: "gatewayRefused";
  requestId: string;
  method: string;
  status: number;
  reason: GatewayRefusal;
}

/** Something the user should know that stops nothing (e.g. a model without a price: max-cost cannot count it). */
export interface GatewayWarningRecord {
  type: "gatewayWarning";
  message: string;
}

/** Every JSON line the gateway prints on stdout. */
export type GatewayRecord =
  | GatewayReadyRecord
  | GatewayMarkRecord
  | GatewayUsageRecord
  | BudgetExceededRecord
  | GatewayRefusedRecord
  | GatewayWarningRecord;

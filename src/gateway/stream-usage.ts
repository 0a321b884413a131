// A streamed Chat Completions (or legacy Completions) response reports its usage only when the request asks for it
// with `stream_options.include_usage` (OpenAI, Azure, Ollama's /v1, vLLM and most servers that copy them). Without
// it the gateway's meter would see no usage, and an agent could spend past --max-tokens and --max-cost, or leave
// calls out of the job's metered usage, just by leaving the option out. So the gateway asks for it on the agent's
// behalf. Clients of those APIs expect the extra chunk (`choices: []` with the usage) that it brings. Pure.
import type { GatewayProtocol } from "./types.js";

/** The paths (after the API root) whose streams report usage only when asked. */
const COMPLETIONS_PATH = /\/(?:chat\/)?completions$/;

/** Whether `method path` is a Chat Completions or Completions call of a protocol that speaks OpenAI's API there. */
export function asksForStreamUsage(protocol: GatewayProtocol, method: string, path: string): boolean {
  if (method !== "POST" || !COMPLETIONS_PATH.test(path)) return false;
  switch (protocol) {
    case "openai":
    case "vertex":
      return true;
    case "ollama":
      return /^(?:\/[^/]+)*\/v1\//.test(path);
    default:
      return false;
  }
}

/**
 * The request body to forward: `body` itself, unless it is a JSON object that streams (`stream` anything but absent,
 * null or false: a server that takes `"true"` must not stream unmetered either) without
 * `stream_options.include_usage: true`; then the same object with it set (other stream_options kept).
 */
export function withStreamUsage(body: Buffer): Buffer {
  if (body.length === 0 || body[0] !== 0x7b /* { */) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    // The upstream refuses what is not JSON: no answer, nothing to meter.
    return body;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return body;
  const request = parsed as Record<string, unknown>;
  const stream = request.stream;
  if (stream === undefined || stream === null || stream === false) return body;
  const options = request.stream_options;
  const kept = typeof options === "object" && options !== null && !Array.isArray(options) ? (options as Record<string, unknown>) : {};
  if (kept.include_usage === true) return body;
  request.stream_options = { ...kept, include_usage: true };
  return Buffer.from(JSON.stringify(request));
}

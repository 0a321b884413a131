// Scripted stand-ins for the model APIs the agent CLIs talk to (Anthropic Messages for Claude Code, Gemini
// v1beta for the Gemini CLI, OpenAI Responses for Codex), all on one port and routed by path, so the CLIs can
// be driven through deterministic conversations without network access or a real key.
//
// Runs directly under Node 22 type stripping (`node --disable-warning=ExperimentalWarning server.ts`; Node
// before 22.18 also needs --experimental-strip-types), so it must stay dependency-free and use erasable
// TypeScript only: no enums, namespaces or parameter properties, only `import type` for types, and relative
// imports with their `.ts` extension. As a program it listens on $HOST:$PORT (default 0.0.0.0:8080); tests
// import startFakeModels() instead.
//
// Routes:
//   /v1/messages, /v1/messages/count_tokens, /api/hello   Anthropic (anthropic.ts)
//   /v1beta/models/<model>:<action> (also v1alpha, v1)     Gemini (gemini.ts)
//   /v1/responses, /responses, /openai/v1/responses        OpenAI Responses (openai.ts)
//   /chat/completions, /v1/chat/completions,
//     /openai/v1/chat/completions                          OpenAI Chat Completions, DeepSeek (chat.ts)
//   /api/chat, /api/tags, /api/version                     Ollama (ollama.ts)
//   /model/<modelId>/converse, /model/<modelId>/converse-stream
//                                                          Amazon Bedrock Converse (bedrock.ts)
//   /v1beta1/projects/<p>/locations/<l>/publishers/google/models/<model>:<action> (also v1)
//                                                          Vertex AI Gemini, OAuth bearer (vertex.ts)
//   /token                                                 OAuth token endpoint for Vertex's bearer (oauth.ts)
// Each protocol keeps its own script, turn state and request log, so one server can serve several tests'
// protocols independently; the control endpoints (see script.ts handleControl) take `?protocol=<name>`:
//   POST /_script?protocol=<name>   {"steps": Step[]}   (names: script.ts PROTOCOLS)
//   GET  /_requests?protocol=<name>
//   GET  /health
//   POST /_oauth   {"publicKeyPem": "...", "clientEmail": "..."}   the key /token verifies assertions with (oauth.ts)

import type { IncomingHttpHeaders } from "node:http";
import type { ApiRequest, ListenOptions, Protocol, ProtocolName, ServerHandle } from "./script.ts";
import { handleControl, isMainModule, listen, runAsProgram } from "./script.ts";
import { createAnthropic } from "./anthropic.ts";
import { createGemini } from "./gemini.ts";
import { createOpenAI } from "./openai.ts";
import { createChat } from "./chat.ts";
import { createOllama } from "./ollama.ts";
import { createBedrock } from "./bedrock.ts";
import { createVertex } from "./vertex.ts";

export type { ErrorSpec, ProtocolName, RecordedRequest, ReportedUsage, Step, ToolUseSpec } from "./script.ts";

export type FakeModelsOptions = ListenOptions;
export type FakeModelsHandle = ServerHandle;

/**
 * The protocol a request for a path no protocol owns is attributed to (logged as "other" in its request log
 * and answered with its 404 body): guessed from the client's user agent, else Anthropic.
 */
function guessProtocol(headers: IncomingHttpHeaders): ProtocolName {
  const agent = String(headers["user-agent"] ?? "").toLowerCase();
  if (headers["x-amz-date"] !== undefined || String(headers.authorization ?? "").startsWith("AWS4-")) return "bedrock";
  if (headers["x-goog-api-key"] !== undefined || agent.includes("gemini")) return "gemini";
  if (headers["x-codex-turn-metadata"] !== undefined || agent.includes("codex") || agent.includes("openai")) {
    return "openai";
  }
  return "anthropic";
}

export function startFakeModels(options: FakeModelsOptions = {}): Promise<FakeModelsHandle> {
  const protocols: Protocol[] = [createAnthropic(), createGemini(), createOpenAI(), createChat(), createOllama(), createBedrock(), createVertex()];
  const byName = (name: ProtocolName): Protocol => protocols.find((p) => p.name === name)!;

  const protocolFor = (request: ApiRequest): Protocol =>
    protocols.find((p) => p.owns(request.method, request.url.pathname)) ?? byName(guessProtocol(request.req.headers));

  const route = (request: ApiRequest): void => {
    if (handleControl(request, protocols)) return;
    protocolFor(request).handle(request);
  };

  const fail = (request: ApiRequest, err: unknown): void => {
    const { res } = request;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const protocol = protocolFor(request);
    protocol.sendError(res, { status: 500, type: protocol.serverErrorType, message: `fake server failure: ${String(err)}` });
  };

  // Only the OpenAI fake sees upgrade attempts (Codex's WebSocket transport); see openai.ts.
  const openai = byName("openai");
  return listen(options, route, fail, (req, socket) => openai.upgrade?.(req, socket));
}

if (isMainModule(import.meta.url)) {
  await runAsProgram("fake-models", startFakeModels);
}

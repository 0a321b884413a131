// The meters against real response bodies: the fake model servers speak the vendors' wire formats and log the
// usage each main-conversation reply reported (ReportedUsage), so the meter must read exactly that back, from
// the body as a socket could deliver it (whole, byte by byte, split at every boundary).
import { createSign, generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeModels } from "../../fake-models/server.ts";
import type { FakeModelsHandle, ProtocolName, RecordedRequest, Step } from "../../fake-models/server.ts";
import { fetchRequestLog, postScript } from "../../support/fake-models-server.ts";
import type { GatewayProtocol, MeteredUsage } from "../../../src/gateway/types.ts";
import { meterEveryWay } from "./meter-feed.ts";

let handle: FakeModelsHandle | undefined;
beforeAll(async () => {
  handle = await startFakeModels({ port: 0 });
});
afterAll(async () => {
  await handle?.close();
});
const url = (): string => {
  if (!handle) throw new Error("the fake model server is not started");
  return handle.url;
};

// Non-ASCII text so byte splits cut UTF-8 characters; a tool call and thinking so every count is non-zero.
const STEPS: Step[] = [
  {
    thinking: "Überlegung: ein Schritt — 考える",
    text: "Grüße aus dem Sandkasten ✓ 🙂",
    toolUse: [{ name: "run_shell_command", input: { command: "echo ‘hi’" } }],
  },
];

interface Exchange {
  body: Buffer;
  contentType: string | undefined;
  path: string;
  record: RecordedRequest;
}

async function exchange(
  protocol: ProtocolName,
  path: string,
  body: unknown,
  steps: Step[] = STEPS,
  headers: Record<string, string> = {},
): Promise<Exchange> {
  await postScript(url(), protocol, steps);
  const res = await fetch(`${url()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  const log = await fetchRequestLog(url(), protocol);
  const record = log.find((r) => r.kind === "main");
  expect(record?.usage).toBeDefined();
  return { body: bytes, contentType: res.headers.get("content-type") ?? undefined, path: path.split("?")[0]!, record: record! };
}

function meter(protocol: GatewayProtocol, ex: Exchange): { usage: MeteredUsage; model?: string } | undefined {
  return meterEveryWay({ protocol, contentType: ex.contentType, path: ex.path }, ex.body);
}

const num = (value: unknown): number => (typeof value === "number" ? value : 0);
const nested = (vendor: Record<string, unknown>, outer: string, inner: string): number =>
  num((vendor[outer] as Record<string, unknown> | undefined)?.[inner]);

describe.each([false, true])("fake Anthropic, stream: %s", (stream) => {
  it("meters exactly the usage the fake reported", async () => {
    const ex = await exchange("anthropic", "/v1/messages?beta=true", {
      model: "claude-sonnet-4-5-20250929",
      max_tokens: 32000,
      stream,
      system: [{ type: "text", text: "You are Claude Code." }],
      tools: [{ name: "Bash", description: "run", input_schema: { type: "object" } }],
      messages: [{ role: "user", content: "hallo — wie geht's?" }],
    });
    const reported = ex.record.usage!;
    expect(ex.contentType).toMatch(stream ? /^text\/event-stream/ : /^application\/json/);
    expect(meter("anthropic", ex)).toEqual({
      model: "claude-sonnet-4-5-20250929",
      usage: {
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        reasoningTokens: 0,
        cachedInputTokens: num(reported.vendor.cache_read_input_tokens),
        cacheWriteTokens: num(reported.vendor.cache_creation_input_tokens),
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
  });
});

describe.each([false, true])("fake OpenAI Responses, stream: %s", (stream) => {
  it("meters exactly the usage the fake reported, with cached and reasoning tokens", async () => {
    const ex = await exchange("openai", "/v1/responses", {
      model: "gpt-5-codex",
      instructions: "You are Codex.",
      input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hallo ✓" }] }],
      tools: [{ type: "function", name: "run_shell_command", parameters: { type: "object" } }],
      reasoning: { effort: "medium", summary: "auto" },
      stream,
    });
    const reported = ex.record.usage!;
    const result = meter("openai", ex);
    expect(result).toEqual({
      model: "gpt-5-codex",
      usage: {
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        reasoningTokens: nested(reported.vendor, "output_tokens_details", "reasoning_tokens"),
        cachedInputTokens: nested(reported.vendor, "input_tokens_details", "cached_tokens"),
        cacheWriteTokens: 0,
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
    expect(result?.usage.reasoningTokens).toBeGreaterThan(0);
    expect(result?.usage.cachedInputTokens).toBeGreaterThan(0);
  });
});

describe.each([false, true])("fake Gemini, stream: %s", (stream) => {
  it("meters exactly the usage the fake reported, thoughts in the output and cached content", async () => {
    // A later turn (one model turn in the history), for which the fake reports cached content.
    const path = stream
      ? "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
      : "/v1beta/models/gemini-2.5-pro:generateContent";
    const ex = await exchange("gemini", path, {
      contents: [
        { role: "user", parts: [{ text: "hallo ✓" }] },
        { role: "model", parts: [{ text: "first" }] },
        { role: "user", parts: [{ text: "weiter" }] },
      ],
      systemInstruction: { role: "user", parts: [{ text: "You are a non-interactive CLI agent." }] },
      tools: [{ functionDeclarations: [{ name: "run_shell_command", parametersJsonSchema: { type: "object" } }] }],
      generationConfig: { thinkingConfig: { includeThoughts: true } },
    }, [{ text: "first" }, ...STEPS]);
    const reported = ex.record.usage!;
    const result = meter("google", ex);
    expect(result).toEqual({
      model: "gemini-2.5-pro",
      usage: {
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        reasoningTokens: num(reported.vendor.thoughtsTokenCount),
        cachedInputTokens: num(reported.vendor.cachedContentTokenCount),
        cacheWriteTokens: 0,
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
    // The fake's turn selection must have answered with the thinking step (turn 1), not the first.
    expect(result?.usage.reasoningTokens).toBeGreaterThan(0);
    expect(result?.usage.cachedInputTokens).toBeGreaterThan(0);
  });
});

// Chat Completions as DeepSeek, OpenAI and Azure serve it (metered by the "openai" protocol's reader): not
// streamed; streamed with stream_options.include_usage (OpenAI: a last chunk with `choices: []` and the usage,
// `usage: null` before); streamed without it (DeepSeek: the usage on the finish_reason chunk).
describe.each([
  { stream: false, includeUsage: false },
  { stream: true, includeUsage: true },
  { stream: true, includeUsage: false },
])("fake Chat Completions, stream: $stream, include_usage: $includeUsage", ({ stream, includeUsage }) => {
  it("meters exactly the usage the fake reported, with cached and reasoning tokens", async () => {
    const ex = await exchange("chat", "/chat/completions", {
      model: "deepseek-reasoner",
      messages: [
        { role: "system", content: "You are an agent." },
        { role: "user", content: "hallo ✓" },
      ],
      tools: [{ type: "function", function: { name: "run_shell_command", parameters: { type: "object" } } }],
      stream,
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    });
    const reported = ex.record.usage!;
    expect(ex.contentType).toMatch(stream ? /^text\/event-stream/ : /^application\/json/);
    const result = meter("openai", ex);
    expect(result).toEqual({
      model: "deepseek-reasoner",
      usage: {
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        reasoningTokens: nested(reported.vendor, "completion_tokens_details", "reasoning_tokens"),
        cachedInputTokens: nested(reported.vendor, "prompt_tokens_details", "cached_tokens"),
        cacheWriteTokens: 0,
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
    expect(result?.usage.reasoningTokens).toBeGreaterThan(0);
    expect(result?.usage.cachedInputTokens).toBeGreaterThan(0);
    // DeepSeek's own cache counter says the same.
    expect(result?.usage.cachedInputTokens).toBe(num(reported.vendor.prompt_cache_hit_tokens));
  });
});

describe.each([false, true])("fake Ollama /api/chat, stream: %s", (stream) => {
  it("meters exactly the counts of the fake's done line", async () => {
    const ex = await exchange("ollama", "/api/chat", {
      model: "llama3.2",
      messages: [{ role: "user", content: "hallo ✓" }],
      tools: [{ type: "function", function: { name: "run_shell_command", parameters: { type: "object" } } }],
      think: true,
      // Ollama streams unless told otherwise.
      ...(stream ? {} : { stream: false }),
    });
    const reported = ex.record.usage!;
    expect(ex.contentType).toMatch(stream ? /^application\/x-ndjson/ : /^application\/json/);
    expect(meter("ollama", ex)).toEqual({
      model: "llama3.2",
      usage: {
        inputTokens: num(reported.vendor.prompt_eval_count),
        outputTokens: num(reported.vendor.eval_count),
        reasoningTokens: 0,
        cachedInputTokens: 0,
        cacheWriteTokens: 0,
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
    expect(reported.inputTokens).toBe(reported.vendor.prompt_eval_count);
    expect(reported.outputTokens).toBe(reported.vendor.eval_count);
  });
});

// Bedrock Converse: the JSON body's `usage`, or ConverseStream's `metadata` event (AWS event-stream framing). With a
// cachePoint the fake's first turn writes the cache and later turns read it; Bedrock's inputTokens leaves both out.
describe.each([
  { stream: false, turn: 0 },
  { stream: true, turn: 0 },
  { stream: false, turn: 1 },
  { stream: true, turn: 1 },
])("fake Bedrock, stream: $stream, turn: $turn", ({ stream, turn }) => {
  it("meters exactly the usage the fake reported, cache reads and writes apart", async () => {
    const model = encodeURIComponent("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    const earlier = turn === 0 ? [] : [{ role: "assistant", content: [{ text: "first" }] }, { role: "user", content: [{ text: "weiter" }] }];
    const ex = await exchange("bedrock", `/model/${model}/${stream ? "converse-stream" : "converse"}`, {
      system: [{ text: "You are an agent." }, { cachePoint: { type: "default" } }],
      messages: [{ role: "user", content: [{ text: "hallo ✓" }] }, ...earlier],
      toolConfig: { tools: [{ toolSpec: { name: "run_shell_command", inputSchema: { json: { type: "object" } } } }] },
      inferenceConfig: { maxTokens: 4096 },
    }, turn === 0 ? STEPS : [{ text: "first" }, ...STEPS]);
    const reported = ex.record.usage!;
    expect(ex.record.turn).toBe(turn);
    expect(ex.contentType).toMatch(stream ? /^application\/vnd\.amazon\.eventstream$/ : /^application\/json/);
    const result = meter("bedrock", ex);
    // Converse names no model; the gateway takes it from the path.
    expect(result).toEqual({
      usage: {
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        reasoningTokens: 0,
        cachedInputTokens: num(reported.vendor.cacheReadInputTokens),
        cacheWriteTokens: num(reported.vendor.cacheWriteInputTokens),
        totalTokens: reported.inputTokens + reported.outputTokens,
      },
    });
    expect(reported.inputTokens).toBeGreaterThan(num(reported.vendor.inputTokens));
    expect(result?.usage[turn === 0 ? "cacheWriteTokens" : "cachedInputTokens"]).toBeGreaterThan(0);
  });
});

// Vertex AI's Gemini models: the Gemini wire format behind an OAuth bearer from the fake's token endpoint; streamed
// as SSE (?alt=sse) or, without it, as one streamed JSON array.
describe("fake Vertex AI", () => {
  let token = "";
  beforeAll(async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const clientEmail = "usage-meter@perstack-test.iam.gserviceaccount.com";
    const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    expect((await fetch(`${url()}/_oauth`, { method: "POST", body: JSON.stringify({ publicKeyPem, clientEmail }) })).status).toBe(200);
    const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
    const iat = Math.floor(Date.now() / 1000);
    const claims = { iss: clientEmail, scope: "https://www.googleapis.com/auth/cloud-platform", aud: "https://oauth2.googleapis.com/token", iat, exp: iat + 3600 };
    const input = `${encode({ alg: "RS256", typ: "JWT" })}.${encode(claims)}`;
    const assertion = `${input}.${createSign("RSA-SHA256").update(input).sign(privateKey).toString("base64url")}`;
    const res = await fetch(`${url()}/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }),
    });
    expect(res.status).toBe(200);
    token = ((await res.json()) as { access_token: string }).access_token;
  });

  describe.each(["generateContent", "streamGenerateContent?alt=sse", "streamGenerateContent"])("%s", (action) => {
    it("meters exactly the usage the fake reported, thoughts in the output and cached content", async () => {
      const path = `/v1beta1/projects/perstack-test/locations/us-central1/publishers/google/models/gemini-2.5-pro:${action}`;
      const ex = await exchange("vertex", path, {
        contents: [
          { role: "user", parts: [{ text: "hallo ✓" }] },
          { role: "model", parts: [{ text: "first" }] },
          { role: "user", parts: [{ text: "weiter" }] },
        ],
        systemInstruction: { role: "user", parts: [{ text: "You are an agent." }] },
        tools: [{ functionDeclarations: [{ name: "run_shell_command", parametersJsonSchema: { type: "object" } }] }],
        generationConfig: { thinkingConfig: { includeThoughts: true } },
      }, [{ text: "first" }, ...STEPS], { authorization: `Bearer ${token}` });
      const reported = ex.record.usage!;
      expect(ex.record.auth).toBe("issued-token");
      expect(ex.contentType).toMatch(action.endsWith("alt=sse") ? /^text\/event-stream/ : /^application\/json/);
      const result = meter("vertex", ex);
      expect(result).toEqual({
        model: "gemini-2.5-pro",
        usage: {
          inputTokens: reported.inputTokens,
          outputTokens: reported.outputTokens,
          reasoningTokens: num(reported.vendor.thoughtsTokenCount),
          cachedInputTokens: num(reported.vendor.cachedContentTokenCount),
          cacheWriteTokens: 0,
          totalTokens: reported.inputTokens + reported.outputTokens,
        },
      });
      expect(result?.usage.reasoningTokens).toBeGreaterThan(0);
      expect(result?.usage.cachedInputTokens).toBeGreaterThan(0);
    });
  });
});

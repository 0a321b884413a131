// The meters against real response bodies: the fake model servers speak the vendors' wire formats and log the
// usage each main-conversation reply reported (ReportedUsage), so the meter must read exactly that back, from
// the body as a socket could deliver it (whole, byte by byte, split at every boundary).
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

async function exchange(protocol: ProtocolName, path: string, body: unknown, steps: Step[] = STEPS): Promise<Exchange> {
  await postScript(url(), protocol, steps);
  const res = await fetch(`${url()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
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

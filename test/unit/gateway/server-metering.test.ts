// Metering and budgets, against the fake model servers (test/fake-models), which speak the real wire formats and
// log the usage they reported. Every metering assertion compares a gateway usage record with that log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeModels } from "../../fake-models/server.ts";
import type { FakeModelsHandle, RecordedRequest } from "../../fake-models/server.ts";
import { fetchRequestLog, postScript } from "../../support/fake-models-server.ts";
import type { MeteredUsage } from "../../../src/gateway/types.ts";
import type { TestGateway } from "./gateway-harness.ts";
import { TOKEN, eventually, startTestGateway } from "./gateway-harness.ts";

let fake: FakeModelsHandle;
beforeAll(async () => {
  fake = await startFakeModels({ port: 0, host: "127.0.0.1" });
});
afterAll(async () => {
  await fake.close();
});

const user = (text: string) => ({ role: "user", content: text });

/** One call of each kind per protocol, shaped like the CLI's main-conversation turns so the fake logs its usage. */
const calls = {
  anthropic: {
    headers: { "x-api-key": TOKEN, "content-type": "application/json" },
    request: (stream: boolean, turn: number) => ({
      path: "/v1/messages?beta=true",
      body: {
        model: "claude-sonnet-4-5",
        max_tokens: 32000,
        stream,
        tools: [{ name: "Bash", input_schema: { type: "object" } }],
        messages: turn === 0 ? [user("hello there")] : [user("hello there"), { role: "assistant", content: "earlier" }, user("and again")],
      },
    }),
  },
  openai: {
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    request: (stream: boolean, _turn: number) => ({
      path: "/v1/responses",
      body: { model: "gpt-5", stream, input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hello there, model" }] }] },
    }),
  },
  gemini: {
    headers: { "x-goog-api-key": TOKEN, "content-type": "application/json" },
    request: (stream: boolean, turn: number) => ({
      path: `/v1beta/models/gemini-2.5-pro:${stream ? "streamGenerateContent?alt=sse" : "generateContent"}`,
      body: {
        contents:
          turn === 0
            ? [{ role: "user", parts: [{ text: "hello there" }] }]
            : [
                { role: "user", parts: [{ text: "hello there" }] },
                { role: "model", parts: [{ text: "earlier" }] },
                { role: "user", parts: [{ text: "and again" }] },
              ],
        tools: [{ functionDeclarations: [{ name: "run", parameters: { type: "object" } }] }],
      },
    }),
  },
} as const;

const gatewayProtocol = { anthropic: "anthropic", openai: "openai", gemini: "google" } as const;

async function call(gateway: TestGateway, protocol: keyof typeof calls, stream: boolean, turn: number): Promise<Response> {
  const { path, body } = calls[protocol].request(stream, turn);
  const res = await fetch(`${gateway.url}${path}`, { method: "POST", headers: calls[protocol].headers, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res;
}

/** What the fake said it reported, in the gateway's terms. */
function expectedUsage(protocol: keyof typeof calls, logged: RecordedRequest): Partial<MeteredUsage> {
  const vendor = logged.usage!.vendor;
  const cached =
    protocol === "anthropic"
      ? Number(vendor.cache_read_input_tokens ?? 0)
      : protocol === "openai"
        ? Number((vendor.input_tokens_details as { cached_tokens?: number } | undefined)?.cached_tokens ?? 0)
        : Number(vendor.cachedContentTokenCount ?? 0);
  return { inputTokens: logged.usage!.inputTokens, outputTokens: logged.usage!.outputTokens, cachedInputTokens: cached };
}

describe.each(["anthropic", "openai", "gemini"] as const)("metering %s", (protocol) => {
  it("prints one usage record per call whose counts equal what the fake reported, streaming or not", async () => {
    await postScript(fake.url, protocol, [{ text: "Hello there, friend." }, { text: "Hello again." }]);
    const gateway = await startTestGateway({ protocol: gatewayProtocol[protocol], upstream: fake.url, allowInsecureUpstream: true });
    try {
      expect((await call(gateway, protocol, false, 0)).status).toBe(200);
      expect((await call(gateway, protocol, true, 1)).status).toBe(200);
      await eventually(() => gateway.usageRecords().length === 2);
      const logged = (await fetchRequestLog(fake.url, protocol)).filter((r) => r.kind === "main");
      expect(logged).toHaveLength(2);
      const records = gateway.usageRecords();
      records.forEach((record, index) => {
        expect(record.status).toBe(200);
        expect(record.usage).toMatchObject(expectedUsage(protocol, logged[index]!));
        expect(record.usage!.totalTokens).toBeGreaterThan(0);
        expect(record.model).toMatch(protocol === "anthropic" ? /^claude-sonnet-4-5/ : protocol === "openai" ? /^gpt-5/ : /gemini-2\.5-pro/);
        expect(record.latencyMs).toBeGreaterThanOrEqual(0);
        expect(record.path).not.toContain("?");
      });
    } finally {
      await gateway.close();
    }
  });
});

describe("budgets", () => {
  it.each([
    ["anthropic", { type: "error", error: { type: "billing_error" } }],
    ["openai", { error: { code: "perstack_budget_exceeded" } }],
    ["gemini", { error: { code: 402, status: "FAILED_PRECONDITION" } }],
  ] as const)("max-tokens stops further %s calls with a readable error and one budgetExceeded record", async (protocol, shape) => {
    await postScript(fake.url, protocol, []);
    const gateway = await startTestGateway({ protocol: gatewayProtocol[protocol], upstream: fake.url, allowInsecureUpstream: true, budgets: { maxTokens: 5 } });
    try {
      expect((await call(gateway, protocol, true, 0)).status).toBe(200);
      await eventually(() => gateway.records.some((r) => r.type === "budgetExceeded"));
      const spentTokens = gateway.usageRecords()[0]!.usage!.totalTokens;
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const { path, body } = calls[protocol].request(false, 0);
        const res = await fetch(`${gateway.url}${path}`, { method: "POST", headers: calls[protocol].headers, body: JSON.stringify(body) });
        expect(res.status).toBe(402);
        const error = (await res.json()) as unknown;
        expect(error).toMatchObject(shape);
        expect(JSON.stringify(error)).toContain(`perstack budget exceeded: the run spent its --max-tokens budget (${spentTokens} of 5 tokens)`);
      }
      expect((await fetchRequestLog(fake.url, protocol)).length).toBe(1);
      expect(gateway.records.filter((r) => r.type === "budgetExceeded")).toEqual([
        { type: "budgetExceeded", budget: "maxTokens", limit: 5, spent: spentTokens },
      ]);
    } finally {
      await gateway.close();
    }
  });

  it("max-cost counts the price table's cost and stops at the limit", async () => {
    await postScript(fake.url, "anthropic", []);
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: fake.url, allowInsecureUpstream: true, budgets: { maxCostUsd: 0.0001 } });
    try {
      let status = 200;
      let calls = 0;
      while (status === 200 && calls < 50) {
        status = (await call(gateway, "anthropic", false, 0)).status;
        calls += 1;
        await eventually(() => gateway.usageRecords().length === calls || status !== 200);
      }
      expect(status).toBe(402);
      const usage = gateway.usageRecords().map((r) => r.usage!);
      // claude-sonnet-4-5: $3 per million input tokens, $15 per million output tokens (pricing/prices.json).
      const spent = usage.reduce((sum, u) => sum + (u.inputTokens * 3 + u.outputTokens * 15) / 1e6, 0);
      const [exceeded, ...more] = gateway.records.filter((r) => r.type === "budgetExceeded");
      expect(more).toEqual([]);
      expect(exceeded).toMatchObject({ budget: "maxCostUsd", limit: 0.0001 });
      expect((exceeded as { spent: number }).spent).toBeCloseTo(spent, 12);
      expect(spent).toBeGreaterThanOrEqual(0.0001);
      expect(spent - (usage.at(-1)!.inputTokens * 3 + usage.at(-1)!.outputTokens * 15) / 1e6).toBeLessThan(0.0001);
    } finally {
      await gateway.close();
    }
  });

  it("warns once about a model without a price and counts its tokens but no cost", async () => {
    await postScript(fake.url, "openai", []);
    const gateway = await startTestGateway({ protocol: "openai", upstream: fake.url, allowInsecureUpstream: true, budgets: { maxCostUsd: 0.000001 } });
    try {
      for (let i = 0; i < 3; i += 1) {
        const res = await fetch(`${gateway.url}/v1/responses`, {
          method: "POST",
          headers: calls.openai.headers,
          body: JSON.stringify({ model: "mystery-model-x", input: "hi" }),
        });
        expect(res.status).toBe(200);
      }
      await eventually(() => gateway.usageRecords().length === 3);
      expect(gateway.records.filter((r) => r.type === "gatewayWarning")).toEqual([
        { type: "gatewayWarning", message: "no price for model mystery-model-x: max-cost does not count its usage (max-tokens does)" },
      ]);
      expect(gateway.records.some((r) => r.type === "budgetExceeded")).toBe(false);
    } finally {
      await gateway.close();
    }
  });
});

describe("streamed Chat Completions that do not ask for their usage", () => {
  const post = (gateway: TestGateway, body: Record<string, unknown>) =>
    fetch(`${gateway.url}/v1/chat/completions`, { method: "POST", headers: calls.openai.headers, body: JSON.stringify(body) });
  const streamed = { model: "gpt-5", stream: true, messages: [user("spend without a meter")] };

  it("are metered all the same: the gateway asks for the usage, keeping the client's other stream options", async () => {
    await postScript(fake.url, "chat", []);
    const gateway = await startTestGateway({ protocol: "openai", upstream: fake.url, allowInsecureUpstream: true });
    try {
      const res = await post(gateway, { ...streamed, stream_options: { include_obfuscation: false } });
      expect(res.status).toBe(200);
      const text = await res.text();
      // The client gets the usage chunk it now asked for.
      expect(text).toMatch(/"choices":\[\],"usage":\{"prompt_tokens":\d+/);
      await eventually(() => gateway.usageRecords().length === 1);
      const [logged] = await fetchRequestLog(fake.url, "chat");
      expect((logged!.body as { stream_options?: unknown }).stream_options).toEqual({ include_obfuscation: false, include_usage: true });
      expect(gateway.usageRecords()[0]!.usage).toMatchObject({ inputTokens: logged!.usage!.inputTokens, outputTokens: logged!.usage!.outputTokens });
      // A call that does not stream is forwarded as it came: OpenAI refuses stream_options without a stream.
      expect((await post(gateway, { model: "gpt-5", messages: [user("no stream")] })).status).toBe(200);
      const [, plain] = await fetchRequestLog(fake.url, "chat");
      expect(plain!.body).toEqual({ model: "gpt-5", messages: [user("no stream")] });
    } finally {
      await gateway.close();
    }
  });

  it("cannot spend past --max-tokens: the budget stops the next call", async () => {
    await postScript(fake.url, "chat", []);
    const gateway = await startTestGateway({ protocol: "openai", upstream: fake.url, allowInsecureUpstream: true, budgets: { maxTokens: 5 } });
    try {
      expect((await post(gateway, streamed)).status).toBe(200);
      await eventually(() => gateway.records.some((r) => r.type === "budgetExceeded"));
      expect((await post(gateway, streamed)).status).toBe(402);
      expect((await fetchRequestLog(fake.url, "chat")).length).toBe(1);
    } finally {
      await gateway.close();
    }
  });
});

import { describe, expect, it } from "vitest";
import { upstreamAuthFromEnv } from "../../../src/gateway/credentials.ts";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";
import { REAL_KEY, TOKEN, eventually, startTestGateway, startUpstream, gatewaySuite } from "./gateway-harness.ts";

const messages = { model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };

describe("the gateway's token check", () => {
  const suite = gatewaySuite((url) => ({ protocol: "anthropic", upstream: url, allowInsecureUpstream: true }));

  const post = (headers: Record<string, string>, path = "/v1/messages") =>
    fetch(`${suite.gateway.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(messages) });

  it("refuses a request without a token, in Anthropic's error shape, and never calls the upstream", async () => {
    const res = await post({});
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } });
    expect(suite.upstream.received).toHaveLength(0);
    expect(suite.gateway.records).toEqual([expect.objectContaining({ type: "gatewayRefused", status: 401, reason: "token" })]);
  });

  it.each([
    ["a wrong token", { "x-api-key": "run-token-0123456789abcdef0123456789abcdeX" }],
    ["a prefix of the token", { "x-api-key": TOKEN.slice(0, -1) }],
    ["the token with a suffix", { "x-api-key": `${TOKEN}x` }],
    ["the real key", { "x-api-key": REAL_KEY }],
    ["a non-bearer authorization", { authorization: `Basic ${TOKEN}` }],
  ])("refuses %s", async (_name, headers) => {
    const res = await post(headers);
    expect(res.status).toBe(401);
    expect(suite.upstream.received).toHaveLength(0);
  });

  it.each([
    ["x-api-key", { "x-api-key": TOKEN }, ""],
    ["Authorization: Bearer", { authorization: `Bearer ${TOKEN}` }, ""],
    ["x-goog-api-key", { "x-goog-api-key": TOKEN }, ""],
    ["api-key", { "api-key": TOKEN }, ""],
    ["?key=", {}, `?key=${TOKEN}`],
  ])("accepts the token as %s, strips every client credential and injects the real key", async (_name, headers, query) => {
    const res = await post(
      { ...headers, "anthropic-api-key": "client-junk", "x-amz-security-token": "client-junk", cookie: "a=b" },
      `/v1/messages${query}`,
    );
    expect(res.status).toBe(200);
    expect(suite.upstream.received).toHaveLength(1);
    const seen = suite.upstream.received[0]!;
    expect(seen.headers["x-api-key"]).toBe(REAL_KEY);
    for (const name of ["authorization", "x-goog-api-key", "api-key", "anthropic-api-key", "x-amz-security-token", "cookie"]) {
      expect(seen.headers[name]).toBeUndefined();
    }
    expect(seen.url).toBe("/v1/messages");
    expect(JSON.stringify(seen)).not.toContain(TOKEN);
    expect(JSON.parse(seen.body.toString("utf8"))).toEqual(messages);
  });

  it("sends the upstream's own Host header and keeps other query parameters", async () => {
    const res = await post({ "x-api-key": TOKEN, host: "evil.example" }, "/v1/messages?beta=true&key=other&access_token=t");
    expect(res.status).toBe(200);
    const seen = suite.upstream.received.at(-1)!;
    expect(seen.headers.host).toBe(new URL(suite.upstream.url).host);
    expect(seen.url).toBe("/v1/messages?beta=true");
    expect(seen.headers["accept-encoding"]).toBe("identity");
  });

  it("prints a usage record with no query string and no secrets", async () => {
    await post({ "x-api-key": TOKEN }, `/v1/messages?beta=true`);
    await eventually(() => suite.gateway.usageRecords().length === 1);
    const [record] = suite.gateway.usageRecords();
    expect(record).toMatchObject({ type: "providerUsage", protocol: "anthropic", method: "POST", path: "/v1/messages", status: 200, model: "claude-sonnet-4-5" });
    expect(record!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const printed = JSON.stringify(suite.gateway.records);
    expect(printed).not.toContain(TOKEN);
    expect(printed).not.toContain(REAL_KEY);
    expect(printed).not.toContain("beta=true");
  });
});

describe("the real credentials per provider", () => {
  const env = {
    ANTHROPIC_API_KEY: "anthropic-real",
    OPENAI_API_KEY: "openai-real",
    DEEPSEEK_API_KEY: "deepseek-real",
    AZURE_API_KEY: "azure-real",
    GEMINI_API_KEY: "gemini-real",
  };

  it.each([
    ["anthropic", "anthropic", "/v1/messages", { "x-api-key": TOKEN }, { "x-api-key": "anthropic-real" }],
    ["openai", "openai", "/v1/responses", { authorization: `Bearer ${TOKEN}` }, { authorization: "Bearer openai-real" }],
    ["openai", "deepseek", "/chat/completions", { authorization: `Bearer ${TOKEN}` }, { authorization: "Bearer deepseek-real" }],
    ["openai", "azure-openai", "/openai/v1/responses", { "api-key": TOKEN }, { "api-key": "azure-real" }],
    ["google", "google", "/v1beta/models/gemini-2.5-flash:generateContent", { "x-goog-api-key": TOKEN }, { "x-goog-api-key": "gemini-real" }],
    ["ollama", "ollama", "/api/chat", { authorization: `Bearer ${TOKEN}` }, {}],
  ] as const)("%s protocol, %s provider: forwards %s with the provider's header", async (protocol, provider, path, clientHeaders, expected) => {
    const upstream = await startUpstream();
    const config = { protocol, provider, upstream: upstream.url, allowInsecureUpstream: true };
    const gateway = await startTestGateway(config, { auth: await upstreamAuthFromEnv(parseGatewayConfig({ ...config, listen: { host: "127.0.0.1", port: 0 } }, "test"), env) });
    try {
      const res = await fetch(`${gateway.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...clientHeaders }, body: "{}" });
      expect(res.status).toBe(200);
      const seen = upstream.received[0]!;
      for (const [name, value] of Object.entries(expected)) expect(seen.headers[name]).toBe(value);
      const authHeaders = ["authorization", "x-api-key", "api-key", "x-goog-api-key"].filter((h) => seen.headers[h] !== undefined);
      expect(authHeaders).toEqual(Object.keys(expected));
      expect(JSON.stringify(seen.headers)).not.toContain(TOKEN);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("sends a bearer key to ollama when one is set", async () => {
    const config = parseGatewayConfig({ protocol: "ollama", upstream: "http://127.0.0.1:11434", allowInsecureUpstream: true, listen: { host: "127.0.0.1", port: 0 } }, "test");
    const auth = await upstreamAuthFromEnv(config, { OLLAMA_API_KEY: "ollama-real" });
    expect(await auth.headersFor({ method: "POST", url: new URL("http://127.0.0.1:11434/api/chat"), headers: {}, body: Buffer.alloc(0) })).toEqual({
      authorization: "Bearer ollama-real",
    });
  });

  it("names the missing variable, never a value", async () => {
    const config = parseGatewayConfig({ protocol: "google", upstream: "https://generativelanguage.googleapis.com", listen: { host: "127.0.0.1", port: 0 } }, "test");
    await expect(upstreamAuthFromEnv(config, { OPENAI_API_KEY: "x" })).rejects.toThrow(/GOOGLE_GENERATIVE_AI_API_KEY or GEMINI_API_KEY/);
  });
});

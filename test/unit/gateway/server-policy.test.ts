import net from "node:net";
import { describe, expect, it } from "vitest";
import { TOKEN, rawRequest, startTestGateway, startUpstream, gatewaySuite } from "./gateway-harness.ts";

/** Writes raw bytes to the gateway and returns what it answers (the status line and all). */
function rawExchange(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let answer = "";
    socket.on("data", (part: Buffer) => (answer += part.toString("utf8")));
    socket.on("end", () => resolve(answer));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

describe("what the gateway forwards", () => {
  const suite = gatewaySuite((url) => ({ protocol: "anthropic", upstream: `${url}/api/anthropic/`, allowInsecureUpstream: true }));

  const auth = { "x-api-key": TOKEN };

  it("maps requests under the upstream's path prefix", async () => {
    const res = await rawRequest(suite.gateway.url, { method: "POST", path: "/v1/messages/count_tokens", headers: auth, body: "{}" });
    expect(res.status).toBe(200);
    expect(suite.upstream.received.map((r) => r.url)).toEqual(["/api/anthropic/v1/messages/count_tokens"]);
  });

  it("puts the config's fixed query parameters (Azure's api-version) in place of the client's", async () => {
    const azure = await startTestGateway({ protocol: "openai", provider: "azure-openai", upstream: suite.upstream.url, allowInsecureUpstream: true, upstreamQuery: { "api-version": "preview" } });
    try {
      suite.upstream.received.length = 0;
      const res = await rawRequest(azure.url, { method: "POST", path: "/openai/v1/responses?api-version=2020-01-01&x=1", headers: { "api-key": TOKEN }, body: "{}" });
      expect(res.status).toBe(200);
      expect(suite.upstream.received.map((r) => r.url)).toEqual(["/openai/v1/responses?x=1&api-version=preview"]);
    } finally {
      await azure.close();
    }
  });

  it.each([
    ["GET", "/v1/files"],
    ["POST", "/v1/messages/batches"],
    ["GET", "/v1/messages"],
    ["DELETE", "/v1/models/claude"],
    ["GET", "/"],
    ["GET", "/v1/messagesX"],
    ["POST", "//v1/messages"],
    ["GET", "/api/oauth/profile"],
  ])("refuses %s %s, outside the Messages API, with 403", async (method, path) => {
    const res = await rawRequest(suite.gateway.url, { method, path, headers: auth, ...(method === "POST" ? { body: "{}" } : {}) });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ type: "error", error: { type: "permission_error" } });
    expect(suite.upstream.received).toHaveLength(0);
  });

  it.each([
    "/v1/messages/../../admin",
    "/v1/models/../messages",
    "/v1/models/%2e%2e/messages",
    "/v1/models/%2E%2e%2Fmessages",
    "/v1/models/%252e%252e/messages",
    "/v1/models/.%2e/messages",
    "/v1/models/..%5cmessages",
    "/v1/models/a\\..\\b",
    "/v1/models/%ff%fe",
  ])("refuses the traversal %s with 403", async (path) => {
    const res = await rawRequest(suite.gateway.url, { path, headers: auth });
    expect(res.status).toBe(403);
    expect(suite.upstream.received).toHaveLength(0);
  });

  it("refuses absolute-form requests, whatever host they and the Host header name", async () => {
    const other = await rawExchange(suite.gateway.url, `POST http://api.anthropic.com/v1/messages HTTP/1.1\r\nhost: api.anthropic.com\r\nx-api-key: ${TOKEN}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`);
    expect(other).toMatch(/^HTTP\/1\.1 403/);
    const sneaky = await rawExchange(suite.gateway.url, `POST http://evil.example/v1/messages HTTP/1.1\r\nhost: ${new URL(suite.gateway.url).host}\r\nx-api-key: ${TOKEN}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`);
    expect(sneaky).toMatch(/^HTTP\/1\.1 403/);
    expect(suite.upstream.received).toHaveLength(0);
    const self = await rawExchange(suite.gateway.url, `POST ${suite.gateway.url}/v1/messages HTTP/1.1\r\nhost: ${new URL(suite.gateway.url).host}\r\nx-api-key: ${TOKEN}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`);
    expect(self).toMatch(/^HTTP\/1\.1 403/);
    expect(suite.upstream.received).toHaveLength(0);
  });

  it("refuses CONNECT and upgrades with 403, even with the token", async () => {
    const connect = await rawExchange(suite.gateway.url, `CONNECT api.anthropic.com:443 HTTP/1.1\r\nhost: api.anthropic.com:443\r\nx-api-key: ${TOKEN}\r\n\r\n`);
    expect(connect).toMatch(/^HTTP\/1\.1 403/);
    const upgrade = await rawExchange(
      suite.gateway.url,
      `GET /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: ${TOKEN}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(upgrade).toMatch(/^HTTP\/1\.1 403/);
    expect(suite.upstream.received).toHaveLength(0);
    expect(suite.gateway.records.filter((r) => r.type === "gatewayRefused")).toHaveLength(2);
  });

  it("refuses a request body over the cap with 413", async () => {
    const small = await startTestGateway({ protocol: "anthropic", upstream: suite.upstream.url, allowInsecureUpstream: true, maxRequestBytes: 1000 });
    try {
      const res = await fetch(`${small.url}/v1/messages`, { method: "POST", headers: auth, body: "x".repeat(5000) });
      expect(res.status).toBe(413);
      expect(suite.upstream.received).toHaveLength(0);
    } finally {
      await small.close();
    }
  });
});

describe("the API paths of each protocol", () => {
  it.each([
    ["openai", "POST", "/v1/responses", 200],
    ["openai", "POST", "/v1/chat/completions", 200],
    ["openai", "GET", "/v1/models", 200],
    ["openai", "POST", "/v1/files", 403],
    ["openai", "POST", "/v1/fine_tuning/jobs", 403],
    ["openai", "POST", "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", 200],
    ["google", "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", 200],
    ["google", "POST", "/v1beta/files", 403],
    ["google", "POST", "/v1beta/tunedModels/x:generateContent", 403],
    ["ollama", "POST", "/api/chat", 200],
    ["ollama", "POST", "/v1/chat/completions", 200],
    ["ollama", "POST", "/api/pull", 403],
    ["ollama", "DELETE", "/api/delete", 403],
    ["ollama", "POST", "/api/create", 403],
  ] as const)("%s: %s %s -> %i", async (protocol, method, path, status) => {
    const upstream = await startUpstream();
    const gateway = await startTestGateway({ protocol, upstream: upstream.url, allowInsecureUpstream: true });
    try {
      const res = await rawRequest(gateway.url, { method, path, headers: { authorization: `Bearer ${TOKEN}` }, ...(method === "POST" ? { body: "{}" } : {}) });
      expect(res.status).toBe(status);
      expect(upstream.received).toHaveLength(status === 200 ? 1 : 0);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

// TLS to the upstream and streaming through the gateway.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TlsMaterial } from "./gateway-harness.ts";
import { TOKEN, eventually, makeTlsMaterial, startTestGateway, startUpstream } from "./gateway-harness.ts";

describe("TLS to the upstream", () => {
  let tls: TlsMaterial;
  beforeAll(async () => {
    tls = await makeTlsMaterial();
  });
  afterAll(() => tls.cleanup());

  it("forwards to an upstream whose certificate chains to the configured CA", async () => {
    const upstream = await startUpstream(undefined, { key: tls.serverKey, cert: tls.serverCert });
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: upstream.url, caFile: tls.caCert });
    try {
      const res = await fetch(`${gateway.url}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: "{}" });
      expect(res.status).toBe(200);
      expect(upstream.received).toHaveLength(1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it.each([
    ["a certificate no configured CA signed", "rogue"],
    ["a CA-signed certificate without the CA configured", "unconfigured"],
  ])("refuses an upstream with %s (502, nothing sent)", async (_name, which) => {
    const files = which === "rogue" ? { key: tls.rogueKey, cert: tls.rogueCert } : { key: tls.serverKey, cert: tls.serverCert };
    const upstream = await startUpstream(undefined, files);
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: upstream.url, ...(which === "rogue" ? { caFile: tls.caCert } : {}) });
    try {
      const res = await fetch(`${gateway.url}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: "{}" });
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ type: "error", error: { type: "api_error" } });
      expect(upstream.received).toHaveLength(0);
      await eventually(() => gateway.usageRecords().length === 1);
      expect(gateway.usageRecords()[0]).toMatchObject({ status: 502 });
      expect(gateway.usageRecords()[0]!.usage).toBeUndefined();
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("refuses a plain-http upstream unless the config allows it", async () => {
    await expect(startTestGateway({ protocol: "anthropic", upstream: "http://127.0.0.1:1" })).rejects.toThrow(/allowInsecureUpstream/);
  });
});

describe("streaming through the gateway", () => {
  it("passes SSE through chunk by chunk on a kept-alive connection", async () => {
    let release: () => void = () => {};
    const upstream = await startUpstream((_req, res) => {
      const released = new Promise<void>((resolve) => (release = resolve));
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write('event: message_start\ndata: {"type":"message_start"}\n\n');
      // The second event only goes out once the client has seen the first: a buffering gateway would deadlock here.
      void released.then(() => {
        res.write('event: message_stop\ndata: {"type":"message_stop"}\n\n');
        res.end();
      });
    });
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: upstream.url, allowInsecureUpstream: true });
    try {
      for (let round = 0; round < 2; round += 1) {
        const res = await fetch(`${gateway.url}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: '{"stream":true}' });
        expect(res.headers.get("content-type")).toBe("text/event-stream");
        const reader = res.body!.getReader();
        const first = await reader.read();
        expect(new TextDecoder().decode(first.value)).toContain("message_start");
        expect(new TextDecoder().decode(first.value)).not.toContain("message_stop");
        release();
        let rest = "";
        for (let part = await reader.read(); !part.done; part = await reader.read()) rest += new TextDecoder().decode(part.value);
        expect(rest).toContain("message_stop");
      }
      await eventually(() => gateway.usageRecords().length === 2);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("stops the upstream stream when the agent hangs up, and still records the request", async () => {
    let upstreamClosed = false;
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('event: ping\ndata: {"type":"ping"}\n\n');
      res.on("close", () => (upstreamClosed = true));
    });
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: upstream.url, allowInsecureUpstream: true });
    try {
      const controller = new AbortController();
      const res = await fetch(`${gateway.url}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: "{}", signal: controller.signal });
      await res.body!.getReader().read();
      controller.abort();
      await eventually(() => upstreamClosed && gateway.usageRecords().length === 1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("ends the upstream call when the agent hangs up before the model answered", async () => {
    let upstreamClosed = false;
    const upstream = await startUpstream((_req, res) => {
      res.on("close", () => (upstreamClosed = true));
    });
    const gateway = await startTestGateway({ protocol: "anthropic", upstream: upstream.url, allowInsecureUpstream: true });
    try {
      const controller = new AbortController();
      const pending = fetch(`${gateway.url}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: "{}", signal: controller.signal });
      await eventually(() => upstream.received.length === 1);
      controller.abort();
      await expect(pending).rejects.toThrow();
      await eventually(() => upstreamClosed);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

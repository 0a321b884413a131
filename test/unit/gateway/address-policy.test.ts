// Issue 14: which upstream addresses a tenant's run may reach (src/gateway/address-policy.ts), and the gateway's
// connect-time filter, which holds against a name rebound to a private address after the server checked it.
import type { LookupAddress } from "node:dns";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressKind, isAllowedUpstream, isPublicAddress, parseAllowEntry, publicOnlyLookup, type ResolveAll } from "../../../src/gateway/address-policy.ts";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";
import { loadPriceTable } from "../../../src/gateway/pricing.ts";
import { startGateway } from "../../../src/gateway/server.ts";
import type { GatewayRecord } from "../../../src/gateway/types.ts";
import { staticHeaderAuth } from "../../../src/gateway/upstream-auth.ts";
import { TOKEN, eventually, startUpstream, type FakeUpstream } from "./gateway-harness.ts";

describe("addressKind", () => {
  it.each([
    ["169.254.169.254", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["168.63.129.16", "metadata"],
    ["::ffff:169.254.169.254", "metadata"],
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["::ffff:10.1.2.3", "private"],
    ["::ffff:c0a8:101", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fec0::1", "private"],
    ["169.254.1.1", "link-local"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["100.64.0.1", "shared (CGNAT)"],
    ["100.127.255.254", "shared (CGNAT)"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["0.1.2.3", "reserved"],
    ["240.0.0.1", "reserved"],
    ["192.0.0.8", "reserved"],
    ["::1.2.3.4", "reserved"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["ff02::1", "multicast"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.200", "documentation"],
    ["198.18.0.1", "documentation"],
    ["2001:db8::1", "documentation"],
    ["64:ff9b::a00:1", "translation"],
    ["2002:a00:1::1", "translation"],
    ["2001:0:4136:e378::1", "translation"],
    ["1.1.1.1", "public"],
    ["8.8.8.8", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["169.255.0.1", "public"],
    ["::ffff:1.1.1.1", "public"],
    ["2606:4700::1111", "public"],
    ["2a00:1450:4001::200e", "public"],
  ])("%s is %s", (ip, kind) => {
    expect(addressKind(ip)).toBe(kind);
    expect(isPublicAddress(ip)).toBe(kind === "public");
  });

  it("throws on a host name", () => {
    expect(() => addressKind("example.com")).toThrow(/not an IP address/);
  });
});

describe("--allow-private-upstream entries", () => {
  it.each([
    ["host.docker.internal:8080", { host: "host.docker.internal", port: 8080 }],
    ["Models.Internal", { host: "models.internal" }],
    ["10.0.0.5:80", { host: "10.0.0.5", port: 80 }],
    ["[::1]:9", { host: "::1", port: 9 }],
    ["[fd00::5]", { host: "fd00::5" }],
    ["fd00::5", { host: "fd00::5" }],
  ])("reads %s", (entry, parsed) => {
    expect(parseAllowEntry(entry)).toEqual(parsed);
  });

  it.each(["", "http://x:1", "x:99999", "x/y", "a b", "user@x"])("refuses %j", (entry) => {
    expect(parseAllowEntry(entry)).toBeUndefined();
  });

  it("matches host and port, the scheme's default port when the URL has none", () => {
    const allow = ["host.docker.internal:8080", "models.internal", "[::1]:443", "10.0.0.5:80"];
    expect(isAllowedUpstream(new URL("http://host.docker.internal:8080/v1"), allow)).toBe(true);
    expect(isAllowedUpstream(new URL("http://HOST.docker.internal:8080/"), allow)).toBe(true);
    expect(isAllowedUpstream(new URL("http://host.docker.internal:8081/"), allow)).toBe(false);
    expect(isAllowedUpstream(new URL("http://models.internal:1234/"), allow)).toBe(true);
    expect(isAllowedUpstream(new URL("https://[::1]/"), allow)).toBe(true);
    expect(isAllowedUpstream(new URL("http://10.0.0.5/"), allow)).toBe(true);
    expect(isAllowedUpstream(new URL("https://10.0.0.5/"), allow)).toBe(false);
    expect(isAllowedUpstream(new URL("http://other.internal/"), allow)).toBe(false);
  });
});

/** A resolver that answers `addresses` for every name. */
const answering = (...addresses: string[]): ResolveAll => (_host, _options, callback) =>
  callback(null, addresses.map((address): LookupAddress => ({ address, family: address.includes(":") ? 6 : 4 })));

function lookupOnce(resolve: ResolveAll, all: boolean): Promise<{ error: NodeJS.ErrnoException | null; address: unknown }> {
  return new Promise((done) => publicOnlyLookup(resolve)("api.example.com", { all }, (error, address) => done({ error, address })));
}

describe("the gateway's connect-time lookup", () => {
  it("passes public answers on, in both callback forms", async () => {
    expect(await lookupOnce(answering("1.1.1.1", "2606:4700::1111"), true)).toEqual({ error: null, address: [{ address: "1.1.1.1", family: 4 }, { address: "2606:4700::1111", family: 6 }] });
    expect(await lookupOnce(answering("1.1.1.1"), false)).toEqual({ error: null, address: "1.1.1.1" });
  });

  it.each([["10.0.0.1"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["1.1.1.1", "192.168.0.1"]])("refuses a name answering %s", async (...addresses) => {
    const { error } = await lookupOnce(answering(...addresses), true);
    expect(error?.code).toBe("EPRIVATEUPSTREAM");
    expect(error?.message).toMatch(/api\.example\.com resolves to .+ address; the gateway connects only to public addresses/);
  });

  it("passes a resolver's error on", async () => {
    const failing: ResolveAll = (_host, _options, callback) => callback(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }), []);
    expect((await lookupOnce(failing, true)).error?.code).toBe("ENOTFOUND");
  });
});

describe("a gateway with refusePrivateUpstreams", () => {
  let upstream: FakeUpstream;
  let port: string;
  beforeAll(async () => {
    upstream = await startUpstream();
    port = new URL(upstream.url).port;
  });
  afterAll(() => upstream.close());

  async function gatewayTo(upstreamUrl: string, allow: string[], resolve?: ResolveAll) {
    const records: GatewayRecord[] = [];
    const config = parseGatewayConfig({ protocol: "anthropic", upstream: upstreamUrl, allowInsecureUpstream: true, refusePrivateUpstreams: { allow }, listen: { host: "127.0.0.1", port: 0 } }, "test");
    const gateway = await startGateway({ config, token: TOKEN, auth: staticHeaderAuth({ "x-api-key": "k" }), priceTable: loadPriceTable(), emit: (r) => records.push(r), ...(resolve ? { resolve } : {}) });
    const call = () => fetch(`http://127.0.0.1:${gateway.port}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: "{}" });
    return { records, call, close: () => gateway.close(100) };
  }

  it("does not connect to a name that resolves to a private address when it connects (DNS rebinding)", async () => {
    // The name answers 127.0.0.1, where the fake upstream listens: what a name rebound after the server's check does.
    const gateway = await gatewayTo(`http://rebound.example:${port}`, [], answering("127.0.0.1"));
    try {
      const res = await gateway.call();
      expect(res.status).toBe(502);
      expect(JSON.stringify(await res.json())).toContain("EPRIVATEUPSTREAM");
      expect(upstream.received).toHaveLength(0);
      await eventually(() => gateway.records.some((r) => r.type === "gatewayWarning"));
      expect(gateway.records.find((r) => r.type === "gatewayWarning")).toMatchObject({ message: expect.stringContaining("rebound.example resolves to 127.0.0.1, a loopback address") });
    } finally {
      await gateway.close();
    }
  });

  it("refuses localhost through the real resolver", async () => {
    const gateway = await gatewayTo(`http://localhost:${port}`, []);
    try {
      expect((await gateway.call()).status).toBe(502);
      expect(upstream.received).toHaveLength(0);
    } finally {
      await gateway.close();
    }
  });

  it("connects to an upstream the operator allowed, private or not", async () => {
    const gateway = await gatewayTo(`http://localhost:${port}`, [`localhost:${port}`]);
    try {
      expect((await gateway.call()).status).toBe(200);
      expect(upstream.received).toHaveLength(1);
    } finally {
      upstream.received.length = 0;
      await gateway.close();
    }
  });

  it("refuses a private IP literal in its config (no lookup would see it), unless allowed", () => {
    const config = (upstreamUrl: string, allow: string[]) => ({ protocol: "anthropic", upstream: upstreamUrl, refusePrivateUpstreams: { allow }, listen: { host: "127.0.0.1", port: 0 } });
    expect(() => parseGatewayConfig(config("https://169.254.169.254", []), "c.json")).toThrow(/upstream is a cloud metadata address, refused by refusePrivateUpstreams/);
    expect(() => parseGatewayConfig(config("https://[::ffff:10.0.0.1]:8443", []), "c.json")).toThrow(/upstream is a private address/);
    expect(parseGatewayConfig(config("https://10.0.0.1:8443", ["10.0.0.1:8443"]), "c.json").upstream.host).toBe("10.0.0.1:8443");
    expect(parseGatewayConfig(config("https://1.1.1.1", []), "c.json").upstream.host).toBe("1.1.1.1");
    // The CLI's own runs leave the field out: a local model server is the user's choice.
    expect(parseGatewayConfig({ protocol: "anthropic", upstream: "https://127.0.0.1:9", listen: { host: "127.0.0.1", port: 0 } }, "c.json").upstream.host).toBe("127.0.0.1:9");
  });
});

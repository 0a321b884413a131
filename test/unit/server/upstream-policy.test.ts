// Issue 14: a tenant's config may name only public HTTPS upstreams, unless the operator allowed one with
// --allow-private-upstream (src/server/upstream-policy.ts). DNS is injected: no test here resolves a real name.
import type { LookupAddress } from "node:dns";
import { describe, expect, it } from "vitest";
import { UpstreamNotAllowedError } from "../../../src/errors.ts";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.ts";
import { perstack } from "../../../src/runtimes/perstack.ts";
import { resolveRuntime } from "../../../src/config/resolve.ts";
import { checkAllowEntries, checkUpstream, checkUpstreams, upstreamsOf, type LookupAll } from "../../../src/server/upstream-policy.ts";
import { planInput } from "../../support/plan-input.ts";

/** Answers `table[host]`, and fails the test for a name it does not know (a lookup that should not happen). */
function lookupFrom(table: Record<string, string[]>): LookupAll & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (host: string): Promise<LookupAddress[]> => {
    asked.push(host);
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(lookup, { asked });
}

const dns = lookupFrom({
  "api.example.com": ["1.1.1.1", "2606:4700::1111"],
  "internal.example.com": ["10.0.0.1"],
  "mixed.example.com": ["1.1.1.1", "169.254.169.254"],
  "mapped.example.com": ["::ffff:192.168.0.10"],
});

const check = (url: string, allow: string[] = []) => checkUpstream(url, { allow, lookup: dns });

describe("checkUpstream", () => {
  it("accepts https on a name whose every address is public, and public IP literals", async () => {
    await expect(check("https://api.example.com/v1")).resolves.toBeUndefined();
    await expect(check("https://1.1.1.1/")).resolves.toBeUndefined();
    await expect(check("https://[2606:4700::1111]:8443/")).resolves.toBeUndefined();
  });

  it.each([
    ["https://internal.example.com/", /internal\.example\.com resolves to 10\.0\.0\.1, a private address/],
    ["https://mixed.example.com/", /resolves to 169\.254\.169\.254, a cloud metadata address/],
    ["https://mapped.example.com/", /resolves to ::ffff:192\.168\.0\.10, a private address/],
    ["http://169.254.169.254/", /169\.254\.169\.254 is a cloud metadata address/],
    ["https://127.0.0.1:9/", /127\.0\.0\.1 is a loopback address/],
    ["https://2130706433/", /127\.0\.0\.1 is a loopback address/],
    ["https://[::1]/", /::1 is a loopback address/],
    ["https://[::ffff:10.0.0.1]/", /::ffff:a00:1 is a private address/],
    ["https://100.64.1.1/", /100\.64\.1\.1 is a shared \(CGNAT\) address/],
    ["http://api.example.com/", /http is refused, only https/],
    ["ftp://api.example.com/", /ftp is refused, only https/],
    ["https://nowhere.example.com/", /nowhere\.example\.com does not resolve \(ENOTFOUND\)/],
  ])("refuses %s", async (url, why) => {
    const refusal = check(url);
    await expect(refusal).rejects.toBeInstanceOf(UpstreamNotAllowedError);
    await expect(refusal).rejects.toThrow(why);
    // One line: the key path, the value, and what to do.
    await expect(refusal).rejects.toThrow(new RegExp(`^provider\\.setting\\.baseUrl "${url.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}": .*; use a public HTTPS endpoint, or ask the operator to allow it with perstack serve --allow-private-upstream \\S+$`));
  });

  it("names the entry that would allow it", async () => {
    await expect(check("http://169.254.169.254/")).rejects.toThrow(/--allow-private-upstream 169\.254\.169\.254:80$/);
    await expect(check("https://internal.example.com/")).rejects.toThrow(/--allow-private-upstream internal\.example\.com:443$/);
  });

  it("lets the operator's host[:port] through, plain http included, without a lookup", async () => {
    dns.asked.length = 0;
    await expect(check("http://host.docker.internal:8080/v1", ["host.docker.internal:8080"])).resolves.toBeUndefined();
    await expect(check("https://internal.example.com/", ["internal.example.com"])).resolves.toBeUndefined();
    await expect(check("http://10.0.0.5:11434/api", ["10.0.0.5:11434"])).resolves.toBeUndefined();
    expect(dns.asked).toEqual([]);
    // Another port of an allowed host:port is not allowed.
    await expect(check("http://host.docker.internal:8081/", ["host.docker.internal:8080"])).rejects.toThrow(/--allow-private-upstream host\.docker\.internal:8081/);
  });

  it("rejects a malformed --allow-private-upstream at start", () => {
    expect(checkAllowEntries(["a.internal:80", "[::1]:9"])).toEqual(["a.internal:80", "[::1]:9"]);
    expect(() => checkAllowEntries(["http://a.internal"])).toThrow(/--allow-private-upstream "http:\/\/a\.internal": give a host or host:port/);
  });
});

describe("the upstreams a plan would contact", () => {
  const toml = (baseUrl?: string) => `
[provider]
providerName = "anthropic"
${baseUrl ? `[provider.setting]\nbaseUrl = "${baseUrl}"` : ""}
[experts."main"]
description = "Main"
instruction = "Be useful."
[experts."main".skills."search"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@scope/search@1.0.0"
allowedDomains = ["internal.example.com"]
`;

  it("is the gateway's upstream: the configured baseUrl, else the provider's API host; never the gateway itself", () => {
    expect(upstreamsOf(buildSandboxPlan(planInput(toml("http://169.254.169.254/v1"))))).toEqual([{ key: "provider.setting.baseUrl", url: "http://169.254.169.254" }]);
    expect(upstreamsOf(buildSandboxPlan(planInput(toml())))).toEqual([{ key: "provider.setting.baseUrl", url: "https://api.anthropic.com" }]);
    const engine = buildSandboxPlan(planInput(toml("https://models.example.com/v1"), { adapter: perstack, runtime: resolveRuntime("perstack", undefined) }));
    expect(upstreamsOf(engine)).toEqual([{ key: "provider.setting.baseUrl", url: "https://models.example.com" }]);
  });

  it("checkUpstreams refuses a plan whose baseUrl is private and accepts a public one", async () => {
    await expect(checkUpstreams(buildSandboxPlan(planInput(toml("https://internal.example.com/v1"))), { allow: [], lookup: dns })).rejects.toThrow(
      /^provider\.setting\.baseUrl "https:\/\/internal\.example\.com": internal\.example\.com resolves to 10\.0\.0\.1/,
    );
    await expect(checkUpstreams(buildSandboxPlan(planInput(toml("https://api.example.com/v1"))), { allow: [], lookup: dns })).resolves.toBeUndefined();
  });

  it("plans a gateway that refuses private addresses itself only when asked (perstack serve), with the allow list", () => {
    const served = buildSandboxPlan(planInput(toml("https://api.example.com/v1"), { upstreamPolicy: { allow: ["host.docker.internal:8080"] } }));
    expect(served.gateway?.config.refusePrivateUpstreams).toEqual({ allow: ["host.docker.internal:8080"] });
    expect(buildSandboxPlan(planInput(toml("http://localhost:8080/v1"))).gateway?.config).not.toHaveProperty("refusePrivateUpstreams");
  });
});

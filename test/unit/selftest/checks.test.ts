// What the selftest concludes from a probe report: every property the README promises has a row, a broken one
// fails its own row, and a report the agent could have forged is read defensively.
import { describe, expect, it } from "vitest";
import { evaluate, readProbeReport, type SelftestContext } from "../../../src/selftest/checks.js";
import type { ProbeReport } from "../../../src/selftest/probe.js";

const failed = (error: string, ms = 3) => ({ ok: false, error, ms });
const answered = (status: string) => ({ ok: true, ms: 2, detail: status });

const good: ProbeReport = {
  uid: 1000,
  gid: 1000,
  status: { CapEff: "0000000000000000", CapPrm: "0000000000000000", CapBnd: "0000000000000000", CapAmb: "0000000000000000", NoNewPrivs: "1" },
  rootWrite: failed("EROFS"),
  rootMount: "ro",
  dockerSockets: [],
  dnsSystem: failed("EAI_AGAIN", 4),
  dnsEmbedded: failed("ETIMEOUT", 1000),
  hostGateway: failed("ETIMEDOUT", 3000),
  internalGateway: { address: "172.19.0.1", ...failed("EHOSTUNREACH") },
  ipv6: { disabled: "1", addresses: [], route: failed("EADDRNOTAVAIL") },
  proxy: { notAllowlisted: answered("403"), otherPort: answered("403"), ipLiteral: answered("403"), plainHttp: answered("403") },
  limits: { pidsMax: "512", memoryMax: "4294967296", cpuMax: "200000 100000" },
  policyWrites: [{ path: "perstack.toml", ...failed("EROFS") }],
  env: ["HOME", "PATH", "ANTHROPIC_API_KEY"],
};

const context: SelftestContext = {
  hostGateway: "172.17.0.1",
  hostPort: 4000,
  internalGateway: "172.19.0.1",
  pidsLimit: 512,
  memoryBytes: 4294967296,
  cpus: 2,
  allowedEnv: new Set(["HOME", "PATH", "ANTHROPIC_API_KEY"]),
  canary: "CANARY",
  proxyReasons: new Map([
    ["no.test:443", "not-allowlisted"],
    ["api.example:8443", "port-not-allowed"],
    ["198.51.100.7:443", "ip-literal"],
    ["api.example:80", "plain-http-not-allowed"],
  ]),
  targets: { notAllowlisted: "no.test", allowlisted: "api.example", ipLiteral: "198.51.100.7", externalName: "example.com" },
  policyNotes: [],
  dnsBudgetMs: 1000,
};

const failing = (report: ProbeReport, ctx: SelftestContext = context) => evaluate(report, ctx).filter((c) => !c.ok).map((c) => c.name);

describe("selftest checks", () => {
  it("all pass on a sound sandbox, one row per property", () => {
    const checks = evaluate(good, context);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks).toHaveLength(18);
  });

  it.each<[string, Partial<ProbeReport> | ((r: ProbeReport) => ProbeReport), RegExp]>([
    ["root", { uid: 0 }, /non-root/],
    ["a capability left", (r) => ({ ...r, status: { ...r.status, CapBnd: "00000000a80425fb" } }), /no capabilities/],
    ["writable root", { rootWrite: { ok: true, ms: 1 } }, /read-only root/],
    ["a socket", { dockerSockets: ["/var/run/docker.sock"] }, /no Docker socket/],
    ["DNS resolves", { dnsSystem: { ok: true, ms: 3, detail: "93.184.215.14" } }, /DNS through resolv\.conf/],
    ["DNS hangs", { dnsSystem: failed("EAI_AGAIN", 20_000) }, /DNS through resolv\.conf/],
    ["embedded DNS forwards", { dnsEmbedded: { ok: true, ms: 3, detail: "1.2.3.4" } }, /127\.0\.0\.11/],
    ["docker0 reachable", { hostGateway: { ok: true, ms: 1, detail: "connected" } }, /docker0/],
    ["internal gateway reachable", { internalGateway: { address: "172.19.0.1", ok: true, ms: 1 } }, /internal network's gateway/],
    ["probe aimed elsewhere", { internalGateway: { address: "10.9.9.9", ...failed("EHOSTUNREACH") } }, /internal network's gateway/],
    ["IPv6 on", { ipv6: { disabled: "0", addresses: ["fe80::1"], route: failed("ENETUNREACH") } }, /no IPv6/],
    ["proxy lets a name through", (r) => ({ ...r, proxy: { ...r.proxy, notAllowlisted: answered("200") } }), /not allowlisted/],
    ["pid limit lost", { limits: { pidsMax: "max", memoryMax: "4294967296", cpuMax: "200000 100000" } }, /pid limit/],
    ["memory limit lost", { limits: { pidsMax: "512", cpuMax: "200000 100000" } }, /memory limit/],
    ["CPU limit lost", { limits: { pidsMax: "512", memoryMax: "4294967296", cpuMax: "-1 100000" } }, /CPU limit/],
    ["extra variable", { env: ["HOME", "PATH", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY"] }, /unnamed host variables/],
    ["canary", { env: ["HOME", "CANARY"] }, /unnamed host variables/],
  ])("%s fails its own row", (_name, change, row) => {
    const report = typeof change === "function" ? change(good) : { ...good, ...change };
    const names = failing(report);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(row);
  });

  it("a proxy refusal that the proxy logged for another reason fails", () => {
    const reasons = new Map(context.proxyReasons);
    reasons.set("198.51.100.7:443", "private-destination");
    expect(failing(good, { ...context, proxyReasons: reasons })).toEqual(["proxy refuses an IP literal"]);
  });

  it("damage to the policy files found on the host fails that row", () => {
    expect(failing(good, { ...context, policyDamage: ".env.local was created" })).toEqual(["policy files and perstack/ are read-only"]);
  });

  it("reads the report defensively", () => {
    const line = (value: unknown) => `noise\n${JSON.stringify({ perstackSelftest: value })}\n`;
    expect(readProbeReport(line(good), "perstackSelftest")).toEqual({ report: good });
    expect(readProbeReport("nothing here", "perstackSelftest")).toMatchObject({ problem: expect.stringMatching(/printed no report/) });
    expect(readProbeReport(line({ ...good, uid: "0" }), "perstackSelftest")).toMatchObject({ problem: expect.stringMatching(/malformed at uid/) });
    expect(readProbeReport(line({ ...good, env: Array(2_000).fill("X") }), "perstackSelftest")).toMatchObject({ problem: expect.stringMatching(/malformed at env/) });
  });
});

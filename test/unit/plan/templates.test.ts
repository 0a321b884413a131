// Hostile values (quotes, newlines, `$`, spaces) through every template: each is escaped or refused, so no value
// can change the meaning of a generated Dockerfile, squid.conf or compose.yaml.
import { BlockList, isIPv4 } from "node:net";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { renderExport, QUERY_PLACEHOLDER } from "../../../src/plan/export-files.js";
import { resolveRuntime } from "../../../src/config/resolve.js";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { runtimeAdapter } from "../../../src/runtimes/registry.js";
import { readTemplateFile, render, shellArg, squidToken, yamlString } from "../../../src/plan/templates.js";
import { planInput } from "../../support/plan-input.js";

const HOSTILE = [`it's "quoted"`, "line1\nline2", "$HOME ${SECRET} $(rm -rf /) `id`", "spaces and\ttabs", "back\\slash", "# not a comment", "--flag"];

describe("template helpers", () => {
  it("shellArg single-quotes and refuses line breaks", () => {
    expect(shellArg("a b")).toBe("'a b'");
    expect(shellArg(`it's`)).toBe(`'it'\\''s'`);
    expect(() => shellArg("a\nb")).toThrow(/line break/);
  });

  it("yamlString round-trips every hostile value through YAML with compose's $ escaping", () => {
    for (const value of HOSTILE) {
      const parsed = parseYaml(`key: ${yamlString(value)}`) as { key: string };
      expect(parsed.key.replace(/\$\$/g, "$")).toBe(value);
    }
  });

  it("squidToken refuses anything squid would read as syntax", () => {
    expect(squidToken(".example.com")).toBe(".example.com");
    for (const value of ["a b", "a\nhttp_access allow all", "a#b", "x;y", '"q"']) expect(() => squidToken(value)).toThrow(/unsafe/);
  });

  it("squid.conf refuses a hostile host even if validation upstream were bypassed", () => {
    expect(() =>
      render("squid/squid.conf.hbs", { runId: "r", allowlist: ["x"], squidDomains: ["evil.com\nhttp_access allow all"], upstreams: [] }),
    ).toThrow(/unsafe squid.conf value/);
  });

  it("the agent Dockerfile refuses a package spec with a line break", () => {
    expect(() =>
      render(
        "templates/agent.Dockerfile.hbs",
        { baseImage: "b", runtime: "r", hasCaBundle: false, cliSpec: "x", skills: [{ name: "s", dir: "s", packageSpec: "p\nRUN evil", packageName: "p" }] },
        { runtime: "" },
      ),
    ).toThrow(/line break/);
  });
});

describe("squid.conf's egress policy", () => {
  // What squid does with these rules is checked against the real squid in test/e2e/proxy-policy.test.ts.
  const conf = (allowlist: string[], upstreams: object[] = []) =>
    render("squid/squid.conf.hbs", { runId: "r", allowlist, squidDomains: allowlist.map((p) => (p.startsWith("*.") ? p.slice(1) : p)), upstreams });
  const httpAccess = (text: string) => text.split("\n").filter((line) => line.startsWith("http_access "));
  const ipUpstream = { host: "10.0.0.5", port: 8080, scheme: "http", isIp: true };
  const nameUpstream = { host: "host.docker.internal", port: 11434, scheme: "http", isIp: false };

  /** Every value of the private_dst ACL (its lines add up). */
  const privateRanges = (text: string) =>
    text
      .split("\n")
      .filter((line) => line.startsWith("acl private_dst dst "))
      .flatMap((line) => line.split(/\s+/).slice(3));
  const cidr = (range: string) => {
    const [address, prefix] = range.split("/") as [string, string | undefined];
    const type = isIPv4(address) ? ("ipv4" as const) : ("ipv6" as const);
    const bits = prefix === undefined ? (type === "ipv4" ? 32 : 128) : Number(prefix);
    const list = new BlockList();
    list.addSubnet(address, bits, type);
    return { address, type, bits, contains: (other: { address: string; type: "ipv4" | "ipv6" }) => other.type === type && list.check(other.address, type) };
  };

  it("with nothing allowlisted refuses every name before any lookup, and allowlists no placeholder name", () => {
    const text = conf([], [nameUpstream]);
    const directives = text.split("\n").filter((line) => !line.startsWith("#"));
    expect(directives.filter((line) => line.includes(".invalid") || line.startsWith("acl allowlisted "))).toEqual([]);
    expect(httpAccess(text)).toEqual([
      "http_access allow upstream_0_port upstream_0_host why_upstream",
      "http_access deny ip_literal why_ip_literal",
      "http_access deny all why_not_allowlisted",
    ]);
  });

  it("with an allowlist: upstreams first, then literals, names, plain HTTP, ports, private destinations, CONNECT :443", () => {
    const text = conf(["*.example.com", "api.anthropic.com"], [ipUpstream, nameUpstream]);
    expect(text).toContain("acl allowlisted dstdomain -n .example.com api.anthropic.com\n");
    expect(httpAccess(text)).toEqual([
      "http_access allow upstream_0_port ip_literal upstream_0_host why_upstream",
      "http_access allow upstream_1_port upstream_1_host why_upstream",
      "http_access deny ip_literal why_ip_literal",
      "http_access deny !allowlisted why_not_allowlisted",
      "http_access deny !CONNECT why_plain_http",
      "http_access deny !https_port why_port",
      "http_access deny private_dst why_private",
      "http_access allow CONNECT allowlisted https_port why_allowlisted",
      "http_access deny all",
    ]);
  });

  it("tests an IP upstream with dst only for IP literals, so names sent to its port are never looked up", () => {
    const text = conf([], [ipUpstream, nameUpstream]);
    expect(text).toContain("acl upstream_0_host dst 10.0.0.5\n");
    expect(text).toContain("acl upstream_0_port port 8080\n");
    expect(text).toContain("acl upstream_1_host dstdomain -n host.docker.internal\n");
    // ACLs of a rule are tested left to right and stop at the first mismatch.
    expect(httpAccess(text).filter((line) => line.includes("upstream_0_host"))).toEqual([
      "http_access allow upstream_0_port ip_literal upstream_0_host why_upstream",
    ]);
  });

  it("refuses a hostile upstream host or port", () => {
    expect(() => conf([], [{ ...nameUpstream, host: "x\nhttp_access allow all" }])).toThrow(/unsafe squid.conf value/);
    expect(() => conf([], [{ ...ipUpstream, port: "80 all" }])).toThrow(/unsafe squid.conf value/);
  });

  it("refuses every private and special-purpose IPv4 and IPv6 range", () => {
    const configured = privateRanges(conf(["a.example"])).map(cidr);
    const required = [
      ...["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24"],
      ...["192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"],
      ...["::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16"],
      ...["fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"],
    ];
    const uncovered = required.filter((range) => {
      const r = cidr(range);
      return !configured.some((c) => c.bits <= r.bits && c.contains(r));
    });
    expect(uncovered).toEqual([]);
    // Public addresses stay reachable.
    for (const address of ["1.2.3.4", "8.8.8.8", "2606:4700::1111", "2a00:1450::1"]) {
      expect(configured.filter((c) => c.contains(cidr(address))), address).toEqual([]);
    }
  });

  it("lists no IPv4-mapped range (squid reads ::ffff:0:0/96 as every IPv4 address) and no overlapping ranges", () => {
    const ranges = privateRanges(conf(["a.example"]));
    expect(ranges.filter((range) => /^::ffff:/i.test(range))).toEqual([]);
    // Squid keeps only one of two overlapping entries of an ACL, and says so only in a warning.
    const configured = ranges.map(cidr);
    const overlaps = configured.flatMap((a, i) =>
      configured.slice(i + 1).filter((b) => a.contains(b) || b.contains(a)).map((b) => `${a.address}/${a.bits} ~ ${b.address}/${b.bits}`),
    );
    expect(overlaps).toEqual([]);
  });
});

describe("the perstack runtime's partial", () => {
  it("interpolates nothing, so no value can reach it", () => {
    expect(readTemplateFile("templates/runtimes/perstack.hbs")).not.toContain("{{");
  });
});

describe("export with hostile values", () => {
  const instruction = HOSTILE.join(" | ");
  const toml = `[experts."main"]\ninstruction = ${JSON.stringify(instruction)}\n[experts."main".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "srv"\nrequiredEnv = ["S_KEY"]\n`;
  const plan = buildSandboxPlan(planInput(toml, { query: QUERY_PLACEHOLDER, workspace: "/work $pace/it's", perstackDir: "/elsewhere/perstack" }));
  const files = Object.fromEntries(renderExport(plan).map((f) => [f.path, f.content]));
  const compose = parseYaml(files["compose.yaml"]!) as {
    services: {
      agent: { command: string[]; environment: Record<string, string>; volumes: string[] };
      gateway: { environment: Record<string, string>; networks: unknown };
    };
  };

  it("writes the files docker-compose needs", () => {
    const names = Object.keys(files);
    expect(names.filter((f) => !f.startsWith("gateway/")).sort()).toEqual(
      ["agent/Dockerfile", "agent/agent-entrypoint.sh", "agent/link-skill-bin.mjs", "allowlist.txt", "compose.yaml", "gateway.json", "proxy/Dockerfile", "proxy/entrypoint.sh", "resolv.conf", "squid.conf"].sort(),
    );
    // The provider gateway's image: its Dockerfile, program and the price table.
    // (Its build context is ./gateway, whose Dockerfile copies from gateway/ inside it.)
    expect(names).toEqual(expect.arrayContaining(["gateway/Dockerfile", "gateway/gateway/package.json", "gateway/gateway/src/gateway/main.js", "gateway/gateway/pricing/prices.json"]));
  });

  it("keeps the instruction intact (compose $ escaping only) and the query as ${PERSTACK_QUERY}", () => {
    const command = compose.services.agent.command;
    const prompt = command[command.indexOf("--append-system-prompt") + 1]!;
    expect(prompt.replace(/\$\$/g, "$")).toBe(instruction);
    expect(command[command.length - 1]).toBe("${PERSTACK_QUERY}");
  });

  it("references secrets by name only and escapes the workspace default path", () => {
    // The agent holds the gateway token; the real key is referenced on the gateway service only.
    expect(compose.services.agent.environment.ANTHROPIC_API_KEY).toBe("${PERSTACK_GATEWAY_TOKEN}");
    expect(compose.services.gateway.environment.ANTHROPIC_API_KEY).toBe("${ANTHROPIC_API_KEY}");
    expect(compose.services.gateway.environment.PERSTACK_GATEWAY_TOKEN).toBe("${PERSTACK_GATEWAY_TOKEN}");
    expect(compose.services.gateway.networks).toEqual({ egress: { aliases: ["perstack-gateway"] } });
    expect(compose.services.agent.environment.S_KEY).toBe("${S_KEY}");
    expect(compose.services.agent.volumes[0]).toBe("${PERSTACK_WORKSPACE:-/work $$pace/it's}:/workspace:rw");
  });
});

describe("export of a google-vertex run", () => {
  const toml = `[provider]\nproviderName = "google-vertex"\n[provider.setting]\nproject = "acme-prod"\nlocation = "us-central1"\n[experts."main"]\ninstruction = "x"\n`;
  const plan = buildSandboxPlan(planInput(toml, { runtime: resolveRuntime("perstack", undefined), adapter: runtimeAdapter("perstack"), query: QUERY_PLACEHOLDER }));
  const files = Object.fromEntries(renderExport(plan).map((f) => [f.path, f.content]));
  const compose = parseYaml(files["compose.yaml"]!) as { services: { agent: { environment: Record<string, string> }; gateway: { environment: Record<string, string> } } };

  it("gives the gateway the credentials file's content by name, and the agent only the token", () => {
    expect(compose.services.gateway.environment.PERSTACK_GATEWAY_GOOGLE_CREDENTIALS).toBe("${PERSTACK_GATEWAY_GOOGLE_CREDENTIALS}");
    expect(compose.services.agent.environment.GOOGLE_VERTEX_API_KEY).toBe("${PERSTACK_GATEWAY_TOKEN}");
    expect(Object.keys(compose.services.agent.environment).filter((n) => n.startsWith("GOOGLE_") && n !== "GOOGLE_VERTEX_API_KEY")).toEqual([]);
    expect(JSON.parse(files["gateway.json"]!)).toMatchObject({ protocol: "vertex", provider: "google-vertex", upstream: "https://us-central1-aiplatform.googleapis.com", vertex: { project: "acme-prod", location: "us-central1" } });
    expect(files["compose.yaml"]).toContain("PERSTACK_GATEWAY_GOOGLE_CREDENTIALS");
  });
});

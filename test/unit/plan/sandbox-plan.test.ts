import { describe, expect, it } from "vitest";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { mergeAllowlist } from "../../../src/plan/allowlist.js";
import { planInput } from "../../support/plan-input.js";

const toml = `
[provider]
providerName = "anthropic"
[experts."main"]
description = "Main"
instruction = "Be useful."
delegates = ["helper"]
[experts."main".skills."search"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@scope/search-server@1.2.3"
requiredEnv = ["SEARCH_KEY"]
allowedDomains = ["api.search.example", "*.cdn.example", "x.cdn.example"]
omit = ["dangerous"]
[experts."helper"]
description = "Helps with sub-tasks."
instruction = "Help."
[experts."helper".skills."db"]
type = "mcpStdioSkill"
command = "npx"
args = ["-y", "db-server", "--readonly"]
requiredEnv = ["DB_URL"]
allowedDomains = ["db.example.org"]
`;

describe("SandboxPlan", () => {
  const plan = buildSandboxPlan(planInput(toml, { envNames: ["EXTRA_VAR"] }));

  it("merges the allowlist from the expert, its delegates and the provider, de-duplicating wildcards", () => {
    expect(plan.proxy.allowlist).toEqual(["*.cdn.example", "api.search.example", "db.example.org"]);
    // The provider is reached through the run's gateway: squid's one upstream.
    expect(plan.proxy.upstreams).toEqual([{ host: "perstack-gateway", port: 8080, scheme: "http", isIp: false }]);
  });

  it("carries variable names only: provider key, requiredEnv of expert and delegates, --env, proxy", () => {
    const hostNames = plan.agent.env.filter((e) => e.source === "host").map((e) => e.name);
    expect(hostNames).toEqual(["SEARCH_KEY", "DB_URL", "EXTRA_VAR"]);
    expect(plan.agent.env.find((e) => e.name === "ANTHROPIC_API_KEY")).toMatchObject({ source: "token" });
    for (const entry of plan.agent.env) if (entry.source === "host") expect(entry).not.toHaveProperty("value");
    const fixed = Object.fromEntries(plan.agent.env.flatMap((e) => (e.source === "fixed" ? [[e.name, e.value]] : [])));
    expect(fixed.HTTPS_PROXY).toBe("http://perstack-proxy:3128");
    expect(fixed.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC).toBe("1");
  });

  it("runs claude with the instruction, delegates, model, skills and the query last", () => {
    const argv = plan.agent.command;
    expect(argv.slice(0, 5)).toEqual(["claude", "--print", "--output-format", "stream-json", "--verbose"]);
    expect(argv[argv.indexOf("--model") + 1]).toBe("claude-sonnet-4-5");
    expect(argv[argv.indexOf("--permission-mode") + 1]).toBe("bypassPermissions");
    const prompt = argv[argv.indexOf("--append-system-prompt") + 1]!;
    expect(prompt).toContain("Be useful.");
    expect(prompt).toContain("- helper: Helps with sub-tasks.");
    const mcp = JSON.parse(argv[argv.indexOf("--mcp-config") + 1]!);
    expect(mcp.mcpServers.search).toEqual({
      type: "stdio",
      command: expect.stringMatching(/^\/opt\/perstack\/skills\/[^/]+-[0-9a-f]{8}\/entry$/),
      args: [],
      env: { SEARCH_KEY: "${SEARCH_KEY}" },
    });
    expect(argv).toContain("mcp__search__dangerous");
    expect(argv.slice(-2)).toEqual(["--", "do the thing"]);
  });

  it("installs the expert's skill packages in the agent image and tags images by content", () => {
    const agent = plan.images.find((i) => i.role === "agent")!;
    expect(agent.dockerfile).toContain("FROM node:22-bookworm-slim");
    expect(agent.dockerfile).toContain("npm install --no-save --omit=dev '@scope/search-server@1.2.3'");
    expect(agent.dockerfile).toContain("'@anthropic-ai/claude-code@2.1.330'");
    expect(agent.ref).toMatch(/^perstack\/agent-claude-code:[0-9a-f]{16}$/);
    const again = buildSandboxPlan(planInput(toml, { envNames: ["EXTRA_VAR"], runId: "other-run-id-0", query: "another" }));
    expect(again.images.map((i) => i.ref)).toEqual(plan.images.map((i) => i.ref));
    const withCa = buildSandboxPlan(planInput(toml, { caBundle: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n" }));
    expect(withCa.images.find((i) => i.role === "agent")!.ref).not.toBe(agent.ref);
    const otherBase = buildSandboxPlan(planInput(toml, { baseImages: { debian: { role: "debian", ref: "debian:bookworm-slim", id: "sha256:1" }, node: { role: "node", ref: "node:22-bookworm-slim", id: "sha256:2" } } }));
    expect(otherBase.images.find((i) => i.role === "agent")!.ref).not.toBe(agent.ref);
  });

  it("hardens the agent: user, read-only workspace/perstack overlay, tmpfs, limits, refusing resolver", () => {
    expect(plan.agent.user).toBe("1000:1000");
    expect(plan.agent.mounts).toEqual([
      { source: "/project", target: "/workspace", readOnly: false },
      { source: "/project/perstack", target: "/workspace/perstack", readOnly: true },
    ]);
    expect(Object.keys(plan.agent.tmpfs)).toEqual(["/tmp", "/home/agent"]);
    expect(plan.agent.resolvConf).toMatch(/templates\/files\/resolv\.conf$/);
    expect(plan.networks.map((n) => [n.role, n.internal, n.options])).toEqual([
      ["internal", true, { "com.docker.network.bridge.inhibit_ipv4": "true" }],
      ["egress", false, {}],
    ]);
  });

  it("does not mount perstack/ when it lies outside the workspace", () => {
    const outside = buildSandboxPlan(planInput(toml, { workspace: "/elsewhere" }));
    expect(outside.agent.mounts).toEqual([{ source: "/elsewhere", target: "/workspace", readOnly: false }]);
  });

  it("makes a custom baseUrl the explicit upstream in place of the provider's public host", () => {
    const local = buildSandboxPlan(planInput(toml.replace('providerName = "anthropic"', 'providerName = "anthropic"\n[provider.setting]\nbaseUrl = "http://host.docker.internal:11434/"')));
    // The custom baseUrl is the gateway's upstream; the agent's one upstream is the gateway.
    expect(local.gateway?.config).toMatchObject({ upstream: "http://host.docker.internal:11434", allowInsecureUpstream: true });
    expect(local.proxy.upstreams).toEqual([{ host: "perstack-gateway", port: 8080, scheme: "http", isIp: false }]);
    expect(local.proxy.allowlist).not.toContain("api.anthropic.com");
    expect(local.proxy.squidConf).toContain("acl upstream_0_host dstdomain -n perstack-gateway");
    expect(local.proxy.squidConf).toContain("acl upstream_0_port port 8080");
    expect(local.agent.env).toContainEqual({ name: "ANTHROPIC_BASE_URL", source: "fixed", value: "http://perstack-gateway:8080", reason: "runtime" });
  });

  it("rejects a provider the runtime cannot use, uvx skills and bad --env names", () => {
    expect(() => buildSandboxPlan(planInput(toml.replace('"anthropic"', '"openai"')))).toThrow('provider.providerName "openai" is not supported by runtime claude-code');
    expect(() => buildSandboxPlan(planInput(`[experts."main"]\ninstruction="x"\n[experts."main".skills."py"]\ntype="mcpStdioSkill"\ncommand="uvx"\npackageName="mcp-server-fetch"\n`))).toThrow(/"uvx" skills are not available yet/);
    expect(() => buildSandboxPlan(planInput(toml, { envNames: ["BAD NAME"] }))).toThrow('--env "BAD NAME": not a variable name');
    expect(() => buildSandboxPlan(planInput(toml, { envNames: ["HTTPS_PROXY"] }))).toThrow("--env HTTPS_PROXY: the sandbox sets this variable itself");
  });

  it("warns about interactive skills and pick, which claude-code cannot honour", () => {
    const warned = buildSandboxPlan(planInput(`[experts."main"]\ninstruction="x"\n[experts."main".skills."ask"]\ntype="interactiveSkill"\n[experts."main".skills."ask".tools."q"]\ninputJsonSchema='{"type":"object"}'\n[experts."main".skills."s"]\ntype="mcpStdioSkill"\ncommand="npx"\npackageName="p"\npick=["a"]\n`));
    expect(warned.warnings).toEqual([
      'experts."main".skills."ask": interactive skills are not supported by runtime claude-code; the run proceeds without it',
      'experts."main".skills."s".pick: runtime claude-code cannot restrict a server to picked tools; use omit to hide tools',
    ]);
  });
});

describe("allowlist merge", () => {
  it("drops exact entries and narrower wildcards covered by a wildcard, and sorts", () => {
    const merged = mergeAllowlist(
      ["b.com", "*.a.com", "x.a.com", "a.com", "*.y.a.com", "b.com"].map((pattern) => ({ pattern, origin: "t" })),
    );
    expect(merged).toEqual(["*.a.com", "b.com"]);
  });

  it("refuses invalid entries naming where they came from", () => {
    expect(() => mergeAllowlist([{ pattern: "bad host", origin: "provider x" }])).toThrow('provider x: allowlist entry "bad host" contains whitespace');
  });
});

describe("settings claude-code acts on", () => {
  const base = `[provider]\nproviderName = "anthropic"\n[provider.setting]\nheaders = { "x-team" = "research", "authorization" = "Bearer sk-header-secret" }\n[experts."main"]\ninstruction = "x"\n`;

  it("gives provider headers to the gateway, never to the agent, and never puts their values in the plan", () => {
    const plan = buildSandboxPlan(planInput(base));
    expect(plan.agent.env.map((e) => e.name)).not.toContain("ANTHROPIC_CUSTOM_HEADERS");
    expect(JSON.stringify(plan)).not.toContain("sk-header-secret");
  });

  it("maps reasoningBudget to MAX_THINKING_TOKENS and maxRetries/timeout to the CLI's variables", () => {
    const plan = buildSandboxPlan(planInput(`reasoningBudget = "low"\nmaxRetries = 2\ntimeout = 60000\n${base}`));
    const fixed = Object.fromEntries(plan.agent.env.flatMap((e) => (e.source === "fixed" ? [[e.name, e.value]] : [])));
    expect(fixed).toMatchObject({ MAX_THINKING_TOKENS: "4096", CLAUDE_CODE_MAX_RETRIES: "2", API_TIMEOUT_MS: "60000" });
    const numeric = buildSandboxPlan(planInput(`reasoningBudget = 2500\n${base}`));
    expect(numeric.agent.env).toContainEqual({ name: "MAX_THINKING_TOKENS", source: "fixed", value: "2500", reason: "runtime" });
  });
});

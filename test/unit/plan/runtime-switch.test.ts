// One perstack.toml, every runtime: defaults per runtime, refusals that name both sides, and key aliases.
import { describe, expect, it } from "vitest";
import { resolveRuntime } from "../../../src/config/resolve.js";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { modelVendor } from "../../../src/runtimes/model-vendor.js";
import { runtimeAdapter } from "../../../src/runtimes/registry.js";
import { planInput } from "../../support/plan-input.js";

const NEUTRAL = `[experts."main"]\ninstruction = "Do the task."\n[experts."main".skills."tools"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "@modelcontextprotocol/server-everything@2026.8.31"\nrequiredEnv = ["TOOLS_TOKEN"]\n`;

function planFor(runtime: "claude-code" | "gemini" | "codex", toml = NEUTRAL, extra: Parameters<typeof planInput>[1] = {}) {
  return buildSandboxPlan(planInput(toml, { runtime: resolveRuntime(runtime, undefined), adapter: runtimeAdapter(runtime), ...extra }));
}

describe("switching --runtime on one perstack.toml", () => {
  it.each([
    ["claude-code", "claude-sonnet-4-5", "anthropic", "api.anthropic.com", "ANTHROPIC_API_KEY"],
    ["gemini", "gemini-2.5-pro", "google", "generativelanguage.googleapis.com", "GEMINI_API_KEY"],
    ["codex", "gpt-5", "openai", "api.openai.com", "OPENAI_API_KEY"],
  ] as const)("%s uses its own default model, provider, host and key", (runtime, model, provider, host, key) => {
    const plan = planFor(runtime);
    expect(plan.model).toBe(model);
    expect(plan.provider).toBe(provider);
    // The provider's host is reached by the run's gateway only; the agent holds a token in the key variable.
    expect(plan.proxy.allowlist).toEqual([]);
    expect(plan.gateway?.config.upstream).toBe(`https://${host}`);
    expect(plan.agent.env.find((e) => e.name === key)?.source).toBe("token");
    expect(plan.gateway?.credentials.map((k) => k.name)).toEqual([key]);
    expect(plan.agent.env.some((e) => e.name === "TOOLS_TOKEN")).toBe(true);
  });

  it("reads gemini's key from the google provider's variable or GEMINI_API_KEY", () => {
    expect(planFor("gemini").gateway?.credentials).toEqual([{ name: "GEMINI_API_KEY", from: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"] }]);
  });

  it("takes the runtime's conventional base-URL variable when perstack.toml has none", () => {
    const plan = planFor("codex", NEUTRAL, { baseUrlFromEnv: "http://host.docker.internal:9999" });
    // The variable's endpoint is the gateway's upstream; the agent's one upstream is the gateway.
    expect(plan.gateway?.config.upstream).toBe("http://host.docker.internal:9999");
    expect(plan.proxy.upstreams).toEqual([{ host: "perstack-gateway", port: 8080, scheme: "http", isIp: false }]);
    expect(plan.proxy.allowlist).toEqual([]);
    const config = plan.agent.homeFiles.find((f) => f.path === ".codex/config.toml")!.content;
    expect(config).toContain('base_url = "http://perstack-gateway:8080/v1"');
  });

  it("refuses a model of another vendor, naming both", () => {
    expect(() => planFor("gemini", `model = "claude-sonnet-4-5"\n${NEUTRAL}`)).toThrow(
      'model in perstack.toml "claude-sonnet-4-5" is an Anthropic model, but runtime gemini runs Google models (e.g. gemini-2.5-pro); choose another model or runtime',
    );
    expect(() => planFor("claude-code", NEUTRAL, { model: "gpt-5" })).toThrow('--model "gpt-5" is an OpenAI model, but runtime claude-code runs Anthropic models');
  });

  it("refuses a provider the runtime cannot use, naming both", () => {
    expect(() => planFor("codex", `[provider]\nproviderName = "anthropic"\n${NEUTRAL}`)).toThrow(
      'provider.providerName "anthropic" is not supported by runtime codex; it supports openai (remove [provider] to use its default, openai)',
    );
  });

  it("places models by vendor and lets unknown names through", () => {
    expect(modelVendor("claude-opus-4-1")).toBe("anthropic");
    expect(modelVendor("gemini-2.5-flash")).toBe("google");
    expect(modelVendor("gpt-5-codex")).toBe("openai");
    expect(modelVendor("o3")).toBe("openai");
    expect(modelVendor("my-finetune")).toBeUndefined();
  });
});

describe("native configuration files", () => {
  it("gemini: settings.json with auth fix, telemetry off, MCP servers by name only, and GEMINI.md", () => {
    const plan = planFor("gemini");
    const settings = JSON.parse(plan.agent.homeFiles.find((f) => f.path === ".gemini/settings.json")!.content);
    expect(settings.security.auth.selectedType).toBe("gemini-api-key");
    expect(settings.privacy.usageStatisticsEnabled).toBe(false);
    expect(settings.telemetry.enabled).toBe(false);
    expect(settings.general).toEqual({ enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: 6 });
    expect(settings.mcpServers.tools).toMatchObject({ command: expect.stringMatching(/^\/opt\/perstack\/skills\/modelcontextprotocol_server-everything[^/]*-[0-9a-f]{8}\/entry$/), env: { TOOLS_TOKEN: "$TOOLS_TOKEN" } });
    expect(plan.agent.homeFiles.find((f) => f.path === ".gemini/GEMINI.md")!.content).toContain("Do the task.");
    expect(plan.agent.command).toEqual(["gemini", "--prompt=do the thing", "--output-format", "stream-json", "--yolo", "--skip-trust", "--model", "gemini-2.5-pro"]);
  });

  it("codex: instruction by -c developer_instructions, provider and MCP servers in config.toml", () => {
    const plan = planFor("codex", `[experts."main"]\ninstruction = "Line one\\nQuote \\" and $HOME"\n[experts."main".skills."tools"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "srv"\nrequiredEnv = ["TOOLS_TOKEN"]\nomit = ["bad"]\n`);
    const argv = plan.agent.command;
    expect(argv.slice(0, 5)).toEqual(["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]);
    expect(argv[argv.indexOf("-c") + 1]).toBe('developer_instructions="Line one\\nQuote \\" and $HOME"');
    expect(argv.slice(-2)).toEqual(["--", "do the thing"]);
    const config = plan.agent.homeFiles[0]!.content;
    expect(config).toContain('model_provider = "perstack"');
    expect(config).toContain("[analytics]\nenabled = false");
    expect(config).toContain('env_vars = ["TOOLS_TOKEN"]');
    expect(config).toContain('disabled_tools = ["bad"]');
    expect(config).not.toContain("secret");
  });
});

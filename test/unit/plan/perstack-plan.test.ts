// The plan for the built-in engine: every reachable expert with its skills in the engine input, all their npm
// skills in the image, the engine's files in the build context.
import { describe, expect, it } from "vitest";
import { resolveRuntime } from "../../../src/config/resolve.js";
import { engineInputSchema, ENGINE_INPUT_HOME_PATH, type EngineInput } from "../../../src/engine/engine-input.js";
import { buildSandboxPlan, skillInstallDir, type SandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { ENGINE_MAIN, perstack } from "../../../src/runtimes/perstack.js";
import { runtimeAdapter } from "../../../src/runtimes/registry.js";
import { planInput } from "../../support/plan-input.js";

const plan = (toml: string, runtime: "perstack" | "docker" = "perstack", extra: Parameters<typeof planInput>[1] = {}) =>
  buildSandboxPlan(planInput(toml, { runtime: resolveRuntime(runtime, undefined), adapter: runtimeAdapter(runtime), ...extra }));

const engineInput = (p: SandboxPlan): EngineInput => {
  const file = p.agent.homeFiles.find((f) => f.path === ENGINE_INPUT_HOME_PATH);
  if (!file) throw new Error("no engine input");
  return engineInputSchema.parse(JSON.parse(file.content));
};
const agentImage = (p: SandboxPlan) => p.images.find((i) => i.role === "agent")!;

const TEAM = `
[provider]
providerName = "anthropic"
[provider.setting]
headers = { "X-Secret" = "hdr-secret-value" }
[experts."main"]
instruction = "lead"
delegates = ["writer", "asker"]
[experts."main".skills."base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base@0.3.1"
pick = ["readTextFile", "exec"]
rule = "be careful"
[experts."main".skills."search"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@acme/search@1.2.3"
requiredEnv = ["SEARCH_KEY"]
allowedDomains = ["api.search.example"]
[experts."writer"]
instruction = "write"
description = "Writes"
[experts."writer".skills."search"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@acme/search@1.2.3"
requiredEnv = ["SEARCH_KEY"]
[experts."writer".skills."docs"]
type = "mcpStdioSkill"
command = "npx"
args = ["-y", "docs-server", "--root", "/workspace"]
omit = ["delete"]
allowedDomains = ["docs.example.org"]
[experts."writer".skills."remote"]
type = "mcpSseSkill"
endpoint = "https://mcp.remote.example/sse"
[experts."asker"]
instruction = "ask"
[experts."asker".skills."human"]
type = "interactiveSkill"
description = "Ask the user"
[experts."asker".skills."human".tools."confirm"]
description = "Yes or no"
inputJsonSchema = '{"type":"object","properties":{"q":{"type":"string"}}}'
`;

describe("plan for the built-in engine", () => {
  const p = plan(TEAM);
  const input = engineInput(p);

  it("runs the engine on its input file, with every reachable expert, coordinator first", () => {
    expect(p.runtime).toMatchObject({ name: "perstack", cliPackage: "perstack-sandbox" });
    expect(p.agent.command).toEqual(["node", ENGINE_MAIN, `/home/agent/${ENGINE_INPUT_HOME_PATH}`, "--", "do the thing"]);
    expect(Object.keys(input.experts)).toEqual(["main", "writer", "asker"]);
    expect(input).toMatchObject({ jobId: "job1", runId: "run1abcdefghijk", expertKey: "main", stepsBefore: 0, start: { kind: "query", query: "do the thing" } });
    expect(input.experts.main!.delegates).toEqual(["writer", "asker"]);
    expect(input.experts.writer!.description).toBe("Writes");
  });

  it("maps @perstack/base to the built-in base skill with its pick and rule, and installs nothing for it", () => {
    expect(input.experts.main!.skills[0]).toEqual({ type: "base", name: "base", pick: ["readTextFile", "exec"], rule: "be careful" });
    expect(agentImage(p).dockerfile).not.toContain("@perstack/base");
    expect(p.warnings.join("\n")).not.toMatch(/pick|interactive/);
  });

  it("installs every reachable expert's npm skills once per package spec, and allowlists their domains", () => {
    const searchDir = skillInstallDir("@acme/search@1.2.3");
    expect(input.experts.main!.skills[1]).toEqual({ type: "mcpStdio", name: "search", command: `/opt/perstack/skills/${searchDir}/entry`, args: [], envNames: ["SEARCH_KEY"] });
    expect(input.experts.writer!.skills[0]).toMatchObject({ command: `/opt/perstack/skills/${searchDir}/entry` });
    expect(input.experts.writer!.skills[1]).toEqual({
      type: "mcpStdio", name: "docs", command: `/opt/perstack/skills/${skillInstallDir("docs-server")}/entry`, args: ["--root", "/workspace"], envNames: [], omit: ["delete"],
    });
    const dockerfile = agentImage(p).dockerfile;
    expect(dockerfile.match(/npm install --no-save --omit=dev '@acme\/search@1.2.3'/g)).toHaveLength(1);
    expect(dockerfile).toContain("npm install --no-save --omit=dev 'docs-server'");
    expect(p.proxy.allowlist).toEqual(expect.arrayContaining(["api.search.example", "docs.example.org", "mcp.remote.example"]));
    // The provider's host is the gateway's upstream, not something the agent may reach.
    expect(p.proxy.allowlist).not.toContain("api.anthropic.com");
    expect(p.gateway?.config.upstream).toBe("https://api.anthropic.com");
    expect(p.agent.env.find((e) => e.name === "SEARCH_KEY")).toMatchObject({ source: "host" });
  });

  it("passes SSE skills and interactive tools to the engine", () => {
    expect(input.experts.writer!.skills[2]).toEqual({ type: "mcpSse", name: "remote", url: "https://mcp.remote.example/sse" });
    expect(input.experts.asker!.skills).toEqual([
      { type: "interactive", name: "human", description: "Ask the user", tools: [{ name: "confirm", description: "Yes or no", inputSchema: { type: "object", properties: { q: { type: "string" } } } }] },
    ]);
  });

  it("keeps provider header values out of the input file and away from the agent: the gateway adds them", () => {
    const file = p.agent.homeFiles.map((f) => f.content).join("\n");
    expect(file).not.toContain("hdr-secret-value");
    // The engine reaches the model through the run's provider gateway.
    expect(input.provider).toEqual({ providerName: "anthropic", setting: { baseUrl: "http://perstack-gateway:8080/v1" } });
    expect(p.agent.env.find((e) => e.name === "PERSTACK_PROVIDER_HEADERS")).toBeUndefined();
    expect(JSON.stringify(p)).not.toContain("hdr-secret-value");
    expect(perstack.configEnv({ providerName: "openai", setting: { headers: { A: "b" } } })).toEqual({ PERSTACK_PROVIDER_HEADERS: '{"A":"b"}' });
  });

  it("sets the proxy-aware fetch and the workspace", () => {
    const fixed = Object.fromEntries(p.agent.env.flatMap((e) => (e.source === "fixed" ? [[e.name, e.value]] : [])));
    expect(fixed).toMatchObject({ NODE_USE_ENV_PROXY: "1", PERSTACK_WORKSPACE: "/workspace", HTTPS_PROXY: "http://perstack-proxy:3128" });
  });

  it("puts the engine's modules, pinned package.json and lockfile into the image context, tagged by them", () => {
    const files = agentImage(p).contextFiles.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(["engine/package.json", "engine/src/engine/main.js", "engine/src/engine/base-skill/server.js"]));
    expect(files.some((f) => f.endsWith(".d.ts") || f.endsWith(".map"))).toBe(false);
    const manifest = JSON.parse(agentImage(p).contextFiles.find((f) => f.path === "engine/package.json")!.content);
    expect(manifest).toMatchObject({ type: "module", private: true });
    expect(manifest.dependencies["@modelcontextprotocol/sdk"]).toMatch(/^\d+\.\d+\.\d+/);
    const dockerfile = agentImage(p).dockerfile;
    expect(files).toContain("engine/package-lock.json");
    expect(dockerfile.indexOf("COPY engine/package.json engine/package-lock.json")).toBeLessThan(dockerfile.indexOf("npm ci --omit=dev"));
    expect(dockerfile.indexOf("npm ci --omit=dev")).toBeLessThan(dockerfile.indexOf("COPY engine/src/"));
    expect(dockerfile).toContain("node --check");
  });

  it("tags the agent image the same for the same inputs, whatever the query, and differently for other skills", () => {
    expect(agentImage(plan(TEAM, "perstack", { query: "another" })).tag).toBe(agentImage(p).tag);
    expect(agentImage(plan(`${TEAM}\n[experts."asker".skills."more"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "more"\n`)).tag).not.toBe(agentImage(p).tag);
  });
});

describe("engine plan details", () => {
  it("gives an expert without skills the base skill", () => {
    expect(engineInput(plan(`[experts."main"]\ninstruction = "x"\n`)).experts.main!.skills).toEqual([{ type: "base", name: "@perstack/base" }]);
  });

  it("accepts the docker alias and keeps the user's name in the plan", () => {
    const p = plan(`[experts."main"]\ninstruction = "x"\n`, "docker");
    expect(p.runtime.name).toBe("docker");
    expect(p.images.find((i) => i.role === "agent")!.repository).toBe("perstack/agent-perstack");
    expect(engineInput(p).runtime).toBe("perstack");
  });

  it("hands a base URL from the runtime's variable to the gateway as its upstream, and the gateway to the engine", () => {
    const p = plan(`[experts."main"]\ninstruction = "x"\n`, "perstack", { baseUrlFromEnv: "http://host.docker.internal:9000" });
    expect(engineInput(p).provider).toEqual({ providerName: "anthropic", setting: { baseUrl: "http://perstack-gateway:8080" } });
    expect(p.gateway?.config).toMatchObject({ upstream: "http://host.docker.internal:9000", allowInsecureUpstream: true });
    expect(p.proxy.allowlist).not.toContain("api.anthropic.com");
    expect(perstack.baseUrlEnv!({ providerName: "google" })).toBe("GOOGLE_GEMINI_BASE_URL");
    expect(perstack.baseUrlEnv!({ providerName: "amazon-bedrock" })).toBeUndefined();
  });

  it("passes no provider variable from the host: the agent holds the token, the gateway the credentials", () => {
    const env = (toml: string) => plan(`${toml}\n[experts."main"]\ninstruction = "x"\n`).agent.env.filter((e) => e.source === "host");
    expect(env(`[provider]\nproviderName = "google"`)).toEqual([]);
    const google = plan(`[provider]\nproviderName = "google"\n[experts."main"]\ninstruction = "x"\n`);
    expect(google.agent.env.find((e) => e.name === "GOOGLE_GENERATIVE_AI_API_KEY")).toMatchObject({ source: "token" });
    expect(google.gateway?.credentials).toEqual([{ name: "GOOGLE_GENERATIVE_AI_API_KEY", from: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"] }]);
    expect(env(`[provider]\nproviderName = "amazon-bedrock"\n[provider.setting]\nregion = "eu-west-1"`)).toEqual([]);
    expect(env(`[provider]\nproviderName = "ollama"`)).toEqual([]);
    const vertex = plan(`[provider]\nproviderName = "google-vertex"\n[provider.setting]\nlocation = "us-central1"\nproject = "p-12345"\n[experts."main"]\ninstruction = "x"\n`);
    expect(vertex.agent.env.filter((e) => e.source === "host")).toEqual([]);
    expect(vertex.agent.env.map((e) => e.name)).not.toContain("GOOGLE_APPLICATION_CREDENTIALS");
    expect(vertex.proxy.allowlist).not.toContain("oauth2.googleapis.com");
  });

  it("an --env variable is passed as named, even one the provider reads", () => {
    const p = plan(`[provider]\nproviderName = "amazon-bedrock"\n[provider.setting]\nregion = "eu-west-1"\n[experts."main"]\ninstruction = "x"\n`, "perstack", { envNames: ["AWS_SESSION_TOKEN"] });
    expect(p.agent.env.find((e) => e.name === "AWS_SESSION_TOKEN")).toEqual({ name: "AWS_SESSION_TOKEN", source: "host", from: ["AWS_SESSION_TOKEN"], reason: "--env" });
  });

  it("asks for the setting or variable that names the API host", () => {
    expect(() => plan(`[provider]\nproviderName = "amazon-bedrock"\n[experts."main"]\ninstruction = "x"\n`)).toThrow(
      "AWS_REGION is not set; the amazon-bedrock provider needs it (or [provider.setting] region)",
    );
    const fromEnv = plan(`[provider]\nproviderName = "amazon-bedrock"\n[experts."main"]\ninstruction = "x"\n`, "perstack", { providerEnv: { AWS_REGION: "ap-northeast-1" } });
    expect(fromEnv.gateway?.config).toMatchObject({ upstream: "https://bedrock-runtime.ap-northeast-1.amazonaws.com", bedrock: { region: "ap-northeast-1" } });
  });

  it("keeps the CLI runtimes' warnings for interactive skills and pick", () => {
    const p = buildSandboxPlan(planInput(TEAM.replace('delegates = ["writer", "asker"]', "")));
    expect(p.warnings.join("\n")).toMatch(/pick: runtime claude-code cannot restrict/);
  });
});

describe("@perstack/base on a CLI runtime", () => {
  it("is left out with a warning: the CLI's own tools stand in for it", () => {
    const p = buildSandboxPlan(
      planInput(
        `[experts."main"]
instruction = "x"
[experts."main".skills."base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
`,
        { runtime: resolveRuntime("claude-code", undefined), adapter: runtimeAdapter("claude-code") },
      ),
    );
    expect(p.warnings.join("\n")).toMatch(/experts\."main"\.skills\."base": @perstack\/base is the built-in perstack runtime's skill; runtime claude-code uses its own/);
    expect(agentImage(p).dockerfile).not.toContain("@perstack/base");
    expect(p.agent.command.join(" ")).not.toContain("mcp-config");
  });
});

// Issue 10: every provider of the built-in runtime goes through the run's provider gateway. For each, the plan gives
// the agent the token in the variable its SDK reads a key from and a base URL on the gateway, and the gateway the
// upstream, the credentials and the settings its auth and routes need. A configured base URL is split so that the
// upstream URL is exactly the configured one with the request's path after it.
import { describe, expect, it } from "vitest";
import { resolveRuntime } from "../../../src/config/resolve.js";
import { engineInputSchema, ENGINE_INPUT_HOME_PATH } from "../../../src/engine/engine-input.js";
import { isApiRoute } from "../../../src/gateway/api-routes.js";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.js";
import { upstreamUrl } from "../../../src/gateway/request-target.js";
import { splitApiRoot } from "../../../src/plan/gateway-plan.js";
import { buildSandboxPlan, type SandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { runtimeAdapter } from "../../../src/runtimes/registry.js";
import { planInput } from "../../support/plan-input.js";

const plan = (providerToml: string, extra: Parameters<typeof planInput>[1] = {}): SandboxPlan =>
  buildSandboxPlan(
    planInput(`[provider]\n${providerToml}\n[experts."main"]\ninstruction = "x"\n`, {
      runtime: resolveRuntime("perstack", undefined),
      adapter: runtimeAdapter("perstack"),
      ...extra,
    }),
  );

const engineBaseUrl = (p: SandboxPlan): string | undefined => {
  const file = p.agent.homeFiles.find((f) => f.path === ENGINE_INPUT_HOME_PATH)!;
  const provider = engineInputSchema.parse(JSON.parse(file.content)).provider;
  return (provider.setting as { baseUrl?: string } | undefined)?.baseUrl;
};

/** Where a request the engine's SDK sends to `agentPath` (below its base URL) ends up, if the gateway lets it through. */
const forwarded = (p: SandboxPlan, agentPath: string, method = "POST"): string | undefined => {
  const base = new URL(engineBaseUrl(p)!);
  const path = `${base.pathname.replace(/\/$/, "")}${agentPath}`;
  const config = parseGatewayConfig(p.gateway!.config, "plan");
  if (!isApiRoute(config.protocol, method, path, config.vertex)) return undefined;
  return upstreamUrl(config.upstream, path, new URLSearchParams(), config.upstreamQuery).href;
};

const tokens = (p: SandboxPlan) => p.agent.env.filter((e) => e.source === "token").map((e) => e.name);

describe("the built-in runtime's providers through the gateway", () => {
  const cases: Array<{
    name: string;
    toml: string;
    providerEnv?: Record<string, string>;
    protocol: string;
    tokens: string[];
    credentials: string[];
    /** A path the SDK appends to its base URL, and where it must arrive. */
    call: [string, string];
    extra?: Record<string, unknown>;
  }> = [
    {
      name: "anthropic (default host)",
      toml: `providerName = "anthropic"`,
      protocol: "anthropic",
      tokens: ["ANTHROPIC_API_KEY"],
      credentials: ["ANTHROPIC_API_KEY"],
      call: ["/messages", "https://api.anthropic.com/v1/messages"],
    },
    {
      name: "anthropic behind a proxy with a path",
      toml: `providerName = "anthropic"\n[provider.setting]\nbaseUrl = "https://llm.corp.example/anthropic/v1/"`,
      protocol: "anthropic",
      tokens: ["ANTHROPIC_API_KEY"],
      credentials: ["ANTHROPIC_API_KEY"],
      call: ["/messages", "https://llm.corp.example/anthropic/v1/messages"],
    },
    {
      name: "deepseek",
      toml: `providerName = "deepseek"`,
      protocol: "openai",
      tokens: ["DEEPSEEK_API_KEY"],
      credentials: ["DEEPSEEK_API_KEY"],
      call: ["/chat/completions", "https://api.deepseek.com/chat/completions"],
    },
    {
      name: "deepseek under /v1",
      toml: `providerName = "deepseek"\n[provider.setting]\nbaseUrl = "https://api.deepseek.com/v1"`,
      protocol: "openai",
      tokens: ["DEEPSEEK_API_KEY"],
      credentials: ["DEEPSEEK_API_KEY"],
      call: ["/chat/completions", "https://api.deepseek.com/v1/chat/completions"],
    },
    {
      name: "azure-openai by resource name (from the variable)",
      toml: `providerName = "azure-openai"`,
      providerEnv: { AZURE_RESOURCE_NAME: "acme-ai" },
      protocol: "openai",
      tokens: ["AZURE_API_KEY"],
      credentials: ["AZURE_API_KEY"],
      // @ai-sdk/azure calls <resource>/openai/v1/responses on Azure's hosts.
      call: ["/responses", "https://acme-ai.openai.azure.com/openai/v1/responses"],
    },
    {
      name: "azure-openai with an api-version",
      toml: `providerName = "azure-openai"\n[provider.setting]\nresourceName = "acme-ai"\napiVersion = "preview"`,
      protocol: "openai",
      tokens: ["AZURE_API_KEY"],
      credentials: ["AZURE_API_KEY"],
      call: ["/responses", "https://acme-ai.openai.azure.com/openai/v1/responses?api-version=preview"],
      extra: { upstreamQuery: { "api-version": "preview" } },
    },
    {
      name: "azure-openai behind a gateway of the user's",
      toml: `providerName = "azure-openai"\n[provider.setting]\nbaseUrl = "https://apim.corp.example/team/openai"`,
      protocol: "openai",
      tokens: ["AZURE_API_KEY"],
      credentials: ["AZURE_API_KEY"],
      call: ["/responses", "https://apim.corp.example/team/openai/responses"],
    },
    {
      name: "ollama on the Docker host by default",
      toml: `providerName = "ollama"`,
      protocol: "ollama",
      tokens: ["OLLAMA_API_KEY"],
      credentials: ["OLLAMA_API_KEY"],
      call: ["/chat", "http://host.docker.internal:11434/api/chat"],
      extra: { allowInsecureUpstream: true },
    },
    {
      name: "ollama at a configured server",
      toml: `providerName = "ollama"\n[provider.setting]\nbaseUrl = "http://gpu-box.lan:11434"`,
      protocol: "ollama",
      tokens: ["OLLAMA_API_KEY"],
      credentials: ["OLLAMA_API_KEY"],
      // The engine adds /api to a bare origin itself.
      call: ["/api/chat", "http://gpu-box.lan:11434/api/chat"],
    },
    {
      name: "amazon-bedrock",
      toml: `providerName = "amazon-bedrock"\n[provider.setting]\nregion = "eu-west-1"`,
      protocol: "bedrock",
      tokens: ["AWS_BEARER_TOKEN_BEDROCK"],
      credentials: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
      call: ["/model/anthropic.claude-sonnet-4-5%3A0/converse-stream", "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-sonnet-4-5%3A0/converse-stream"],
      extra: { bedrock: { region: "eu-west-1" } },
    },
    {
      name: "google-vertex (project and location from variables)",
      toml: `providerName = "google-vertex"`,
      providerEnv: { GOOGLE_CLOUD_PROJECT: "acme-prod", GOOGLE_VERTEX_LOCATION: "europe-west4" },
      protocol: "vertex",
      tokens: ["GOOGLE_VERTEX_API_KEY"],
      credentials: [],
      call: [
        "/models/gemini-2.5-pro:streamGenerateContent",
        "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/acme-prod/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
      ],
      extra: { vertex: { project: "acme-prod", location: "europe-west4" } },
    },
  ];

  it.each(cases)("$name", (c) => {
    const p = plan(c.toml, c.providerEnv ? { providerEnv: c.providerEnv } : {});
    expect(p.gateway?.config).toMatchObject({ protocol: c.protocol, ...c.extra });
    expect(tokens(p)).toEqual(c.tokens);
    expect(p.gateway!.credentials.map((k) => k.name)).toEqual(c.credentials);
    expect(p.gateway!.googleCredentials).toBe(c.protocol === "vertex");
    // No provider variable is passed from the host, and no warning says credentials enter the sandbox.
    expect(p.agent.env.filter((e) => e.source === "host")).toEqual([]);
    expect(p.warnings.join("\n")).not.toMatch(/credentials are passed into the sandbox/);
    expect(engineBaseUrl(p)).toMatch(/^http:\/\/perstack-gateway:8080(\/|$)/);
    // The agent's one upstream is the gateway; the provider's hosts are off the allowlist.
    expect(p.proxy.upstreams).toEqual([{ host: "perstack-gateway", port: 8080, scheme: "http", isIp: false }]);
    expect(p.proxy.allowlist.some((h) => /amazonaws|googleapis|azure|deepseek|anthropic/.test(h))).toBe(false);
    expect(forwarded(p, c.call[0])).toBe(c.call[1]);
  });

  it("passes the setting variables' values into the engine's settings, so the sandbox needs none of them", () => {
    const p = plan(`providerName = "google-vertex"`, { providerEnv: { GOOGLE_VERTEX_PROJECT: "acme-prod", GOOGLE_CLOUD_LOCATION: "us-central1" } });
    const file = p.agent.homeFiles.find((f) => f.path === ENGINE_INPUT_HOME_PATH)!;
    expect(engineInputSchema.parse(JSON.parse(file.content)).provider).toEqual({
      providerName: "google-vertex",
      setting: { project: "acme-prod", location: "us-central1", baseUrl: "http://perstack-gateway:8080/v1beta1/projects/acme-prod/locations/us-central1/publishers/google" },
    });
  });

  it("names the settings a provider lacks", () => {
    expect(() => plan(`providerName = "google-vertex"\n[provider.setting]\nlocation = "us-central1"`)).toThrow(
      "GOOGLE_VERTEX_PROJECT / GOOGLE_CLOUD_PROJECT is not set; the google-vertex provider needs it (or [provider.setting] project)",
    );
    expect(() => plan(`providerName = "azure-openai"`)).toThrow(/AZURE_RESOURCE_NAME is not set.*resourceName/);
  });
});

describe("splitApiRoot", () => {
  it("keeps the longest root that ends the path for the agent and the rest for the upstream", () => {
    const split = (url: string, roots: string[]) => {
      const { upstream, agentRoot } = splitApiRoot(url, roots);
      return [upstream.href, agentRoot];
    };
    expect(split("https://h.example/openai/v1", ["/openai/v1", "/openai", "/v1"])).toEqual(["https://h.example/", "/openai/v1"]);
    expect(split("https://h.example/team/v1/", ["/v1"])).toEqual(["https://h.example/team", "/v1"]);
    expect(split("http://h.example:8080", ["/v1"])).toEqual(["http://h.example:8080/", ""]);
    expect(split("https://h.example/custom", ["/v1"])).toEqual(["https://h.example/custom", ""]);
  });
});

describe("a CLI runtime's base URL", () => {
  it("is the bare gateway: the CLI appends the API root itself, so an SDK-style baseUrl with /v1 works too", () => {
    const cli = (toml: string, baseUrlFromEnv?: string) =>
      buildSandboxPlan(planInput(`${toml}[experts."main"]\ninstruction = "x"\n`, baseUrlFromEnv ? { baseUrlFromEnv } : {}));
    const fromToml = cli(`[provider]\nproviderName = "anthropic"\n[provider.setting]\nbaseUrl = "https://llm.corp.example/anthropic/v1"\n`);
    expect(fromToml.agent.env).toContainEqual({ name: "ANTHROPIC_BASE_URL", source: "fixed", value: "http://perstack-gateway:8080", reason: "runtime" });
    expect(fromToml.gateway?.config.upstream).toBe("https://llm.corp.example/anthropic");
    // ANTHROPIC_BASE_URL is written without the root, as Claude Code expects it.
    const fromEnv = cli("", "https://llm.corp.example/anthropic");
    expect(fromEnv.gateway?.config.upstream).toBe("https://llm.corp.example/anthropic");
    const config = parseGatewayConfig(fromEnv.gateway!.config, "plan");
    expect(upstreamUrl(config.upstream, "/v1/messages", new URLSearchParams()).href).toBe("https://llm.corp.example/anthropic/v1/messages");
  });
});

// Configuration tests for the provider layer: the SDK's HTTP is intercepted through the factories' `fetch`
// option, so each test sees the endpoint, headers and credentials a real request would use, without network.
import { generateText } from "ai";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ProviderConfig } from "../../../src/config/schema.js";
import { providerApiHosts, providerKeyEnv } from "../../../src/engine/provider-env.js";
import { createLanguageModel } from "../../../src/engine/providers.js";
import type { LanguageModelOptions } from "../../../src/engine/providers.js";
import { MissingEnvError } from "../../../src/errors.js";

interface Captured {
  url: string;
  method: string;
  headers: Headers;
  body: string;
}

const STOP = "intercepted: no network in unit tests";

/** Runs one generateText call whose first HTTP request is recorded and then failed. */
async function capture(
  provider: ProviderConfig,
  model: string,
  env: NodeJS.ProcessEnv,
  extra: LanguageModelOptions = {},
): Promise<Captured> {
  const seen: Captured[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = request ? request.url : input instanceof URL ? input.href : String(input);
    seen.push({
      url,
      method: init?.method ?? request?.method ?? "GET",
      headers: new Headers(init?.headers ?? request?.headers),
      body: typeof init?.body === "string" ? init.body : "",
    });
    return Promise.reject(new Error(STOP));
  };
  const languageModel = await createLanguageModel(provider, model, env, { ...extra, fetch });
  await expect(generateText({ model: languageModel, prompt: "hi", maxRetries: 0 })).rejects.toThrow(STOP);
  expect(seen).toHaveLength(1);
  return seen[0]!;
}

const custom = { "X-Custom": "yes" };

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("createLanguageModel endpoints and credentials", () => {
  it("anthropic: x-api-key from ANTHROPIC_API_KEY, /v1/messages on the default host", async () => {
    const req = await capture({ providerName: "anthropic", setting: { headers: custom } }, "claude-sonnet-4-5", {
      ANTHROPIC_API_KEY: "sk-ant",
    });
    expect(req.url).toBe("https://api.anthropic.com/v1/messages");
    expect(req.headers.get("x-api-key")).toBe("sk-ant");
    expect(req.headers.get("x-custom")).toBe("yes");
    expect(JSON.parse(req.body)).toMatchObject({ model: "claude-sonnet-4-5" });
  });

  it("anthropic: a bare-origin baseUrl gets /v1; one with a path is kept", async () => {
    const env = { ANTHROPIC_API_KEY: "k" };
    const bare = await capture({ providerName: "anthropic", setting: { baseUrl: "http://proxy.test:8080/" } }, "m", env);
    expect(bare.url).toBe("http://proxy.test:8080/v1/messages");
    const path = await capture({ providerName: "anthropic", setting: { baseUrl: "https://gw.test/anthropic/v1/" } }, "m", env);
    expect(path.url).toBe("https://gw.test/anthropic/v1/messages");
  });

  it("openai: Bearer OPENAI_API_KEY, Responses API, organization/project headers", async () => {
    const req = await capture(
      { providerName: "openai", setting: { headers: custom, organization: "org-1", project: "proj-1" } },
      "gpt-5",
      { OPENAI_API_KEY: "sk-oa" },
    );
    expect(req.url).toBe("https://api.openai.com/v1/responses");
    expect(req.headers.get("authorization")).toBe("Bearer sk-oa");
    expect(req.headers.get("openai-organization")).toBe("org-1");
    expect(req.headers.get("openai-project")).toBe("proj-1");
    expect(req.headers.get("x-custom")).toBe("yes");
  });

  it("openai: ignores OPENAI_BASE_URL / OPENAI_API_KEY in process.env; baseUrl gets /v1", async () => {
    vi.stubEnv("OPENAI_BASE_URL", "https://elsewhere.test/v1");
    vi.stubEnv("OPENAI_API_KEY", "from-process");
    const req = await capture({ providerName: "openai", setting: { baseUrl: "http://127.0.0.1:9" } }, "gpt-5", {
      OPENAI_API_KEY: "from-env-arg",
    });
    expect(req.url).toBe("http://127.0.0.1:9/v1/responses");
    expect(req.headers.get("authorization")).toBe("Bearer from-env-arg");
    await expect(createLanguageModel({ providerName: "openai" }, "gpt-5", {})).rejects.toThrow(MissingEnvError);
  });

  it("google: x-goog-api-key from GOOGLE_GENERATIVE_AI_API_KEY, /v1beta/models/<m>:generateContent", async () => {
    const req = await capture({ providerName: "google", setting: { headers: custom } }, "gemini-2.5-pro", {
      GOOGLE_GENERATIVE_AI_API_KEY: "g-key",
    });
    expect(req.url).toBe("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent");
    expect(req.headers.get("x-goog-api-key")).toBe("g-key");
    expect(req.headers.get("x-custom")).toBe("yes");
    const bare = await capture({ providerName: "google", setting: { baseUrl: "http://g.test" } }, "gemini-2.5-pro", {
      GOOGLE_GENERATIVE_AI_API_KEY: "g-key",
    });
    expect(bare.url).toBe("http://g.test/v1beta/models/gemini-2.5-pro:generateContent");
  });

  it("azure-openai: api-key from AZURE_API_KEY, <resource>.openai.azure.com, api-version", async () => {
    const req = await capture(
      { providerName: "azure-openai", setting: { resourceName: "myres", apiVersion: "2025-04-01-preview", headers: custom } },
      "my-deployment",
      { AZURE_API_KEY: "az-key" },
    );
    const url = new URL(req.url);
    expect(url.origin + url.pathname).toBe("https://myres.openai.azure.com/openai/v1/responses");
    expect(url.searchParams.get("api-version")).toBe("2025-04-01-preview");
    expect(req.headers.get("api-key")).toBe("az-key");
    expect(req.headers.get("x-custom")).toBe("yes");
    expect(JSON.parse(req.body)).toMatchObject({ model: "my-deployment" });
  });

  it("azure-openai: the resource may come from AZURE_RESOURCE_NAME; a baseUrl replaces it", async () => {
    const fromEnv = await capture({ providerName: "azure-openai" }, "dep", { AZURE_API_KEY: "k", AZURE_RESOURCE_NAME: "envres" });
    expect(new URL(fromEnv.url).hostname).toBe("envres.openai.azure.com");
    expect(new URL(fromEnv.url).searchParams.get("api-version")).toBe("v1");
    const custom = await capture({ providerName: "azure-openai", setting: { baseUrl: "https://gw.test/azure" } }, "dep", {
      AZURE_API_KEY: "k",
    });
    expect(custom.url).toBe("https://gw.test/azure/responses");
  });

  it("amazon-bedrock: SigV4 with AWS_* keys, bedrock-runtime.<region>.amazonaws.com", async () => {
    const req = await capture(
      { providerName: "amazon-bedrock", setting: { region: "eu-west-1", headers: custom } },
      "anthropic.claude-3-5-sonnet-20240620-v1:0",
      { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_SESSION_TOKEN: "session" },
    );
    expect(req.url).toBe(
      "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
    );
    expect(req.headers.get("authorization")).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/bedrock\/aws4_request/,
    );
    expect(req.headers.get("x-amz-security-token")).toBe("session");
    expect(req.headers.get("x-custom")).toBe("yes");
  });

  it("amazon-bedrock: region from AWS_REGION; ignores AWS_BEARER_TOKEN_BEDROCK in process.env", async () => {
    vi.stubEnv("AWS_BEARER_TOKEN_BEDROCK", "bearer-from-process");
    const req = await capture({ providerName: "amazon-bedrock" }, "m", {
      AWS_ACCESS_KEY_ID: "AKID",
      AWS_SECRET_ACCESS_KEY: "s",
      AWS_REGION: "us-east-2",
    });
    expect(new URL(req.url).hostname).toBe("bedrock-runtime.us-east-2.amazonaws.com");
    expect(req.headers.get("authorization")).toMatch(/^AWS4-HMAC-SHA256 /);
  });

  it("google-vertex: ADC bearer token, <location>-aiplatform.googleapis.com, project and location in the path", async () => {
    const authClient = { getAccessToken: () => Promise.resolve({ token: "adc-token" }) };
    const req = await capture(
      { providerName: "google-vertex", setting: { project: "my-proj", location: "europe-west4", headers: custom } },
      "gemini-2.5-pro",
      {},
      { googleAuthOptions: { authClient: authClient as never } },
    );
    expect(req.url).toBe(
      "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent",
    );
    expect(req.headers.get("authorization")).toBe("Bearer adc-token");
    expect(req.headers.get("x-custom")).toBe("yes");
  });

  it("google-vertex: project/location from GOOGLE_VERTEX_*; a bare baseUrl gets the project path", async () => {
    const authClient = { getAccessToken: () => Promise.resolve({ token: "t" }) };
    const req = await capture(
      { providerName: "google-vertex", setting: { baseUrl: "http://vertex.test" } },
      "gemini-2.5-flash",
      { GOOGLE_VERTEX_PROJECT: "p2", GOOGLE_VERTEX_LOCATION: "us-central1" },
      { googleAuthOptions: { authClient: authClient as never } },
    );
    expect(req.url).toBe(
      "http://vertex.test/v1beta1/projects/p2/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
    );
  });

  it("deepseek: Bearer DEEPSEEK_API_KEY, api.deepseek.com/chat/completions", async () => {
    const req = await capture({ providerName: "deepseek", setting: { headers: custom } }, "deepseek-chat", {
      DEEPSEEK_API_KEY: "ds-key",
    });
    expect(req.url).toBe("https://api.deepseek.com/chat/completions");
    expect(req.headers.get("authorization")).toBe("Bearer ds-key");
    expect(req.headers.get("x-custom")).toBe("yes");
  });

  it("ollama: no key, the baseUrl (bare origin gets /api), /api/chat", async () => {
    const req = await capture({ providerName: "ollama", setting: { baseUrl: "http://gpu.lan:11434", headers: custom } }, "llama3", {});
    expect(req.url).toBe("http://gpu.lan:11434/api/chat");
    expect(req.headers.get("x-custom")).toBe("yes");
    expect(req.headers.get("authorization")).toBeNull();
    const local = await capture({ providerName: "ollama" }, "llama3", {});
    expect(local.url).toBe("http://127.0.0.1:11434/api/chat");
  });
});

// In a sandbox the keys are the gateway's token, in the variable each SDK reads a plain API key from.
describe("the gateway's token as each provider's key", () => {
  const gateway = "http://perstack-gateway:8080";

  it("amazon-bedrock: AWS_BEARER_TOKEN_BEDROCK is sent as a bearer, unsigned, and no AWS key is needed", async () => {
    const req = await capture({ providerName: "amazon-bedrock", setting: { region: "eu-west-1", baseUrl: gateway } }, "anthropic.claude-sonnet-4-5:0", {
      AWS_BEARER_TOKEN_BEDROCK: "run-token",
    });
    expect(req.url).toBe(`${gateway}/model/anthropic.claude-sonnet-4-5%3A0/converse`);
    expect(req.headers.get("authorization")).toBe("Bearer run-token");
    expect(req.headers.get("x-amz-date")).toBeNull();
  });

  it("google-vertex: GOOGLE_VERTEX_API_KEY goes as x-goog-api-key to the project path on the base URL; no ADC", async () => {
    const authClient = { getAccessToken: () => Promise.reject(new Error("ADC must not be asked")) };
    const base = `${gateway}/v1beta1/projects/acme-prod/locations/us-central1/publishers/google`;
    const req = await capture(
      { providerName: "google-vertex", setting: { project: "acme-prod", location: "us-central1", baseUrl: base } },
      "gemini-2.5-pro",
      { GOOGLE_VERTEX_API_KEY: "run-token" },
      { googleAuthOptions: { authClient: authClient as never } },
    );
    expect(req.url).toBe(`${base}/models/gemini-2.5-pro:generateContent`);
    expect(req.headers.get("x-goog-api-key")).toBe("run-token");
    expect(req.headers.get("authorization")).toBeNull();
  });

  it("ollama: OLLAMA_API_KEY is sent as a bearer", async () => {
    const req = await capture({ providerName: "ollama", setting: { baseUrl: gateway } }, "llama3", { OLLAMA_API_KEY: "run-token" });
    expect(req.url).toBe(`${gateway}/api/chat`);
    expect(req.headers.get("authorization")).toBe("Bearer run-token");
  });

  it("azure-openai: a gateway base URL gets the path as given and no api-version", async () => {
    const req = await capture({ providerName: "azure-openai", setting: { baseUrl: `${gateway}/openai/v1` } }, "gpt-5", { AZURE_API_KEY: "run-token" });
    expect(req.url).toBe(`${gateway}/openai/v1/responses`);
    expect(req.headers.get("api-key")).toBe("run-token");
  });
});

describe("missing variables", () => {
  const cases: [ProviderConfig, NodeJS.ProcessEnv, string][] = [
    [{ providerName: "anthropic" }, {}, "ANTHROPIC_API_KEY"],
    [{ providerName: "openai" }, { OPENAI_API_KEY: " " }, "OPENAI_API_KEY"],
    [{ providerName: "google" }, { GEMINI_API_KEY: "x" }, "GOOGLE_GENERATIVE_AI_API_KEY"],
    [{ providerName: "azure-openai" }, {}, "AZURE_API_KEY"],
    [{ providerName: "azure-openai" }, { AZURE_API_KEY: "k" }, "AZURE_RESOURCE_NAME"],
    [{ providerName: "amazon-bedrock" }, { AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "us-east-1" }, "AWS_ACCESS_KEY_ID"],
    [{ providerName: "amazon-bedrock" }, { AWS_ACCESS_KEY_ID: "a", AWS_REGION: "us-east-1" }, "AWS_SECRET_ACCESS_KEY"],
    [{ providerName: "amazon-bedrock" }, { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s" }, "AWS_REGION"],
    [{ providerName: "google-vertex", setting: { location: "us-central1" } }, {}, "GOOGLE_VERTEX_PROJECT"],
    [{ providerName: "google-vertex", setting: { project: "p" } }, {}, "GOOGLE_VERTEX_LOCATION"],
    [{ providerName: "deepseek" }, {}, "DEEPSEEK_API_KEY"],
  ];
  it.each(cases)("%o with %o names %s", async (provider, env, name) => {
    let error: unknown;
    try {
      await createLanguageModel(provider, "m", env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MissingEnvError);
    const message = (error as Error).message;
    expect(message).toContain(name);
    expect(message).toContain(provider.providerName);
    expect(message).not.toContain("\n");
  });

  it("ollama needs no variable", async () => {
    await expect(createLanguageModel({ providerName: "ollama" }, "llama3", {})).resolves.toBeDefined();
  });
});

describe("providerKeyEnv and providerApiHosts", () => {
  it("names the key variables of each provider", () => {
    expect(providerKeyEnv({ providerName: "anthropic" })).toEqual(["ANTHROPIC_API_KEY"]);
    expect(providerKeyEnv({ providerName: "openai" })).toEqual(["OPENAI_API_KEY"]);
    expect(providerKeyEnv({ providerName: "google" })).toEqual(["GOOGLE_GENERATIVE_AI_API_KEY"]);
    expect(providerKeyEnv({ providerName: "azure-openai" })).toContain("AZURE_API_KEY");
    expect(providerKeyEnv({ providerName: "amazon-bedrock" })).toEqual(
      expect.arrayContaining(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]),
    );
    expect(providerKeyEnv({ providerName: "google-vertex" })).toContain("GOOGLE_APPLICATION_CREDENTIALS");
    expect(providerKeyEnv({ providerName: "deepseek" })).toEqual(["DEEPSEEK_API_KEY"]);
    expect(providerKeyEnv({ providerName: "ollama" })).toEqual([]);
  });

  it("lists the API hosts per the provider table", () => {
    expect(providerApiHosts({ providerName: "anthropic" })).toEqual(["api.anthropic.com"]);
    expect(providerApiHosts({ providerName: "openai" })).toEqual(["api.openai.com"]);
    expect(providerApiHosts({ providerName: "google" })).toEqual(["generativelanguage.googleapis.com"]);
    expect(providerApiHosts({ providerName: "deepseek" })).toEqual(["api.deepseek.com"]);
    expect(providerApiHosts({ providerName: "azure-openai", setting: { resourceName: "res" } })).toEqual([
      "res.openai.azure.com",
    ]);
    expect(providerApiHosts({ providerName: "azure-openai" }, { AZURE_RESOURCE_NAME: "envres" })).toEqual([
      "envres.openai.azure.com",
    ]);
    expect(providerApiHosts({ providerName: "amazon-bedrock", setting: { region: "ap-south-1" } })).toEqual([
      "bedrock-runtime.ap-south-1.amazonaws.com",
    ]);
    expect(providerApiHosts({ providerName: "amazon-bedrock" }, { AWS_REGION: "us-west-2" })).toEqual([
      "bedrock-runtime.us-west-2.amazonaws.com",
    ]);
    expect(providerApiHosts({ providerName: "google-vertex", setting: { location: "us-east5" } })).toEqual([
      "us-east5-aiplatform.googleapis.com",
    ]);
    expect(providerApiHosts({ providerName: "ollama" })).toEqual(["127.0.0.1"]);
  });

  it("uses the baseUrl host when one is set", () => {
    expect(providerApiHosts({ providerName: "anthropic", setting: { baseUrl: "https://proxy.corp.test:8443/v1" } })).toEqual([
      "proxy.corp.test",
    ]);
    expect(providerApiHosts({ providerName: "ollama", setting: { baseUrl: "http://gpu.lan:11434" } })).toEqual(["gpu.lan"]);
  });

  it("fails with MissingEnvError when the host depends on an unset region", () => {
    expect(() => providerApiHosts({ providerName: "amazon-bedrock" })).toThrow(/AWS_REGION/);
  });
});

// End to end through the real SDK providers against the project's fake model server (loopback only): one tool
// call turn and one text turn per provider, driven by streamText with a two-step loop.
import { generateKeyPairSync } from "node:crypto";
import { isStepCount, streamText, tool } from "ai";
import { JWT, gaxios } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { ProviderConfig } from "../../../src/config/schema.js";
import { createLanguageModel } from "../../../src/engine/providers.js";
import type { LanguageModelOptions } from "../../../src/engine/providers.js";
import { fetchRequestLog, postScript } from "../../support/fake-models-server.js";
import { startFakeModels } from "../../fake-models/server.ts";
import type { FakeModelsHandle, ProtocolName, RecordedRequest, Step } from "../../fake-models/server.ts";

let server: FakeModelsHandle;

beforeAll(async () => {
  server = await startFakeModels({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await server.close();
});

const setScript = (protocol: ProtocolName, steps: Step[]) => postScript(server.url, protocol, steps);
const requestLog = (protocol: ProtocolName) => fetchRequestLog(server.url, protocol);

interface Case {
  protocol: ProtocolName;
  provider: () => ProviderConfig;
  model: string;
  env: NodeJS.ProcessEnv;
  /** The API path the SDK is expected to call. */
  path: RegExp;
  /** The header carrying the key (the fake logs it redacted). */
  keyHeader: string;
  /** Extra createLanguageModel options (google-vertex: the auth client). */
  options?: () => LanguageModelOptions;
  /** Runs before the conversation (e.g. registers the OAuth key with the fake). */
  setup?: () => Promise<void>;
  /** Extra checks of each main request the fake logged. */
  check?: (request: RecordedRequest) => void;
}

// google-vertex: a service-account key whose public half the fake's token endpoint knows; google-auth-library's JWT
// client signs the assertion and (through this transporter) posts it to the fake's /token instead of Google's.
const VERTEX_CLIENT_EMAIL = "providers-fake@perstack-test.iam.gserviceaccount.com";
const vertexKey = generateKeyPairSync("rsa", { modulusLength: 2048 });

async function registerVertexKey(): Promise<void> {
  const publicKeyPem = vertexKey.publicKey.export({ type: "spki", format: "pem" }).toString();
  const res = await fetch(`${server.url}/_oauth`, { method: "POST", body: JSON.stringify({ publicKeyPem, clientEmail: VERTEX_CLIENT_EMAIL }) });
  expect(res.status).toBe(200);
}

function vertexAuthClient(): JWT {
  const transporter = new gaxios.Gaxios();
  transporter.interceptors.request.add({
    resolved: (options) => {
      if (options.url.href === "https://oauth2.googleapis.com/token") options.url = new URL(`${server.url}/token`);
      return Promise.resolve(options);
    },
  });
  return new JWT({
    email: VERTEX_CLIENT_EMAIL,
    key: vertexKey.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    transporter,
  });
}

const cases: Case[] = [
  {
    protocol: "anthropic",
    provider: () => ({ providerName: "anthropic", setting: { baseUrl: server.url, headers: { "x-test": "anthropic" } } }),
    model: "claude-sonnet-4-5",
    env: { ANTHROPIC_API_KEY: "fake-anthropic-key" },
    path: /^\/v1\/messages$/,
    keyHeader: "x-api-key",
  },
  {
    protocol: "openai",
    provider: () => ({ providerName: "openai", setting: { baseUrl: server.url, headers: { "x-test": "openai" } } }),
    model: "gpt-5",
    env: { OPENAI_API_KEY: "fake-openai-key" },
    path: /^\/v1\/responses$/,
    keyHeader: "authorization",
  },
  {
    protocol: "gemini",
    provider: () => ({ providerName: "google", setting: { baseUrl: server.url, headers: { "x-test": "google" } } }),
    model: "gemini-2.5-pro",
    env: { GOOGLE_GENERATIVE_AI_API_KEY: "fake-google-key" },
    path: /^\/v1beta\/models\/gemini-2\.5-pro:streamGenerateContent\?alt=sse$/,
    keyHeader: "x-goog-api-key",
  },
  {
    // Chat Completions at DeepSeek's base URL (no version path).
    protocol: "chat",
    provider: () => ({ providerName: "deepseek", setting: { baseUrl: server.url, headers: { "x-test": "deepseek" } } }),
    model: "deepseek-chat",
    env: { DEEPSEEK_API_KEY: "fake-deepseek-key" },
    path: /^\/chat\/completions$/,
    keyHeader: "authorization",
  },
  {
    // Azure's v1 API: the Responses API under /openai/v1 (a non-Azure host gets no api-version query).
    protocol: "openai",
    provider: () => ({
      providerName: "azure-openai",
      setting: { baseUrl: `${server.url}/openai/v1`, headers: { "x-test": "azure-openai" } },
    }),
    model: "gpt-5-deployment",
    env: { AZURE_API_KEY: "fake-azure-key" },
    path: /^\/openai\/v1\/responses$/,
    keyHeader: "api-key",
  },
  {
    // Ollama's native /api/chat (a bare-origin baseUrl gets /api), streamed as NDJSON.
    protocol: "ollama",
    provider: () => ({ providerName: "ollama", setting: { baseUrl: server.url, headers: { "x-test": "ollama" } } }),
    model: "llama3.2",
    env: { OLLAMA_API_KEY: "fake-ollama-key" },
    path: /^\/api\/chat$/,
    keyHeader: "authorization",
  },
  {
    // Bedrock Converse, SigV4-signed with the (fake) access key; the model id goes percent-encoded into the path.
    protocol: "bedrock",
    provider: () => ({
      providerName: "amazon-bedrock",
      setting: { baseUrl: server.url, region: "eu-west-3", headers: { "x-test": "amazon-bedrock" } },
    }),
    model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    env: { AWS_ACCESS_KEY_ID: "AKIAFAKEPROVIDERS001", AWS_SECRET_ACCESS_KEY: "fake-secret-key", AWS_SESSION_TOKEN: "fake-session-token" },
    path: /^\/model\/us\.anthropic\.claude-sonnet-4-5-20250929-v1%3A0\/converse-stream$/,
    keyHeader: "x-amz-security-token",
    check: (request) => {
      expect(request.model).toBe("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
      expect(request.auth).toBe("sigv4");
      expect(request.sigv4).toMatchObject({ accessKeyId: "AKIAFAKEPROVIDERS001", region: "eu-west-3", service: "bedrock" });
      expect(request.headers.authorization).toMatch(/, Signature=<redacted>$/);
    },
  },
  {
    // Vertex AI: a bare-origin baseUrl gets /v1beta1/projects/<project>/locations/<location>/publishers/google; the
    // bearer token comes from the fake's OAuth endpoint.
    protocol: "vertex",
    provider: () => ({
      providerName: "google-vertex",
      setting: { baseUrl: server.url, project: "perstack-test", location: "europe-west4", headers: { "x-test": "google-vertex" } },
    }),
    model: "gemini-2.5-pro",
    env: {},
    path: /^\/v1beta1\/projects\/perstack-test\/locations\/europe-west4\/publishers\/google\/models\/gemini-2\.5-pro:streamGenerateContent\?alt=sse$/,
    keyHeader: "authorization",
    setup: registerVertexKey,
    options: () => ({ googleAuthOptions: { authClient: vertexAuthClient() } }),
    check: (request) => {
      expect(request.auth).toBe("issued-token");
      expect(request.model).toBe("gemini-2.5-pro");
    },
  },
];

describe("providers against the fake model server", () => {
  it.each(cases)("$protocol: tool call, then text, over streamText", async ({ protocol, provider, model, env, path, keyHeader, options, setup, check }) => {
    await setup?.();
    await setScript(protocol, [{ toolUse: [{ name: "writeTextFile", input: { path: "a.txt", text: "hi" } }] }, { text: "done" }]);
    const calls: unknown[] = [];
    const result = streamText({
      model: await createLanguageModel(provider(), model, env, options?.()),
      prompt: "Write hi to a.txt, then say done.",
      maxRetries: 0,
      tools: {
        writeTextFile: tool({
          description: "Writes a text file.",
          inputSchema: z.object({ path: z.string(), text: z.string() }),
          execute: (input) => {
            calls.push(input);
            return Promise.resolve(`wrote ${input.path}`);
          },
        }),
      },
      stopWhen: isStepCount(2),
    });

    expect(await result.text).toBe("done");
    expect(calls).toEqual([{ path: "a.txt", text: "hi" }]);
    const steps = await result.steps;
    expect(steps).toHaveLength(2);
    expect(steps[0]?.toolCalls.map((c) => [c.toolName, c.input])).toEqual([["writeTextFile", { path: "a.txt", text: "hi" }]]);
    const usage = await result.totalUsage;
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThan(0);

    const main = (await requestLog(protocol)).filter((r) => r.kind === "main");
    expect(main).toHaveLength(2);
    for (const request of main) {
      expect(request.url).toMatch(path);
      expect(request.headers["x-test"]).toBe(provider().providerName);
      expect(request.headers[keyHeader]).toBe("<redacted>");
      check?.(request);
    }
  });
});

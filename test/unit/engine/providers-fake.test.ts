// End to end through the real SDK providers against the project's fake model server (loopback only): one tool
// call turn and one text turn per provider, driven by streamText with a two-step loop.
import { isStepCount, streamText, tool } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { ProviderConfig } from "../../../src/config/schema.js";
import { createLanguageModel } from "../../../src/engine/providers.js";
import { fetchRequestLog, postScript } from "../../support/fake-models-server.js";
import { startFakeModels } from "../../fake-models/server.ts";
import type { FakeModelsHandle, ProtocolName, Step } from "../../fake-models/server.ts";

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
];

describe("providers against the fake model server", () => {
  it.each(cases)("$protocol: tool call, then text, over streamText", async ({ protocol, provider, model, env, path, keyHeader }) => {
    await setScript(protocol, [{ toolUse: [{ name: "writeTextFile", input: { path: "a.txt", text: "hi" } }] }, { text: "done" }]);
    const calls: unknown[] = [];
    const result = streamText({
      model: createLanguageModel(provider(), model, env),
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
    }
  });
});

// The engine's agent loop end to end in-process: real SDK providers against the fake model server (loopback),
// the real base skill over stdio in a temporary workspace. Asserts the event sequence, checkpoints and usage.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { EngineExpert, EngineInput, EngineStart } from "../../../src/engine/engine-input.js";
import { runEngineJob } from "../../../src/engine/engine-job.js";
import { EventSink } from "../../../src/engine/event-sink.js";
import { addUsage, emptyUsage, type Checkpoint, type ExpandedEvent, type PerstackEvent } from "../../../src/model/perstack.js";
import { PerstackStreamParser } from "../../../src/runtimes/perstack.js";
import { expandEvents } from "../../support/parser-feed.js";
import { startFakeModels } from "../../fake-models/server.ts";
import { postScript } from "../../support/fake-models-server.js";
import type { FakeModelsHandle, ProtocolName, Step } from "../../fake-models/server.ts";

const BASE_SKILL = fileURLToPath(new URL("../../../dist/src/engine/base-skill/server.js", import.meta.url));

let server: FakeModelsHandle;
beforeAll(async () => {
  server = await startFakeModels({ port: 0, host: "127.0.0.1" });
});
afterAll(async () => {
  await server.close();
});

const script = (protocol: ProtocolName, steps: Step[]) => postScript(server.url, protocol, steps);

const writer: EngineExpert = {
  key: "writer",
  name: "writer",
  version: "1.0.0",
  instruction: "Write what you are asked to.",
  delegates: [],
  skills: [{ type: "base", name: "@perstack/base" }],
};

type Provider = EngineInput["provider"];
/** The engine over the three protocols of the CLI runtimes (the others: test/unit/engine/providers-fake.test.ts). */
const PROVIDERS: Record<"anthropic" | "openai" | "gemini", { provider: () => Provider; model: string; env: Record<string, string> }> = {
  anthropic: { provider: () => ({ providerName: "anthropic", setting: { baseUrl: server.url } }), model: "claude-sonnet-4-5", env: { ANTHROPIC_API_KEY: "k" } },
  openai: { provider: () => ({ providerName: "openai", setting: { baseUrl: server.url } }), model: "gpt-5", env: { OPENAI_API_KEY: "k" } },
  gemini: { provider: () => ({ providerName: "google", setting: { baseUrl: server.url } }), model: "gemini-2.5-pro", env: { GOOGLE_GENERATIVE_AI_API_KEY: "k" } },
};

interface Run {
  /** In Perstack's shape: what the engine printed, read by the host's parser, references resolved. */
  events: ExpandedEvent[];
  /** The lines the engine printed. */
  lines: string[];
  workspace: string;
}

async function run(options: {
  protocol?: keyof typeof PROVIDERS;
  experts?: EngineExpert[];
  start?: EngineStart;
  maxSteps?: number;
  stepsBefore?: number;
  maxRetries?: number;
  workspace?: string;
}): Promise<Run> {
  const protocol = options.protocol ?? "anthropic";
  const p = PROVIDERS[protocol];
  const experts = options.experts ?? [writer];
  const workspace = options.workspace ?? mkdtempSync(join(tmpdir(), "engine-ws-"));
  const input: EngineInput = {
    version: 1,
    jobId: "job1",
    runId: `run-${Math.random().toString(36).slice(2, 8)}`,
    expertKey: experts[0]!.key,
    experts: Object.fromEntries(experts.map((e) => [e.key, e])),
    provider: p.provider(),
    model: p.model,
    maxSteps: options.maxSteps ?? 20,
    stepsBefore: options.stepsBefore ?? 0,
    maxRetries: options.maxRetries ?? 2,
    timeout: 30_000,
    workspace,
    runtime: "perstack",
    runtimeVersion: "test",
    start: options.start ?? { kind: "query", query: "Write hello to hello.txt" },
  };
  const parser = new PerstackStreamParser({
    jobId: "job1", runId: input.runId, expert: { key: input.expertKey, name: input.expertKey, version: "1.0.0" }, instruction: "", query: "", runtime: "perstack", metadata: {}, newId: () => "host-id", now: Date.now,
  });
  const lines: string[] = [];
  const recorded: PerstackEvent[] = [];
  const sink = new EventSink("job1", (line) => {
    lines.push(line.trimEnd());
    recorded.push(...parser.line(line.trimEnd()));
  });
  await runEngineJob(input, { sink, env: p.env, sleep: () => Promise.resolve() });
  return { events: expandEvents(parser, recorded), lines, workspace };
}

type AnyEvent = PerstackEvent | ExpandedEvent;
const types = (events: AnyEvent[], runId?: string) =>
  events.filter((e) => !runId || e.runId === runId).map((e) => e.type).filter((t) => !t.startsWith("stream") && !t.startsWith("skill") && !t.includes("Streaming"));
const checkpointsOf = (events: ExpandedEvent[]) =>
  events.flatMap((e) => ("checkpoint" in e && e.checkpoint ? [e.checkpoint as Checkpoint] : []));
const ofType = <E extends AnyEvent, T extends E["type"]>(events: E[], type: T) =>
  events.filter((e): e is Extract<E, { type: T }> => e.type === type);

const WRITE_THEN_COMPLETE: Step[] = [
  { thinking: "I will write the file.", toolUse: [{ name: "writeTextFile", input: { path: "hello.txt", text: "hello" } }] },
  { toolUse: [{ name: "attemptCompletion", input: {} }] },
  { text: "Wrote hello.txt." },
];

describe("engine loop", () => {
  it.each(["anthropic", "openai", "gemini"] as const)("%s: writes a file, completes, one checkpoint per step, usage summed", async (protocol) => {
    await script(protocol, WRITE_THEN_COMPLETE);
    const { events, workspace } = await run({ protocol });
    expect(readFileSync(join(workspace, "hello.txt"), "utf8")).toBe("hello");
    expect(types(events)).toEqual([
      "initializeRuntime",
      "startRun",
      "startGeneration",
      "callTools",
      "resolveToolResults",
      "finishAllToolCalls",
      "continueToNextStep",
      "startGeneration",
      "callTools",
      "resolveToolResults",
      "attemptCompletion",
      "finishAllToolCalls",
      "completeRun",
    ]);
    const complete = ofType(events, "completeRun")[0]!;
    expect(complete.text).toBe("Wrote hello.txt.");
    expect(complete.checkpoint.status).toBe("completed");
    expect(complete.checkpoint.stepNumber).toBe(2);
    const checkpoints = checkpointsOf(events);
    expect(checkpoints.map((c) => [c.status, c.stepNumber])).toEqual([["proceeding", 1], ["completed", 2]]);
    // Usage: each checkpoint carries the sum so far; the final one includes the closing answer's generation.
    const calls = ofType(events, "callTools");
    expect(checkpoints[0]!.usage).toEqual(calls[0]!.usage);
    const sumOfCalls = addUsage(calls[0]!.usage, calls[1]!.usage);
    expect(complete.usage.totalTokens).toBeGreaterThan(sumOfCalls.totalTokens);
    expect(complete.usage.inputTokens).toBeGreaterThan(sumOfCalls.inputTokens);
    expect(calls[0]!.toolCalls[0]).toMatchObject({ skillName: "@perstack/base", toolName: "writeTextFile" });
    if (protocol === "anthropic") {
      const expertMessage = calls[0]!.newMessage;
      expect(expertMessage.type === "expertMessage" && expertMessage.contents[0]).toMatchObject({ type: "thinkingPart", thinking: "I will write the file." });
      expect(ofType(events, "streamReasoning").length).toBeGreaterThan(0);
    }
    expect(ofType(events, "streamRunResult").map((e) => e.delta).join("")).toBe("Wrote hello.txt.");
  });

  it("a plain answer without tool calls completes the run", async () => {
    await script("anthropic", [{ text: "Nothing to do." }]);
    const { events } = await run({});
    expect(ofType(events, "completeRun")[0]!.text).toBe("Nothing to do.");
  });

  it("maxSteps stops the run with stoppedByExceededMaxSteps", async () => {
    await script("anthropic", [
      { toolUse: [{ name: "healthCheck", input: {} }] },
      { toolUse: [{ name: "healthCheck", input: {} }] },
      { text: "never" },
    ]);
    const { events } = await run({ maxSteps: 3, stepsBefore: 1 });
    const stop = ofType(events, "stopRunByExceededMaxSteps");
    expect(stop).toHaveLength(1);
    expect(ofType(events, "startGeneration")).toHaveLength(2);
    expect(stop[0]!.checkpoint.status).toBe("stoppedByExceededMaxSteps");
  });

  it("a 429 then success gives a retry event and completes", async () => {
    await script("anthropic", [{ error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 1 }, { text: "ok" }]);
    const { events } = await run({});
    const retries = ofType(events, "retry");
    expect(retries).toHaveLength(1);
    expect(retries[0]!.reason).toMatch(/429/);
    expect(ofType(events, "completeRun")).toHaveLength(1);
  });

  it("a persistent 500 stops with stoppedByError after maxRetries", async () => {
    await script("anthropic", [{ error: { status: 500, type: "api_error", message: "boom" } }, { text: "never" }]);
    const { events } = await run({ maxRetries: 2 });
    expect(ofType(events, "retry")).toHaveLength(2);
    const stop = ofType(events, "stopRunByError")[0]!;
    expect(stop.error).toMatchObject({ statusCode: 500, isRetryable: true });
    expect(stop.error.message).toMatch(/boom/);
  });

  it("delegates to two experts in one step, concurrently, and uses both results", async () => {
    const coordinator: EngineExpert = { ...writer, key: "lead", name: "lead", delegates: ["alpha", "@team/beta"], skills: [] };
    // The children keep the base skill: the Anthropic fake takes only requests with tools for conversation turns.
    const alpha: EngineExpert = { ...writer, key: "alpha", name: "alpha", description: "Says alpha" };
    const beta: EngineExpert = { ...writer, key: "@team/beta", name: "@team/beta", description: "Says beta" };
    // Each child starts a fresh conversation with its query as the first user message: forQuery gives it its own script.
    await script("anthropic", [
      { toolUse: [{ name: "alpha", input: { query: "say alpha" } }, { name: "team__beta", input: { query: "say beta" } }] },
      { text: "alpha answer", forQuery: "say alpha" },
      { text: "beta answer", forQuery: "say beta" },
      { text: "Both said their part." },
    ]);
    const { events } = await run({ experts: [coordinator, alpha, beta] });
    const runIds = [...new Set(events.map((e) => e.runId))];
    expect(runIds).toHaveLength(3);
    const stop = ofType(events, "stopRunByDelegate")[0]!;
    expect(stop.checkpoint.delegateTo?.map((d) => d.expert.key)).toEqual(["alpha", "@team/beta"]);
    const childStarts = ofType(events, "startRun").filter((e) => e.initialCheckpoint.delegatedBy);
    expect(childStarts.map((e) => e.initialCheckpoint.delegatedBy?.checkpointId)).toEqual([stop.checkpoint.id, stop.checkpoint.id]);
    // Concurrent: both delegates have started before either finishes.
    const firstChildDone = events.findIndex((e) => e.type === "completeRun");
    expect(childStarts.every((start) => events.indexOf(start) < firstChildDone)).toBe(true);
    const complete = ofType(events, "completeRun");
    expect(complete).toHaveLength(3);
    const root = complete.find((e) => e.runId === stop.runId)!;
    expect(root.text).toBe("Both said their part.");
    const toolMessage = root.checkpoint.messages.find((m) => m.type === "toolMessage")!;
    expect(toolMessage.type === "toolMessage" && toolMessage.contents.map((c) => c.contents[0])).toEqual([{ type: "textPart", text: "alpha answer" }, { type: "textPart", text: "beta answer" }]);
  });

  it("a delegate's interactive question stops the job; the answer resumes the delegate, then its parent", async () => {
    const coordinator: EngineExpert = { ...writer, key: "lead", name: "lead", delegates: ["alpha", "asker"], skills: [] };
    const alpha: EngineExpert = { ...writer, key: "alpha", name: "alpha" };
    const asker: EngineExpert = {
      ...writer,
      key: "asker",
      name: "asker",
      skills: [
        { type: "base", name: "@perstack/base" },
        { type: "interactive", name: "ask", tools: [{ name: "askUser", inputSchema: { type: "object", properties: { question: { type: "string" } } } }] },
      ],
    };
    await script("anthropic", [
      { toolUse: [{ name: "alpha", input: { query: "say alpha" } }, { name: "asker", input: { query: "ask color" } }] },
      { text: "All done." },
      { text: "alpha answer", forQuery: "say alpha" },
      { toolUse: [{ name: "askUser", input: { question: "Which color?" } }], forQuery: "ask color" },
      { text: "color is blue", forQuery: "ask color" },
    ]);
    const experts = [coordinator, alpha, asker];
    const first = await run({ experts });
    const stops = ofType(first.events, "stopRunByInteractiveTool");
    expect(stops.map((e) => e.expertKey)).toEqual(["asker", "lead"]);
    const [leaf, root] = [stops[0]!.checkpoint, stops[1]!.checkpoint];
    expect(root.status).toBe("stoppedByInteractiveTool");
    expect(root.delegateTo).toEqual([expect.objectContaining({ expert: expect.objectContaining({ key: "asker" }), checkpointId: leaf.id })]);
    expect(root.pendingToolCalls?.map((c) => c.skillName)).toEqual(["asker"]);
    expect(root.partialToolResults?.map((r) => r.result[0])).toEqual([{ type: "textPart", text: "alpha answer" }]);
    expect(ofType(first.events, "completeRun").map((e) => e.expertKey)).toEqual(["alpha"]);

    const second = await run({ experts, start: { kind: "answer", checkpoint: root, answer: "blue", delegated: [leaf] }, stepsBefore: 3 });
    const complete = ofType(second.events, "completeRun");
    expect(complete.map((e) => e.expertKey)).toEqual(["asker", "lead"]);
    const askerDone = complete[0]!.checkpoint;
    const answered = askerDone.messages.find((m) => m.type === "toolMessage")!;
    expect(answered.type === "toolMessage" && answered.contents[0]!.contents[0]).toEqual({ type: "textPart", text: "blue" });
    expect(askerDone.delegatedBy?.runId).toBe(complete[1]!.runId);
    const rootDone = complete[1]!;
    expect(rootDone.text).toBe("All done.");
    const tools = rootDone.checkpoint.messages.find((m) => m.type === "toolMessage")!;
    expect(tools.type === "toolMessage" && tools.contents.map((c) => c.contents[0])).toEqual([
      { type: "textPart", text: "alpha answer" },
      { type: "textPart", text: "color is blue" },
    ]);
  });

  it("an interactive tool stops the run; the answer continues it", async () => {
    const asker: EngineExpert = {
      ...writer,
      skills: [
        { type: "base", name: "@perstack/base" },
        { type: "interactive", name: "ask", tools: [{ name: "askUser", description: "Ask the user", inputSchema: { type: "object", properties: { question: { type: "string" } } } }] },
      ],
    };
    await script("anthropic", [{ toolUse: [{ name: "askUser", input: { question: "Which color?" } }] }]);
    const first = await run({ experts: [asker] });
    const stop = ofType(first.events, "stopRunByInteractiveTool")[0]!;
    expect(stop.checkpoint.pendingToolCalls).toEqual([expect.objectContaining({ toolName: "askUser", args: { question: "Which color?" } })]);
    expect(ofType(first.events, "callInteractiveTool")).toHaveLength(1);

    // The fake picks the reply by the number of assistant turns in the request: the answer is turn 1.
    await script("anthropic", [{ text: "unused" }, { text: "You chose blue." }]);
    const second = await run({ experts: [asker], start: { kind: "answer", checkpoint: stop.checkpoint, answer: "blue" }, stepsBefore: 1 });
    const complete = ofType(second.events, "completeRun")[0]!;
    expect(complete.text).toBe("You chose blue.");
    const toolMessage = complete.checkpoint.messages.find((m) => m.type === "toolMessage")!;
    expect(toolMessage.type === "toolMessage" && toolMessage.contents[0]!.contents[0]).toEqual({ type: "textPart", text: "blue" });
    expect(complete.checkpoint.stepNumber).toBe(2);
  });

  it("resumes from an earlier checkpoint with the same history", async () => {
    await script("anthropic", WRITE_THEN_COMPLETE);
    const first = await run({});
    const step1 = checkpointsOf(first.events).find((c) => c.status === "proceeding")!;
    await script("anthropic", [{ text: "unused" }, { toolUse: [{ name: "attemptCompletion", input: {} }] }, { text: "Resumed and done." }]);
    const second = await run({ start: { kind: "resume", checkpoint: step1 }, stepsBefore: 2, workspace: first.workspace });
    const complete = ofType(second.events, "completeRun")[0]!;
    expect(complete.text).toBe("Resumed and done.");
    expect(complete.checkpoint.stepNumber).toBe(2);
    expect(ofType(second.events, "attemptCompletion")).toHaveLength(1);
    expect(complete.checkpoint.messages.slice(0, step1.messages.length).map((m) => m.id).slice(1)).toEqual(step1.messages.map((m) => m.id).slice(1));
    expect(complete.usage.totalTokens).toBeGreaterThan(step1.usage.totalTokens);
    expect(emptyUsage().totalTokens).toBe(0);
  });

  it("a missing provider key is recorded as a failed run", async () => {
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    await runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer }, provider: { providerName: "anthropic" }, model: "m",
        maxSteps: 5, stepsBefore: 0, maxRetries: 0, timeout: 1000, workspace: tmpdir(), runtime: "perstack", runtimeVersion: "t",
        start: { kind: "query", query: "q" },
      },
      { sink, env: {} },
    );
    expect(types(events)).toEqual(["initializeRuntime", "startRun", "stopRunByError"]);
    expect(ofType(events, "stopRunByError")[0]!.error.message).toMatch(/ANTHROPIC_API_KEY/);
  });
});

describe("generation timeout", () => {
  it("a generation that never answers times out, is retried, and stops the run with GenerationTimeout", async () => {
    const { MockLanguageModelV4 } = await import("ai/test");
    let attempts = 0;
    const model = new MockLanguageModelV4({
      doStream: ({ abortSignal }) => {
        attempts += 1;
        return new Promise((_, reject) => {
          abortSignal?.addEventListener("abort", () => reject(abortSignal.reason as Error), { once: true });
        });
      },
    });
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    await runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer: { ...writer, skills: [] } }, provider: { providerName: "anthropic" },
        model: "m", maxSteps: 5, stepsBefore: 0, maxRetries: 1, timeout: 200, workspace: tmpdir(), runtime: "perstack", runtimeVersion: "t",
        start: { kind: "query", query: "q" },
      },
      { sink, env: {}, createModel: () => model, sleep: () => Promise.resolve() },
    );
    expect(attempts).toBe(2);
    expect(ofType(events, "retry")[0]!.reason).toMatch(/GenerationTimeout: no complete answer within timeout \(200 ms\)/);
    expect(ofType(events, "stopRunByError")[0]!.error).toMatchObject({ name: "GenerationTimeout", isRetryable: true });
  });
});

describe("the start gate", () => {
  it("before networkReady the engine starts up and its base skill connects, but calls no model; then the run goes on", async () => {
    const { MockLanguageModelV4 } = await import("ai/test");
    let calls = 0;
    const model = new MockLanguageModelV4({
      doStream: async () => {
        calls += 1;
        return {
          stream: new ReadableStream({
            start(controller) {
              controller.enqueue({ type: "text-start", id: "t" });
              controller.enqueue({ type: "text-delta", id: "t", delta: "Done." });
              controller.enqueue({ type: "text-end", id: "t" });
              controller.enqueue({ type: "finish", finishReason: { unified: "stop", raw: "stop" }, usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } } });
              controller.close();
            },
          }),
        };
      },
    });
    let open: () => void = () => {};
    const networkReady = new Promise<void>((resolve) => {
      open = resolve;
    });
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    const done = runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer }, provider: { providerName: "anthropic" }, model: "m",
        maxSteps: 5, stepsBefore: 0, maxRetries: 0, timeout: 30_000, workspace: mkdtempSync(join(tmpdir(), "engine-gate-")), runtime: "perstack",
        runtimeVersion: "t", start: { kind: "query", query: "q" },
      },
      { sink, env: {}, createModel: () => model, networkReady },
    );
    await vi.waitFor(() => expect(events.some((e) => e.type === "skillConnected")).toBe(true), { timeout: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).toBe(0);
    expect(types(events)).toEqual(["initializeRuntime", "startRun"]);
    open();
    await done;
    expect(calls).toBe(1);
    expect(types(events).at(-1)).toBe("completeRun");
  });
});

describe("skill environments", () => {
  it("a skill server sees its requiredEnv and the proxy variables, never the provider key or other variables", async () => {
    const probe: EngineExpert = {
      ...writer,
      // The base skill's server run as an ordinary stdio skill, so exec can show the environment it was given.
      skills: [{ type: "mcpStdio", name: "probe", command: process.execPath, args: [BASE_SKILL], envNames: ["PERSTACK_WORKSPACE", "SKILL_TOKEN"] }],
    };
    await script("anthropic", [{ toolUse: [{ name: "exec", input: { command: "env" } }] }, { text: "seen" }]);
    const workspace = mkdtempSync(join(tmpdir(), "engine-env-"));
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    await runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer: probe }, provider: PROVIDERS.anthropic.provider(), model: "m",
        maxSteps: 5, stepsBefore: 0, maxRetries: 0, timeout: 30_000, workspace, runtime: "perstack", runtimeVersion: "t", start: { kind: "query", query: "q" },
      },
      {
        sink,
        env: { ANTHROPIC_API_KEY: "provider-secret", SKILL_TOKEN: "skill-token", OTHER_SECRET: "other", PERSTACK_WORKSPACE: workspace, HTTPS_PROXY: "http://proxy:3128" },
      },
    );
    const output = ofType(events, "resolveToolResults")[0]!.toolResults[0]!.result.map((p) => (p.type === "textPart" ? p.text : "")).join("");
    expect(output).toContain("SKILL_TOKEN=skill-token");
    expect(output).toContain("HTTPS_PROXY=http://proxy:3128");
    expect(output).not.toContain("provider-secret");
    expect(output).not.toContain("OTHER_SECRET");
  });

  it("the base skill runs in the engine's process, and its exec commands still get only the environment its own process had", async () => {
    await script("anthropic", [{ toolUse: [{ name: "exec", input: { command: "env" } }] }, { text: "seen" }]);
    const workspace = mkdtempSync(join(tmpdir(), "engine-env-"));
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    await runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer }, provider: PROVIDERS.anthropic.provider(), model: "m",
        maxSteps: 5, stepsBefore: 0, maxRetries: 0, timeout: 30_000, workspace, runtime: "perstack", runtimeVersion: "t", start: { kind: "query", query: "q" },
      },
      {
        sink,
        env: { ANTHROPIC_API_KEY: "provider-secret", OTHER_SECRET: "other", PATH: "/usr/bin:/bin", HOME: "/home/agent", SHELL: "() { evil; }", HTTPS_PROXY: "http://proxy:3128" },
      },
    );
    const skillEvents = events.filter((e) => e.type === "skillStarting" || e.type === "skillConnected");
    expect(skillEvents.map((e) => e.type)).toEqual(["skillStarting", "skillConnected"]);
    const output = ofType(events, "resolveToolResults")[0]!.toolResults[0]!.result.map((p) => (p.type === "textPart" ? p.text : "")).join("");
    const seen = output.trim().split("\n").map((line) => line.split("=")[0]).sort();
    expect(seen).toEqual(["HOME", "HTTPS_PROXY", "PATH", "PERSTACK_WORKSPACE"]);
    expect(output).toContain(`PERSTACK_WORKSPACE=${workspace}`);
    expect(output).not.toContain("provider-secret");
  });

  it("a base skill whose workspace is missing fails to start, naming the skill", async () => {
    const events: PerstackEvent[] = [];
    const sink = new EventSink("job1", (line) => events.push(JSON.parse(line) as PerstackEvent));
    await runEngineJob(
      {
        version: 1, jobId: "job1", runId: "r", expertKey: "writer", experts: { writer }, provider: PROVIDERS.anthropic.provider(), model: "m",
        maxSteps: 5, stepsBefore: 0, maxRetries: 0, timeout: 30_000, workspace: join(tmpdir(), "engine-no-such-workspace"), runtime: "perstack", runtimeVersion: "t",
        start: { kind: "query", query: "q" },
      },
      { sink, env: { ANTHROPIC_API_KEY: "k" } },
    );
    const stop = events.find((e) => e.type === "stopRunByError") as { error?: { message?: string } } | undefined;
    expect(JSON.stringify(stop ?? events.at(-1))).toMatch(/failed to start \(built in\).*engine-no-such-workspace/);
  });
});

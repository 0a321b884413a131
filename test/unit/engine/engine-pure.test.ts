// The engine's pure parts: checkpoint messages to the AI SDK prompt, error classification and backoff, tool
// naming and routing, and how each kind of start becomes the first run.
import { APICallError } from "ai";
import { describe, expect, it } from "vitest";
import type { EngineExpert, EngineInput } from "../../../src/engine/engine-input.js";
import { firstRun } from "../../../src/engine/engine-job.js";
import { buildExpertTools, delegateToolName } from "../../../src/engine/expert-tools.js";
import { toModelPrompt } from "../../../src/engine/model-messages.js";
import { backoffMs, classifyGenerationError } from "../../../src/engine/retry-policy.js";
import { emptyUsage, type Checkpoint, type Message } from "../../../src/model/perstack.js";

const expert: EngineExpert = {
  key: "lead",
  name: "lead",
  version: "1.0.0",
  instruction: "Lead the work.",
  delegates: ["@team/writer"],
  skills: [
    { type: "base", name: "@perstack/base" },
    { type: "interactive", name: "ask", tools: [{ name: "askUser", inputSchema: { type: "object" } }] },
  ],
};
const writer: EngineExpert = { ...expert, key: "@team/writer", name: "@team/writer", delegates: [], skills: [], description: "Writes." };

const conversation: Message[] = [
  { type: "instructionMessage", id: "i", contents: [{ type: "textPart", text: "old instruction" }] },
  { type: "userMessage", id: "u", contents: [{ type: "textPart", text: "do it" }] },
  {
    type: "expertMessage",
    id: "e",
    contents: [
      { type: "thinkingPart", thinking: "hmm", signature: "sig" },
      { type: "textPart", text: "calling" },
      { type: "toolCallPart", toolCallId: "c1", toolName: "writeTextFile", args: { path: "a" } },
      { type: "toolCallPart", toolCallId: "c2", toolName: "askUser", args: { q: "?" } },
    ],
  },
];

function checkpoint(status: Checkpoint["status"], messages: Message[], extra: Partial<Checkpoint> = {}): Checkpoint {
  return { id: "cp", jobId: "j", runId: "r0", status, stepNumber: 3, messages, expert: { key: "lead", name: "lead", version: "1.0.0" }, usage: { ...emptyUsage(), totalTokens: 7 }, ...extra };
}

function input(start: EngineInput["start"]): EngineInput {
  return {
    version: 1, jobId: "j", runId: "r1", expertKey: "lead", experts: { lead: expert, "@team/writer": writer },
    provider: { providerName: "anthropic" }, model: "m", maxSteps: 10, stepsBefore: 0, maxRetries: 1, timeout: 1000,
    workspace: "/workspace", runtime: "perstack", runtimeVersion: "t", start,
  };
}

describe("toModelPrompt", () => {
  it("moves the instruction to instructions and keeps signed thinking, text and tool calls in order", () => {
    const prompt = toModelPrompt([
      ...conversation,
      {
        type: "toolMessage",
        id: "t",
        contents: [
          { type: "toolResultPart", toolCallId: "c1", toolName: "writeTextFile", contents: [{ type: "textPart", text: "ok" }] },
          { type: "toolResultPart", toolCallId: "c2", toolName: "askUser", contents: [{ type: "textPart", text: "no" }], isError: true },
        ],
      },
    ]);
    expect(prompt.instructions).toBe("old instruction");
    expect(prompt.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(prompt.messages[1]!.content).toEqual([
      { type: "reasoning", text: "hmm", providerOptions: { anthropic: { signature: "sig" } } },
      { type: "text", text: "calling" },
      { type: "tool-call", toolCallId: "c1", toolName: "writeTextFile", input: { path: "a" } },
      { type: "tool-call", toolCallId: "c2", toolName: "askUser", input: { q: "?" } },
    ]);
    expect(prompt.messages[2]!.content).toEqual([
      { type: "tool-result", toolCallId: "c1", toolName: "writeTextFile", output: { type: "text", value: "ok" } },
      { type: "tool-result", toolCallId: "c2", toolName: "askUser", output: { type: "error-text", value: "no" } },
    ]);
  });
});

describe("retry policy", () => {
  const apiError = (status: number, headers: Record<string, string> = {}, body = "") =>
    new APICallError({ message: "m", url: "u", requestBodyValues: {}, statusCode: status, responseHeaders: headers, responseBody: body });

  it.each([
    [429, true],
    [500, true],
    [503, true],
    [408, true],
    [400, false],
    [401, false],
    [404, false],
  ])("HTTP %i retryable: %s", (status, retryable) => {
    expect(classifyGenerationError(apiError(status))).toMatchObject({ statusCode: status, isRetryable: retryable });
  });

  it("takes the provider's message from the body and honours Retry-After", () => {
    const error = classifyGenerationError(apiError(429, { "retry-after": "2" }, JSON.stringify({ error: { message: "slow down" } })));
    expect(error.message).toBe("429: slow down");
    expect(error.retryAfterMs).toBe(2000);
    expect(backoffMs(1, error.retryAfterMs)).toBe(2000);
  });

  it("retries timeouts and dropped connections, not other errors", () => {
    const timeout = new Error("t");
    timeout.name = "TimeoutError";
    expect(classifyGenerationError(timeout).isRetryable).toBe(true);
    expect(classifyGenerationError(Object.assign(new Error("fetch failed"), { cause: { code: "ECONNRESET" } })).isRetryable).toBe(true);
    expect(classifyGenerationError(new TypeError("bad")).isRetryable).toBe(false);
  });

  it("backs off exponentially with a cap", () => {
    expect([1, 2, 3, 10].map((n) => backoffMs(n))).toEqual([1000, 2000, 4000, 30000]);
    expect(backoffMs(1, 600_000)).toBe(60_000);
  });
});

describe("expert tools", () => {
  it("names delegates safely and routes every kind of tool", () => {
    expect(delegateToolName("@team/writer")).toBe("team__writer");
    const tools = buildExpertTools(
      expert,
      [{ name: "writeTextFile", skillName: "@perstack/base", toolName: "writeTextFile", inputSchema: { type: "object" } }],
      new Set(["@perstack/base"]),
      { lead: expert, "@team/writer": writer },
    );
    expect(Object.keys(tools.tools)).toEqual(["writeTextFile", "team__writer", "askUser"]);
    expect(tools.routes.get("team__writer")).toEqual({ kind: "delegate", name: "team__writer", expertKey: "@team/writer" });
    expect(tools.routes.get("askUser")).toMatchObject({ kind: "interactive", skillName: "ask" });
    expect(tools.routes.get("writeTextFile")).toMatchObject({ kind: "skill", isBase: true, exposed: "writeTextFile" });
  });

  it("keeps names unique when a delegate and a tool collide", () => {
    const clash = { ...expert, delegates: ["writeTextFile"] };
    const tools = buildExpertTools(clash, [{ name: "writeTextFile", skillName: "s", toolName: "writeTextFile", inputSchema: { type: "object" } }], new Set(), {
      writeTextFile: { ...writer, key: "writeTextFile" },
    });
    expect(Object.keys(tools.tools)).toEqual(["writeTextFile", "delegate__writeTextFile", "askUser"]);
  });
});

describe("firstRun", () => {
  it("a query starts a fresh conversation at step 1", () => {
    const run = firstRun(input({ kind: "query", query: "hello" }));
    expect(run.stepNumber).toBe(1);
    expect(run.messages.map((m) => m.type)).toEqual(["instructionMessage", "userMessage"]);
    expect(run.messages[0]!.contents[0]).toMatchObject({ text: expect.stringContaining("Lead the work.") });
  });

  it("continue answers open calls, adds the query, refreshes the instruction and keeps usage", () => {
    const run = firstRun(input({ kind: "continue", query: "next", checkpoint: checkpoint("stoppedByDelegate", conversation, { partialToolResults: [{ id: "c1", skillName: "b", toolName: "writeTextFile", result: [{ type: "textPart", text: "ok" }] }] }) }));
    expect(run.stepNumber).toBe(4);
    expect(run.usage.totalTokens).toBe(7);
    expect(run.messages[0]!.contents[0]).toMatchObject({ text: expect.stringContaining("Lead the work.") });
    const tool = run.messages[3]!;
    expect(tool.type === "toolMessage" && tool.contents.map((c) => [c.toolCallId, c.isError ?? false])).toEqual([["c1", false], ["c2", true]]);
    expect(run.messages[4]).toMatchObject({ type: "userMessage", contents: [{ text: "next" }] });
  });

  it("answer resumes the open step with the partial results", () => {
    const results = [{ id: "c1", skillName: "b", toolName: "writeTextFile", result: [{ type: "textPart" as const, text: "ok" }] }];
    const run = firstRun(input({ kind: "answer", answer: "blue", checkpoint: checkpoint("stoppedByInteractiveTool", conversation, { partialToolResults: results }) }));
    expect(run.stepNumber).toBe(3);
    expect(run.pending).toEqual({ results, answer: "blue" });
    expect(() => firstRun(input({ kind: "answer", answer: "x", checkpoint: checkpoint("completed", conversation.slice(0, 2)) }))).toThrow(/not waiting/);
  });

  it("resume carries on from where the checkpoint stopped", () => {
    const tool: Message = { type: "toolMessage", id: "t", contents: [] };
    expect(firstRun(input({ kind: "resume", checkpoint: checkpoint("proceeding", [...conversation, tool]) })).stepNumber).toBe(4);
    expect(firstRun(input({ kind: "resume", checkpoint: checkpoint("stoppedByError", [...conversation, tool]) })).stepNumber).toBe(3);
    expect(firstRun(input({ kind: "resume", checkpoint: checkpoint("stoppedByDelegate", conversation) })).pending).toEqual({ results: [] });
    const answered: Message = { type: "expertMessage", id: "x", contents: [{ type: "textPart", text: "done" }] };
    expect(() => firstRun(input({ kind: "resume", checkpoint: checkpoint("completed", [...conversation.slice(0, 2), answered]) }))).toThrow(/give a query/);
    expect(() => firstRun(input({ kind: "resume", checkpoint: checkpoint("stoppedByInteractiveTool", conversation) }))).toThrow(/-i/);
  });
});

describe("tool results with media", () => {
  it("keeps images and PDFs inline and gives them to the model as content parts", async () => {
    const { toolResultContents } = await import("../../../src/engine/expert-run.js");
    const contents = toolResultContents({
      content: [
        { type: "text", text: "meta" },
        { type: "image", data: "aW1n", mimeType: "image/png" },
        { type: "resource", resource: { uri: "file:///workspace/a.pdf", mimeType: "application/pdf", blob: "cGRm" } },
        { type: "resource", resource: { uri: "file:///workspace/a.bin", mimeType: "application/octet-stream", blob: "AA==" } },
      ],
    });
    expect(contents).toEqual([
      { type: "textPart", text: "meta" },
      { type: "imageInlinePart", encodedData: "aW1n", mimeType: "image/png" },
      { type: "fileInlinePart", encodedData: "cGRm", mimeType: "application/pdf" },
      { type: "textPart", text: "[resource file:///workspace/a.bin (application/octet-stream)]" },
    ]);
    const prompt = toModelPrompt([
      { type: "toolMessage", id: "t", contents: [{ type: "toolResultPart", toolCallId: "c", toolName: "readImageFile", contents: contents.slice(0, 3) }] },
    ]);
    expect(prompt.messages[0]!.content).toEqual([
      {
        type: "tool-result",
        toolCallId: "c",
        toolName: "readImageFile",
        output: {
          type: "content",
          value: [
            { type: "text", text: "meta" },
            { type: "image-data", data: "aW1n", mediaType: "image/png" },
            { type: "file-data", data: "cGRm", mediaType: "application/pdf" },
          ],
        },
      },
    ]);
  });
});

describe("reasoningBudget", () => {
  it("becomes each provider's thinking option: tokens or an effort level", async () => {
    const { reasoningOptions } = await import("../../../src/engine/generation.js");
    expect(reasoningOptions("anthropic", undefined)).toEqual({});
    expect(reasoningOptions("anthropic", "none")).toEqual({});
    expect(reasoningOptions("anthropic", 2048)).toEqual({ providerOptions: { anthropic: { thinking: { type: "enabled", budgetTokens: 2048 } } } });
    expect(reasoningOptions("anthropic", "high")).toEqual({ providerOptions: { anthropic: { thinking: { type: "enabled", budgetTokens: 31_999 } } } });
    expect(reasoningOptions("openai", 5000)).toEqual({ providerOptions: { openai: { reasoningEffort: "medium", reasoningSummary: "auto" } } });
    expect(reasoningOptions("google", "low")).toEqual({ providerOptions: { google: { thinkingConfig: { thinkingBudget: 4096, includeThoughts: true } } } });
    expect(reasoningOptions("deepseek", "high")).toEqual({});
  });
});

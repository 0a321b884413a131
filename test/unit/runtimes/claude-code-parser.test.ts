import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { ExpandedEvent } from "../../../src/model/perstack.js";
import { ClaudeStreamParser, claudeUsage, splitToolName } from "../../../src/runtimes/claude-code.js";
import { feedParser } from "../../support/parser-feed.js";

function parser() {
  let n = 0;
  return new ClaudeStreamParser({
    jobId: "job",
    runId: "run",
    expert: { key: "demo", name: "demo", version: "1.0.0" },
    instruction: "You are a demo.",
    query: "write hello",
    runtime: "claude-code",
    metadata: { runtimeVersion: "2.1.330" },
    newId: () => `id${++n}`,
    now: () => 1000,
  });
}

function feed(lines: string[], exitCode = 0): ExpandedEvent[] {
  return feedParser(parser(), lines, exitCode);
}

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/claude-code/${name}`, import.meta.url), "utf8").split("\n").filter(Boolean);

describe("Claude Code stream parser, on output recorded from the real CLI in the sandbox", () => {
  const events = feed(fixture("sandbox-run-success.jsonl"));
  const types = events.map((e) => e.type);

  it("yields the normalized event sequence", () => {
    expect(types).toEqual([
      "initializeRuntime", "startRun",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "completeRun",
    ]);
  });

  it("separates built-in tools from MCP skill tools", () => {
    const calls = events.flatMap((e) => (e.type === "callTools" ? e.toolCalls : []));
    expect(calls.map((c) => [c.skillName, c.toolName])).toEqual([["claude-code", "Write"], ["everything", "echo"]]);
    expect(calls[0]!.args).toEqual({ file_path: "/workspace/hello.txt", content: "hello from claude\n" });
    const results = events.flatMap((e) => (e.type === "resolveToolResults" ? e.toolResults : []));
    expect(results.map((r) => [r.skillName, r.toolName])).toEqual([["claude-code", "Write"], ["everything", "echo"]]);
    expect(results[1]!.result[0]).toEqual({ type: "textPart", text: "Echo: ping" });
  });

  it("ends with a completed checkpoint holding the final text and the reported usage", () => {
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("expected completeRun");
    expect(done.text).toBe("All done: wrote hello.txt");
    expect(done.checkpoint.status).toBe("completed");
    expect(done.checkpoint.stepNumber).toBe(3);
    expect(done.usage.totalTokens).toBeGreaterThan(0);
    expect(done.usage.totalTokens).toBe(done.usage.inputTokens + done.usage.outputTokens);
    const last = done.checkpoint.messages.at(-1)!;
    expect(last.type).toBe("expertMessage");
    expect(JSON.stringify(last)).toContain("All done: wrote hello.txt");
    expect(done.checkpoint.metadata).toMatchObject({ runtime: "claude-code", runtimeVersion: "2.1.330", model: "claude-sonnet-4-5" });
  });

  it("writes one proceeding checkpoint per completed tool step", () => {
    const steps = events.flatMap((e) => (e.type === "continueToNextStep" ? [e.checkpoint] : []));
    expect(steps.map((c) => [c.stepNumber, c.status])).toEqual([[1, "proceeding"], [2, "proceeding"]]);
  });
});

describe("Claude Code stream parser, failures and junk", () => {
  const init = JSON.stringify({ type: "system", subtype: "init", session_id: "s", model: "m" });

  it("maps an API error result to stopRunByError with the status kept", () => {
    const events = feed([
      init,
      JSON.stringify({ type: "result", subtype: "success", is_error: true, api_error_status: 500, result: "API Error: 500 boom", usage: { input_tokens: 0, output_tokens: 0 } }),
    ], 1);
    const stop = events.at(-1)!;
    if (stop.type !== "stopRunByError") throw new Error("expected stopRunByError");
    expect(stop.error).toEqual({ name: "APIError", message: "API Error: 500 boom", statusCode: 500, isRetryable: true });
    expect(stop.checkpoint.status).toBe("stoppedByError");
  });

  it("maps max turns to stopRunByExceededMaxSteps", () => {
    const events = feed([init, JSON.stringify({ type: "result", subtype: "error_max_turns", is_error: true, errors: ["too many turns"] })], 1);
    expect(events.at(-1)).toMatchObject({ type: "stopRunByExceededMaxSteps", checkpoint: { status: "stoppedByExceededMaxSteps" } });
  });

  it("maps other error subtypes to errors named by the subtype", () => {
    const events = feed([init, JSON.stringify({ type: "result", subtype: "error_during_execution", is_error: true, errors: ["boom"] })], 1);
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "error_during_execution", message: "boom" } });
  });

  it("fails a run whose process exits without a result, keeping stderr", () => {
    const p = parser();
    p.line(init);
    const events = p.end({ exitCode: 137, stderrTail: "Killed\n" });
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "RuntimeExited", message: "claude exited with code 137: Killed" } });
  });

  it("ignores unknown stream types and sub-agent traffic, and refuses lines that are not JSON objects", () => {
    const p = parser();
    for (const line of ["", JSON.stringify({ type: "system", subtype: "task_started" }), JSON.stringify({ type: "brand_new_type" }), JSON.stringify({ type: "assistant", parent_tool_use_id: "t", message: { id: "x", content: [{ type: "text", text: "sub" }] } })]) {
      expect(p.line(line)).toEqual([]);
    }
    // Not from the CLI's stream: the collector turns the refusal into a warning, and the line stays in raw.log.
    for (const line of ["not json", "\u0000\u00ff", "[]", "42"]) expect(() => p.line(line), line).toThrow(/not a JSON object/);
  });

  it("turns api_retry lines into retry events", () => {
    const events = feed([init, JSON.stringify({ type: "system", subtype: "api_retry", attempt: 1, max_retries: 3, error_status: 429, error: "rate_limit" })]);
    expect(events.find((e) => e.type === "retry")).toMatchObject({ reason: "API retry 1/3 (HTTP 429): rate_limit" });
  });

  it("keeps thinking parts in the expert message", () => {
    const events = feed([
      init,
      JSON.stringify({ type: "assistant", message: { id: "m1", content: [{ type: "thinking", thinking: "hmm", signature: "sig" }] } }),
      JSON.stringify({ type: "assistant", message: { id: "m1", content: [{ type: "text", text: "answer" }] } }),
      JSON.stringify({ type: "result", subtype: "success", is_error: false, result: "answer", usage: { input_tokens: 5, output_tokens: 2 } }),
    ]);
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("expected completeRun");
    expect(done.checkpoint.messages.at(-1)).toMatchObject({ type: "expertMessage", contents: [{ type: "thinkingPart", thinking: "hmm", signature: "sig" }, { type: "textPart", text: "answer" }] });
  });
});

describe("helpers", () => {
  it("splits MCP tool names", () => {
    expect(splitToolName("mcp__everything__echo")).toEqual({ skillName: "everything", toolName: "echo" });
    expect(splitToolName("mcp__my-server__do__it")).toEqual({ skillName: "my-server", toolName: "do__it" });
    expect(splitToolName("Bash")).toEqual({ skillName: "claude-code", toolName: "Bash" });
  });

  it("counts every prompt token, cached ones included", () => {
    expect(claudeUsage({ input_tokens: 10, cache_creation_input_tokens: 5, cache_read_input_tokens: 100, output_tokens: 7 })).toEqual({
      inputTokens: 115, outputTokens: 7, reasoningTokens: 0, totalTokens: 122, cachedInputTokens: 100,
    });
  });
});

describe("Claude Code stream parser, on the helper-recorded fixtures", () => {
  it("reads a 500 without retries as stopRunByError, not as model output", () => {
    const events = feed(fixture("api-error-500-no-retry.jsonl"), 1);
    expect(events.map((e) => e.type)).toEqual(["initializeRuntime", "startRun", "stopRunByError"]);
    expect(events.at(-1)).toMatchObject({ error: { statusCode: 500, isRetryable: true } });
    expect(JSON.stringify(events.at(-1))).toContain("Internal server error (scripted)");
  });

  it("reads retries followed by recovery", () => {
    const events = feed(fixture("rate-limit-429-recovered.jsonl"));
    expect(events.filter((e) => e.type === "retry")).toHaveLength(2);
    expect(events.at(-1)).toMatchObject({ type: "completeRun", text: "Recovered after rate limit." });
  });

  it("takes the last result when a background subagent wakes the CLI again", () => {
    const events = feed(fixture("subagent-background.jsonl"));
    expect(events.filter((e) => e.type === "completeRun")).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ type: "completeRun", text: "The subagent finished; all done." });
  });

  it("reads the Write, Bash and MCP run", () => {
    const events = feed(fixture("success.jsonl"));
    const calls = events.flatMap((e) => (e.type === "callTools" ? e.toolCalls.map((c) => `${c.skillName}/${c.toolName}`) : []));
    expect(calls).toEqual(["claude-code/Write", "claude-code/Bash", "everything/echo"]);
    expect(events.at(-1)!.type).toBe("completeRun");
  });

  it("reads thinking turns", () => {
    const events = feed(fixture("thinking.jsonl"));
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("expected completeRun");
    expect(JSON.stringify(done.checkpoint.messages)).toContain('"thinkingPart"');
  });
});

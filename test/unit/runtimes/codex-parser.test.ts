import { describe, expect, it } from "vitest";
import { feedParser, fixtureLines, recorderContext } from "../../support/parser-feed.js";
import type { ExpandedEvent } from "../../../src/model/perstack.js";
import { CodexStreamParser } from "../../../src/runtimes/codex.js";

const fixture = (name: string) => fixtureLines("codex", name);

const feed = (lines: string[], exitCode = 0, stderrTail = ""): ExpandedEvent[] =>
  feedParser(new CodexStreamParser(recorderContext("codex")), lines, exitCode, stderrTail);

describe("Codex stream parser, on output recorded from the real CLI", () => {
  it("reads text, a shell command and an MCP call, with the thread's usage", () => {
    const events = feed(fixture("success.jsonl"));
    expect(events.map((e) => e.type)).toEqual([
      "initializeRuntime", "startRun",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "completeRun",
    ]);
    const calls = events.flatMap((e) => (e.type === "callTools" ? e.toolCalls : []));
    expect(calls.map((c) => [c.skillName, c.toolName, c.normalized])).toEqual([
      ["codex", "command_execution", { toolName: "exec", args: { command: "echo hello > hello.txt" } }],
      ["everything", "echo", undefined],
    ]);
    const results = events.flatMap((e) => (e.type === "resolveToolResults" ? e.toolResults : []));
    expect(results[1]!.result[0]).toEqual({ type: "textPart", text: "Echo: ping from the fake model" });
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("completeRun");
    expect(done.text).toBe("All done: hello.txt is written and the MCP echo answered.");
    const reported = JSON.parse(fixture("success.jsonl").find((l) => l.includes('"turn.completed"'))!).usage;
    expect(done.usage).toMatchObject({
      inputTokens: reported.input_tokens,
      cachedInputTokens: reported.cached_input_tokens,
      outputTokens: reported.output_tokens,
      totalTokens: reported.input_tokens + reported.output_tokens,
    });
  });

  it("keeps the vendor's message on a 401 and a 500", () => {
    for (const name of ["api-error-401.jsonl", "api-error-500-no-retry.jsonl"]) {
      const events = feed(fixture(name), 1);
      const stop = events.at(-1)!;
      if (stop.type !== "stopRunByError") throw new Error(`${name}: ${stop.type}`);
      expect(stop.error.message).toMatch(/^codex exited with code 1: /);
      expect(stop.error.message.length).toBeGreaterThan(40);
    }
  });

  it("reads reasoning as thinking, and retries", () => {
    const reasoning = feed(fixture("reasoning.jsonl"));
    const done = reasoning.at(-1)!;
    if (done.type !== "completeRun") throw new Error("completeRun");
    expect(JSON.stringify(done.checkpoint.messages)).toContain('"thinkingPart"');
    expect(feed(fixture("rate-limit-429-recovered.jsonl")).at(-1)!.type).toBe("completeRun");
  });

  it("turns cumulative thread usage into the sum of per-turn differences", () => {
    const lines = [
      JSON.stringify({ type: "thread.started", thread_id: "t" }),
      JSON.stringify({ type: "turn.completed", usage: { input_tokens: 100, cached_input_tokens: 10, output_tokens: 20, reasoning_output_tokens: 5 } }),
      JSON.stringify({ type: "turn.completed", usage: { input_tokens: 250, cached_input_tokens: 60, output_tokens: 50, reasoning_output_tokens: 9 } }),
    ];
    const done = feed(lines).at(-1)!;
    if (done.type !== "completeRun") throw new Error("completeRun");
    expect(done.usage).toEqual({ inputTokens: 250, cachedInputTokens: 60, outputTokens: 50, reasoningTokens: 9, totalTokens: 300 });
  });
});

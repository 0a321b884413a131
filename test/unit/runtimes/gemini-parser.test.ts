import { describe, expect, it } from "vitest";
import { feedParser, fixtureLines, recorderContext } from "../../support/parser-feed.js";
import type { ExpandedEvent } from "../../../src/model/perstack.js";
import { GeminiStreamParser, splitGeminiToolName } from "../../../src/runtimes/gemini.js";

const fixture = (name: string) => fixtureLines("gemini", name);

const feed = (lines: string[], exitCode = 0, stderrTail = ""): ExpandedEvent[] =>
  feedParser(new GeminiStreamParser(recorderContext("gemini")), lines, exitCode, stderrTail);

describe("Gemini CLI stream parser, on output recorded from the real CLI", () => {
  it("joins text deltas, separates shell and MCP calls, and completes with the reported usage", () => {
    const events = feed(fixture("success.jsonl"));
    expect(events.map((e) => e.type)).toEqual([
      "initializeRuntime", "startRun",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "completeRun",
    ]);
    const calls = events.flatMap((e) => (e.type === "callTools" ? e.toolCalls : []));
    expect(calls.map((c) => [c.skillName, c.toolName, c.normalized?.toolName])).toEqual([
      ["gemini", "run_shell_command", "exec"],
      ["everything", "echo", undefined],
    ]);
    const first = events.find((e) => e.type === "callTools")!;
    if (first.type !== "callTools") throw new Error("callTools");
    expect(first.newMessage.contents[0]).toEqual({ type: "textPart", text: "I will write the file first." });
    const results = events.flatMap((e) => (e.type === "resolveToolResults" ? e.toolResults : []));
    expect(results[1]).toMatchObject({ skillName: "everything", toolName: "echo", result: [{ text: "Echo: ping from the fake model" }] });
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("completeRun");
    expect(done.text).toBe("All done: hello.txt is written and the MCP echo answered.");
    expect(done.usage).toMatchObject({ inputTokens: 44549, outputTokens: 83, cachedInputTokens: 14910, totalTokens: 44632 });
  });

  it("keeps the vendor's message on an API error", () => {
    const events = feed(fixture("api-error-401.jsonl"), 144);
    const stop = events.at(-1)!;
    if (stop.type !== "stopRunByError") throw new Error("stopRunByError");
    expect(stop.error.message).toContain("API key not valid. Please pass a valid API key. (scripted)");
    expect(stop.error.message).toMatch(/^gemini exited with code 144: /);
  });

  it("fails on a non-zero exit even without a result line", () => {
    const events = feed([fixture("success.jsonl")[0]!], 41, "Error authenticating\n");
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { message: "gemini exited with code 41: Error authenticating" } });
  });

  it("splits MCP tool names", () => {
    expect(splitGeminiToolName("mcp_everything_echo")).toEqual({ skillName: "everything", toolName: "echo" });
    expect(splitGeminiToolName("run_shell_command")).toEqual({ skillName: "gemini", toolName: "run_shell_command" });
  });
});

describe("Gemini CLI stream parser, more recorded failures", () => {
  it("treats an empty answer (status error, exit 0) as a failure", () => {
    const events = feed(fixture("empty-response.jsonl"), 0);
    expect(events.at(-1)!.type).toBe("stopRunByError");
  });

  it("reads a 500 without retries with the vendor's message", () => {
    const events = feed(fixture("api-error-500-no-retry.jsonl"), 244);
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { statusCode: 500 } });
  });

  it("reads a run that recovered from a rate limit", () => {
    expect(feed(fixture("rate-limit-429-recovered.jsonl")).at(-1)!.type).toBe("completeRun");
  });
});

// The cursor parser on stream lines built from Cursor's published stream-json format (the CLI itself cannot be
// installed on this project's machines).
import { describe, expect, it } from "vitest";
import { feedParser, recorderContext } from "../../support/parser-feed.js";
import type { ExpandedEvent } from "../../../src/model/perstack.js";
import { CursorStreamParser } from "../../../src/runtimes/cursor.js";

const feed = (lines: object[], exitCode = 0, stderrTail = ""): ExpandedEvent[] =>
  feedParser(new CursorStreamParser(recorderContext("cursor")), lines.map((l) => JSON.stringify(l)), exitCode, stderrTail);

const init = { type: "system", subtype: "init", apiKeySource: "env", cwd: "/workspace", session_id: "s1", model: "auto", permissionMode: "default" };

describe("cursor stream parser", () => {
  it("reads a run with thinking, a shell call, an MCP call and the final answer", () => {
    const events = feed([
      init,
      { type: "user", message: { role: "user", content: [{ type: "text", text: "q" }] }, session_id: "s1" },
      { type: "thinking", subtype: "delta", text: "Let me " },
      { type: "thinking", subtype: "delta", text: "think." },
      { type: "thinking", subtype: "completed" },
      { type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "I will write the file." }] }, session_id: "s1" },
      { type: "tool_call", subtype: "started", call_id: "c1", tool_call: { shellToolCall: { args: { command: "echo x > f" } } } },
      { type: "tool_call", subtype: "completed", call_id: "c1", tool_call: { shellToolCall: { args: { command: "echo x > f" }, result: { success: { exitCode: 0, stdout: "" } } } } },
      { type: "tool_call", subtype: "started", call_id: "c2", tool_call: { function: { name: "everything-echo", arguments: '{"message":"hi"}' } } },
      { type: "tool_call", subtype: "completed", call_id: "c2", tool_call: { function: { name: "everything-echo", arguments: '{"message":"hi"}', result: { success: { content: "Echo: hi" } } } } },
      { type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "Done" }] }, session_id: "s1", timestamp_ms: 5 },
      { type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "Done." }] }, session_id: "s1" },
      { type: "result", subtype: "success", is_error: false, duration_ms: 10, result: "Done.", session_id: "s1", request_id: "r", usage: { inputTokens: 10, outputTokens: 5, cacheReadTokens: 2, cacheWriteTokens: 0 } },
    ]);
    expect(events.map((e) => e.type)).toEqual([
      "initializeRuntime", "startRun",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "completeRun",
    ]);
    const calls = events.flatMap((e) => (e.type === "callTools" ? e.toolCalls : []));
    expect(calls.map((c) => [c.skillName, c.toolName, c.args, c.normalized])).toEqual([
      ["cursor", "shellToolCall", { command: "echo x > f" }, { toolName: "exec", args: { command: "echo x > f" } }],
      ["everything", "echo", { message: "hi" }, undefined],
    ]);
    const done = events.at(-1)!;
    if (done.type !== "completeRun") throw new Error("expected completeRun");
    expect(done.text).toBe("Done.");
    expect(done.usage).toEqual({ inputTokens: 12, outputTokens: 5, reasoningTokens: 0, totalTokens: 17, cachedInputTokens: 2 });
    expect(JSON.stringify(done.checkpoint.messages)).toContain('"thinkingPart"');
    expect(JSON.stringify(done.checkpoint.messages).match(/Done\./g)).toHaveLength(1);
  });

  it("fails a run whose stream ends without a result, keeping stderr", () => {
    const events = feed([init], 1, "Error: Workspace Trust Required\n");
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "CursorError", message: "cursor-agent exited with code 1: Error: Workspace Trust Required" } });
  });

  it("fails a run whose result is an error", () => {
    const events = feed([init, { type: "result", subtype: "error", is_error: true, result: "unauthorized" }], 1);
    expect(events.at(-1)).toMatchObject({ type: "stopRunByError", error: { message: "cursor-agent exited with code 1: unauthorized" } });
  });
});

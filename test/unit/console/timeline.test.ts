// The console's pure parts: how a job's events fold into the run view (console/src/timeline.ts) and how the diff
// view classes a unified diff's lines (console/src/diff-lines.ts).
import { describe, expect, it } from "vitest";
import { diffLineClasses } from "../../../console/src/diff-lines.js";
import { Timeline } from "../../../console/src/timeline.js";

const base = { jobId: "j1", runId: "r1", expertKey: "worker" };
const usage = (input: number, output: number) => ({ inputTokens: input, outputTokens: output, reasoningTokens: 0, totalTokens: input + output, cachedInputTokens: 0 });

describe("the run view's timeline", () => {
  it("pairs a tool call with its result, shows the normalized name, and takes the root run's answer", () => {
    const timeline = new Timeline();
    timeline.add({ ...base, type: "startRun", stepNumber: 1, timestamp: 1, initialCheckpoint: {}, inputMessages: [{ type: "userMessage", contents: [{ type: "textPart", text: "do it" }] }] });
    timeline.add({ ...base, type: "callTools", stepNumber: 1, timestamp: 2, toolCalls: [{ id: "t1", skillName: "claude-code", toolName: "Bash", normalized: { toolName: "exec" }, args: { command: "ls" } }], usage: usage(10, 2) });
    timeline.add({ ...base, type: "resolveToolResults", stepNumber: 1, timestamp: 3, toolResults: [{ id: "t1", skillName: "claude-code", toolName: "Bash", result: [{ type: "textPart", text: "a.txt" }] }] });
    timeline.add({ ...base, type: "proxyAccess", timestamp: 4, action: "blocked", domain: "evil.example", port: 443, reason: "not allowlisted" });
    timeline.add({ ...base, type: "completeRun", stepNumber: 2, timestamp: 5, text: "All done.", usage: usage(20, 4), checkpoint: {} });
    const call = timeline.items.find((item) => item.kind === "tool-call");
    expect(call?.kind === "tool-call" && call.call.normalizedName).toBe("exec");
    expect(call?.kind === "tool-call" && call.call.toolName).toBe("Bash");
    expect(call?.kind === "tool-call" && call.result !== undefined).toBe(true);
    expect(timeline.items.filter((item) => item.kind === "tool-result")).toHaveLength(0);
    expect(timeline.blockedRequests).toBe(1);
    expect(timeline.finalAnswer).toBe("All done.");
    expect(timeline.items.some((item) => item.kind === "run-start" && item.query === "do it")).toBe(true);
  });

  it("takes a call's args from its message when events.jsonl recorded them there only", () => {
    const timeline = new Timeline();
    const newMessage = { type: "expertMessage", id: "m1", contents: [{ type: "toolCallPart", toolCallId: "t1", toolName: "Write", args: { file_path: "/w/a.txt", content: "hi" } }] };
    timeline.add({ ...base, type: "callTools", stepNumber: 1, timestamp: 2, newMessage, toolCalls: [{ id: "t1", skillName: "claude-code", toolName: "Write", normalized: { toolName: "writeTextFile", argsFrom: { path: "file_path", text: "content" } } }], usage: usage(1, 1) });
    timeline.add({ ...base, type: "callInteractiveTool", stepNumber: 2, timestamp: 3, newMessage: { ...newMessage, contents: [{ type: "toolCallPart", toolCallId: "q1", toolName: "ask", args: { question: "Which?" } }] }, toolCall: { id: "q1", skillName: "s", toolName: "ask" }, usage: usage(1, 1) });
    const calls = timeline.items.flatMap((item) => (item.kind === "tool-call" ? [item.call] : []));
    expect(calls.map((call) => [call.normalizedName, call.args])).toEqual([["writeTextFile", { file_path: "/w/a.txt", content: "hi" }], ["ask", { question: "Which?" }]]);
    expect(timeline.pendingQuestion?.args).toEqual({ question: "Which?" });
  });

  it("keeps the interactive question pending until an answer or the end", () => {
    const timeline = new Timeline();
    timeline.add({ ...base, type: "startRun", stepNumber: 1, initialCheckpoint: {}, inputMessages: [] });
    timeline.add({ ...base, type: "callInteractiveTool", stepNumber: 1, toolCall: { id: "q1", skillName: "ask", toolName: "askColor", args: { question: "Which color?" } }, usage: usage(1, 1) });
    timeline.add({ ...base, type: "stopRunByInteractiveTool", stepNumber: 1, checkpoint: {} });
    expect(timeline.pendingQuestion?.args).toEqual({ question: "Which color?" });
    timeline.add({ ...base, runId: "r2", type: "startRun", stepNumber: 2, initialCheckpoint: {}, inputMessages: [] });
    timeline.add({ ...base, runId: "r2", type: "completeRun", stepNumber: 2, text: "Blue it is.", usage: usage(1, 1), checkpoint: {} });
    expect(timeline.pendingQuestion).toBeUndefined();
    expect(timeline.finalAnswer).toBe("Blue it is.");
  });

  it("joins streamed deltas into one text, and a new stream starts a new one", () => {
    const timeline = new Timeline();
    for (const delta of ["Hel", "lo"]) timeline.add({ ...base, type: "streamRunResult", delta });
    timeline.add({ ...base, type: "startStreamingRunResult" });
    timeline.add({ ...base, type: "streamRunResult", delta: "again" });
    const texts = timeline.items.filter((item) => item.kind === "text").map((item) => (item.kind === "text" ? item.text : ""));
    expect(texts).toEqual(["Hello", "again"]);
  });

  it("ignores what is not an event, and hostile fields stay data", () => {
    const timeline = new Timeline();
    timeline.add({ notAType: 1 });
    timeline.add({ ...base, type: "callTools", toolCalls: [null, 7, { id: "x", toolName: "<img src=x onerror=alert(1)>", args: "<script>" }] });
    const calls = timeline.items.filter((item) => item.kind === "tool-call");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.kind === "tool-call" && calls[0]!.call.toolName).toBe("<img src=x onerror=alert(1)>");
  });
});

describe("the diff view's line classes", () => {
  it("reads hunks by their counts, so a removed line that reads like a header is a removal", () => {
    const diff = ["--- a/x.txt", "+++ b/x.txt", "@@ -1,2 +1,2 @@", "--- not a header", " same", "+new", "\\ No newline at end of file", "Binary files a/img.png and b/img.png differ"];
    expect(diffLineClasses(diff)).toEqual(["meta", "meta", "hunk", "del", "context", "add", "note", "meta"]);
  });
});

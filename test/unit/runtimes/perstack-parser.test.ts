import { describe, expect, it } from "vitest";
import type { CheckpointRef, ExpandedEvent, Message, PerstackEvent } from "../../../src/model/perstack.js";
import { PerstackStreamParser } from "../../../src/runtimes/perstack.js";
import { feedParser, feedParserRecorded, recorderContext } from "../../support/parser-feed.js";

const usage = { inputTokens: 3, outputTokens: 2, reasoningTokens: 0, totalTokens: 5, cachedInputTokens: 0 };
const expert = { key: "e", name: "e", version: "1" };
const query: Message = { type: "userMessage", id: "m1", contents: [{ type: "textPart", text: "q" }] };
/** A checkpoint as the engine prints it: its messages by reference (to itself, one message unless told). */
const checkpoint = (over: Partial<CheckpointRef> = {}): CheckpointRef => ({
  id: "cp1",
  jobId: "j",
  runId: "r",
  status: "init",
  stepNumber: 1,
  messagesRef: { checkpointId: over.id ?? "cp1", count: 1 },
  expert,
  usage,
  ...over,
});
const base = { id: "ev", expertKey: "e", timestamp: 1, jobId: "j", runId: "r", stepNumber: 1 };
const line = (event: object) => JSON.stringify(event);

const startRun = line({ ...base, type: "startRun", initialCheckpoint: checkpoint({ appendMessages: [query] }), inputMessages: [query] });
const next = line({
  ...base,
  type: "continueToNextStep",
  checkpoint: checkpoint({ id: "cp2", status: "proceeding" }),
  nextCheckpoint: checkpoint({ id: "cp3", status: "proceeding", stepNumber: 2, messagesRef: { checkpointId: "cp2", count: 1 } }),
});
const complete = line({ ...base, stepNumber: 2, type: "completeRun", checkpoint: checkpoint({ id: "cp4", status: "completed", stepNumber: 2 }), text: "done", usage });

const parser = () => new PerstackStreamParser(recorderContext("perstack"));
const feed = (lines: string[], exitCode = 0, stderrTail = ""): ExpandedEvent[] => feedParser(parser(), lines, exitCode, stderrTail);
const feedRecorded = (lines: string[], exitCode = 0): PerstackEvent[] => feedParserRecorded(parser(), lines, exitCode);

describe("built-in engine stream parser", () => {
  it("passes valid events through unchanged and adds nothing once the root run completed", () => {
    const init = line({ id: "i", timestamp: 1, jobId: "j", runId: "r", type: "initializeRuntime", runtime: "perstack", model: "m" });
    const skill = line({ id: "s", timestamp: 1, jobId: "j", runId: "r", type: "skillConnected", skillName: "base" });
    const events = feedRecorded([init, skill, startRun, next, complete]);
    expect(events.map((e) => e.type)).toEqual(["initializeRuntime", "skillConnected", "startRun", "continueToNextStep", "completeRun"]);
    expect(events[4]).toEqual(JSON.parse(complete));
    expect(events[3]).toEqual(JSON.parse(next));
  });

  it("takes a checkpoint's appendMessages into its run's log and off the recorded event", () => {
    const p = parser();
    const [start] = feedParserRecorded(p, [startRun]);
    if (start?.type !== "startRun") throw new Error("startRun");
    expect(start.initialCheckpoint).not.toHaveProperty("appendMessages");
    expect(start.initialCheckpoint.messagesRef).toEqual({ checkpointId: "cp1", count: 1 });
    expect(p.history("r")?.head(1)).toEqual([query]);
    const answer: Message = { type: "expertMessage", id: "m2", contents: [{ type: "textPart", text: "a" }] };
    p.line(line({ ...base, type: "completeRun", checkpoint: checkpoint({ id: "cp9", status: "completed", messagesRef: { checkpointId: "cp9", count: 2 }, appendMessages: [answer] }), text: "a", usage }));
    const log = p.history("r")!;
    expect(Array.from({ length: log.length }, (_, index) => log.text(index))).toEqual([JSON.stringify(query), JSON.stringify(answer)]);
  });

  it("refuses messages that do not continue the run's log exactly, or arrive on a checkpoint that is not a file", () => {
    const p = parser();
    p.line(startRun);
    const gap = checkpoint({ id: "cp5", status: "completed", messagesRef: { checkpointId: "cp5", count: 3 }, appendMessages: [query] });
    expect(() => p.line(line({ ...base, type: "completeRun", checkpoint: gap, text: "", usage }))).toThrow(/claims 3 messages, but run r had 1 and it adds 1/);
    const onNext = { ...checkpoint({ id: "cp6", messagesRef: { checkpointId: "cp2", count: 1 } }), appendMessages: [query] };
    expect(() => p.line(line({ ...base, type: "continueToNextStep", checkpoint: checkpoint({ id: "cp2" }), nextCheckpoint: onNext }))).toThrow(/appendMessages on its nextCheckpoint/);
    expect(p.history("r")?.length).toBe(1);
  });

  it("refuses an event that carries its messages both inline and by reference, or inline only (the old shape)", () => {
    const both = { ...checkpoint({ id: "cp7", status: "completed" }), messages: [query] };
    expect(() => parser().line(line({ ...base, type: "completeRun", checkpoint: both, text: "", usage }))).toThrow(/invalid at checkpoint\.messages/);
    const { messagesRef: _ref, ...inline } = both;
    void _ref;
    expect(() => parser().line(line({ ...base, type: "completeRun", checkpoint: inline, text: "", usage }))).toThrow(/invalid at checkpoint\.messagesRef/);
    expect(() => parser().line(line({ ...base, type: "startGeneration", messages: [query] }))).toThrow(/invalid at messagesRef/);
    expect(() => parser().line(line({ ...base, type: "startGeneration", messagesRef: { checkpointId: "../x", count: 1 } }))).toThrow(/invalid at messagesRef\.checkpointId/);
    expect(() => parser().line(line({ ...base, type: "startGeneration", messagesRef: { checkpointId: "cp1", count: -1 } }))).toThrow(/invalid at messagesRef\.count/);
  });

  it("refuses lines that are not JSON objects: the engine prints nothing else, so another process wrote them", () => {
    expect(() => parser().line("engine starting")).toThrow(/not an engine event: "engine starting"/);
    expect(() => parser().line("[1,2]")).toThrow(/not an engine event/);
    expect(parser().line("   ")).toEqual([]);
  });

  it("refuses ids that are not safe file names, wherever they sit in the event", () => {
    expect(() => parser().line(line({ ...base, runId: "../../../../x", type: "retry", reason: "r" }))).toThrow(/invalid at runId/);
    expect(() => parser().line(line({ ...base, id: "a/b", type: "retry", reason: "r" }))).toThrow(/invalid at id/);
  });

  it("rejects an event of another job", () => {
    expect(() => parser().line(line({ ...base, jobId: "other", type: "retry", reason: "x" }))).toThrow(/belongs to job "other", not j/);
  });

  it("rejects a malformed event with one line naming its type and the offending path", () => {
    const bad = line({ ...base, type: "callTools", newMessage: { type: "expertMessage", id: "m", contents: [] }, toolCalls: [{ id: 1 }], usage });
    let message = "";
    try {
      parser().line(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^engine event "callTools" is invalid at toolCalls\.0\.id: /);
    expect(message).not.toContain("\n");
    expect(() => parser().line(line({ ...base, type: "noSuchEvent" }))).toThrow(/engine event "noSuchEvent" is invalid at type/);
    expect(() => parser().line(line({ ...base, timestamp: "now", type: "retry", reason: "x" }))).toThrow(/"retry" is invalid at timestamp/);
  });

  it("accepts every streaming and delegation event shape", () => {
    const child = { ...base, runId: "child", expertKey: "d" };
    const events = feedRecorded(
      [
        startRun,
        line({ ...base, type: "startStreamingRunResult" }),
        line({ ...base, type: "streamRunResult", delta: "he" }),
        line({ ...base, type: "completeStreamingRunResult", text: "hello" }),
        line({ ...base, type: "stopRunByDelegate", checkpoint: checkpoint({ id: "cpd", status: "stoppedByDelegate" }) }),
        line({ ...child, type: "stopRunByError", checkpoint: checkpoint({ id: "c", runId: "child", status: "stoppedByError" }), error: { name: "E", message: "m", isRetryable: false } }),
        line({ ...base, type: "stopRunByInteractiveTool", checkpoint: checkpoint({ id: "cpi", status: "stoppedByInteractiveTool" }) }),
      ],
      0,
    );
    // A child run's stop does not end the root run; the root's interactive stop does.
    expect(events.map((e) => e.type)).toEqual([
      "startRun", "startStreamingRunResult", "streamRunResult", "completeStreamingRunResult", "stopRunByDelegate", "stopRunByError", "stopRunByInteractiveTool",
    ]);
  });

  it("stops the root run with EngineExited from its last checkpoint when the engine dies mid-run", () => {
    const events = feed([startRun, next], 137, "warming up\nTypeError: boom\n    at x (main.js:1)\n");
    const stop = events.at(-1)!;
    if (stop.type !== "stopRunByError") throw new Error("stopRunByError");
    expect(stop).toMatchObject({ jobId: "j", runId: "r", expertKey: "e", stepNumber: 2 });
    expect(stop.error.name).toBe("EngineExited");
    expect(stop.error.message).toMatch(/^the engine exited with code 137: .*TypeError: boom/);
    expect(stop.checkpoint).toMatchObject({ status: "stoppedByError", stepNumber: 2, error: stop.error });
    expect(stop.checkpoint.id).not.toBe("cp3");
  });

  it("builds an init checkpoint from the context when the engine reported nothing, and stops after a delegate stop", () => {
    const [stop] = feed([], 1, "");
    if (stop?.type !== "stopRunByError") throw new Error("stopRunByError");
    expect(stop.checkpoint).toMatchObject({ jobId: "j", runId: "r", stepNumber: 1, expert, status: "stoppedByError" });
    expect(stop.checkpoint.messages.map((m) => m.type)).toEqual(["instructionMessage", "userMessage"]);
    expect(stop.error.message).toBe("the engine exited with code 1");

    const delegated = feed([startRun, line({ ...base, type: "stopRunByDelegate", checkpoint: checkpoint({ id: "cpd", status: "stoppedByDelegate" }) })], 0);
    expect(delegated.at(-1)).toMatchObject({ type: "stopRunByError", error: { message: "the engine exited with code 0 before the run finished" } });
  });
});

import { describe, expect, it } from "vitest";
import { formatEvent, formatWaiting } from "../../../src/cli/live-view.js";
import { emptyUsage, type CheckpointRef, type PerstackEvent } from "../../../src/model/perstack.js";

const cp = (over: Partial<CheckpointRef> = {}): CheckpointRef => ({
  id: "cp1", jobId: "j1", runId: "r1", status: "completed", stepNumber: 2, messagesRef: { checkpointId: "cp1", count: 0 },
  expert: { key: "lead", name: "lead", version: "1" }, usage: emptyUsage(), ...over,
});
const base = { id: "e", expertKey: "helper", timestamp: 1, jobId: "j1", runId: "child", stepNumber: 2 };

describe("live view", () => {
  it("a delegated run's completion is a log line, not the answer", () => {
    const event = { ...base, type: "completeRun", checkpoint: cp(), text: "child answer", usage: emptyUsage() } as PerstackEvent;
    expect(formatEvent(event, { root: false })).toBe("  ⇠ helper done in 2 step(s): child answer");
    expect(formatEvent(event)).toContain("\n\nchild answer");
  });

  it("shows delegations", () => {
    const call = { id: "t1", skillName: "delegate", toolName: "helper", args: { query: "look it up" } };
    expect(formatEvent({ ...base, type: "callDelegate", newMessage: { type: "expertMessage", id: "m", contents: [] }, toolCalls: [call], usage: emptyUsage() })).toBe(
      '  ⇢ delegate helper {"query":"look it up"}',
    );
    const stop = cp({ status: "stoppedByDelegate", delegateTo: [{ expert: { key: "helper", name: "helper", version: "1" }, toolCallId: "t1", toolName: "helper", runId: "c", query: "q" }] });
    expect(formatEvent({ ...base, expertKey: "lead", type: "stopRunByDelegate", checkpoint: stop })).toBe("· lead waits for helper");
  });

  it("says what a waiting job asks and how to answer", () => {
    const waiting = cp({ status: "stoppedByInteractiveTool", pendingToolCalls: [{ id: "t1", skillName: "ask", toolName: "askColor", args: { question: "Which colour?" } }] });
    expect(formatWaiting(waiting, "lead", "j1")).toBe(
      [`⏸ job j1 is waiting for your answer:`, `  lead asks: askColor {"question":"Which colour?"}`, `answer with: perstack run lead --continue-job j1 -i '<answer>'`].join("\n"),
    );
    const child = cp({ ...waiting, expert: { key: "helper", name: "helper", version: "1" }, delegatedBy: { expert: { key: "lead", name: "lead", version: "1" }, toolCallId: "t0", toolName: "helper", checkpointId: "c0", runId: "r0" } });
    expect(formatWaiting(child, "lead", "j1")).toMatch(/perstack run lead --continue-job j1/);
    // A delegate asked: the coordinator waits on its delegate call; the question shown is the delegate's.
    const root = cp({
      status: "stoppedByInteractiveTool",
      pendingToolCalls: [{ id: "t0", skillName: "helper", toolName: "helper", args: { query: "pick" } }],
      delegateTo: [{ expert: { key: "helper", name: "helper", version: "1" }, toolCallId: "t0", toolName: "helper", runId: "r1", query: "pick", checkpointId: "c1" }],
    });
    expect(formatWaiting(root, "lead", "j1", [child])).toBe(
      [`⏸ job j1 is waiting for your answer:`, `  helper asks: askColor {"question":"Which colour?"}`, `answer with: perstack run lead --continue-job j1 -i '<answer>'`].join("\n"),
    );
  });
});

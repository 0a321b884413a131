import { describe, expect, it } from "vitest";
import { EventTotalsCounter, shownCounts } from "../../../src/history/job-summary.js";
import type { LoggedEvent } from "../../../src/history/logged-event.js";
import { checkpoint, usage } from "./job-fixtures.js";

let n = 0;
const e = (type: string, runId: string, fields: Record<string, unknown> = {}): LoggedEvent => ({ type, id: `e${++n}`, runId, timestamp: 100 + n, ...fields });

function count(events: LoggedEvent[]) {
  const counter = new EventTotalsCounter();
  for (const event of events) counter.add(event);
  return counter.result();
}

describe("summary counters", () => {
  it("tokens: each run's latest checkpoint minus what it started from (a continued run counts only its own)", () => {
    const totals = count([
      e("startRun", "r1", { initialCheckpoint: checkpoint("c0", "r1", "lead", "init", 0, { usage: usage(100, 10) }) }),
      e("continueToNextStep", "r1", { checkpoint: checkpoint("c1", "r1", "lead", "proceeding", 1, { usage: usage(150, 20) }) }),
      e("completeRun", "r1", { checkpoint: checkpoint("c2", "r1", "lead", "completed", 2, { usage: usage(180, 25) }) }),
      e("completeRun", "r2", { checkpoint: checkpoint("c3", "r2", "helper", "completed", 1, { usage: usage(7, 3) }) }),
    ]);
    expect(totals.usage).toEqual(usage(87, 18));
    expect(totals.checkpoints).toBe(3);
    expect(totals.latestCheckpoint?.id).toBe("c3");
    expect(totals.lastStop).toBe("completed");
  });

  it("steps are distinct (run, step) generations; the outcome is the last stopping event", () => {
    const totals = count([
      e("startGeneration", "r1", { stepNumber: 1 }),
      e("retry", "r1", { stepNumber: 1, reason: "429" }),
      e("startGeneration", "r1", { stepNumber: 1 }),
      e("startGeneration", "r2", { stepNumber: 1 }),
      e("startGeneration", "r1", { stepNumber: 2 }),
      e("stopRunByInteractiveTool", "r1", { stepNumber: 2, checkpoint: checkpoint("c", "r1", "lead", "stoppedByInteractiveTool", 2) }),
    ]);
    expect(totals.steps).toBe(3);
    expect(totals.lastStop).toBe("stoppedByInteractiveTool");
    expect(totals.runs).toBe(2);
  });

  it("tool calls by normalized name, from calls, delegations and interactive calls", () => {
    const totals = count([
      e("callTools", "r", { toolCalls: [{ toolName: "Bash", normalized: { toolName: "exec" } }, { toolName: "exec" }, { toolName: "mcp_tool" }, "junk", { noName: 1 }] }),
      e("callDelegate", "r", { toolCalls: [{ toolName: "helper" }] }),
      e("callInteractiveTool", "r", { toolCall: { toolName: "askColor" } }),
      e("callTools", "r", { toolCalls: "not an array" }),
    ]);
    expect(totals.toolCalls).toEqual({ exec: 2, mcp_tool: 1, helper: 1, askColor: 1 });
  });

  it("errors: counted by kind, the first 20 kept with their message; blocked egress by domain", () => {
    const events = [
      e("stopRunByError", "r", { stepNumber: 3, expertKey: "lead", error: { name: "APICallError", message: "500: boom" } }),
      e("sandboxWarning", "r", { code: "forged-event", message: "ignored an event" }),
      e("resolveToolResults", "r", { toolResults: [{ toolName: "a", result: [], isError: true }, { toolName: "b", result: [] }] }),
      ...Array.from({ length: 30 }, () => e("retry", "r", { reason: "429" })),
      ...Array.from({ length: 60 }, (_, i) => e("proxyAccess", "r", { action: "blocked", domain: `d${i}.example` })),
      e("proxyAccess", "r", { action: "blocked", domain: "d0.example" }),
      e("proxyAccess", "r", { action: "allowed", domain: "ok.example" }),
    ];
    const totals = count(events);
    expect(totals.errors).toMatchObject({ stoppedByError: 1, retries: 30, failedToolResults: 1, sandboxWarnings: 1 });
    expect(totals.errors.details).toHaveLength(20);
    expect(totals.errors.details.slice(0, 2)).toEqual([
      { type: "stopRunByError", runId: "r", expertKey: "lead", stepNumber: 3, timestamp: events[0]!.timestamp, message: "APICallError: 500: boom" },
      { type: "sandboxWarning", runId: "r", timestamp: events[1]!.timestamp, message: "forged-event: ignored an event" },
    ]);
    expect(totals.blockedEgress.count).toBe(61);
    expect(totals.blockedEgress.domains).toHaveLength(50);
    expect(totals.blockedEgress.domains[0]).toBe("d0.example");
  });

  it("Perstack's counts over the events shown", () => {
    expect(shownCounts([])).toEqual({ totalEvents: 0, errorCount: 0, toolCallCount: 0, delegationCount: 0 });
    expect(shownCounts([e("retry", "r", { stepNumber: 4 }), e("callTools", "r", { stepNumber: 2 }), e("callDelegate", "r", { stepNumber: 9 }), e("proxyAccess", "r")])).toEqual({
      totalEvents: 4, errorCount: 1, toolCallCount: 1, delegationCount: 1, stepRange: { min: 2, max: 9 },
    });
  });
});

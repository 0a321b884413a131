// The built-in engine reports several runs on one stdout: the root run and its delegates. Events are built by hand.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunCollector } from "../../../src/collector/run-collector.js";
import { emptyUsage, type CheckpointRef, type CheckpointStatus, type PerstackEvent, type Usage } from "../../../src/model/perstack.js";
import { MessageLog } from "../../../src/runtimes/message-log.js";
import type { StreamParser } from "../../../src/runtimes/types.js";
import { readCheckpoint } from "../../../src/storage/job-reader.js";
import { JobStore } from "../../../src/storage/job-store.js";

/** Events taken as printed; every run's conversation is empty, so checkpoints hold no messages. */
const jsonLines: StreamParser = { line: (text) => [JSON.parse(text) as PerstackEvent], end: () => [], history: () => new MessageLog() };

function usage(total: number): Usage {
  return { ...emptyUsage(), inputTokens: total, totalTokens: total };
}

let seq = 0;
function checkpoint(runId: string, expert: string, status: CheckpointStatus, stepNumber: number, tokens: number, extra: Partial<CheckpointRef> = {}): CheckpointRef {
  const id = `cp-${runId}-${++seq}`;
  return {
    id,
    jobId: "job1",
    runId,
    status,
    stepNumber,
    messagesRef: { checkpointId: id, count: 0 },
    expert: { key: expert, name: expert, version: "1.0.0" },
    usage: usage(tokens),
    ...extra,
  };
}

const base = (runId: string, expertKey: string, stepNumber: number) => ({ id: `ev${++seq}`, expertKey, timestamp: 1_000 + seq, jobId: "job1", runId, stepNumber });

function startRun(runId: string, expert: string, initial: CheckpointRef): PerstackEvent {
  return { ...base(runId, expert, initial.stepNumber), type: "startRun", initialCheckpoint: initial, inputMessages: [] };
}
/** A generation starting from the messages of checkpoint `from`, a file the run wrote before. */
function generation(runId: string, expert: string, step: number, from: CheckpointRef): PerstackEvent {
  return { ...base(runId, expert, step), type: "startGeneration", messagesRef: from.messagesRef };
}
function complete(runId: string, expert: string, cp: CheckpointRef, text: string): PerstackEvent {
  return { ...base(runId, expert, cp.stepNumber), type: "completeRun", checkpoint: cp, text, usage: cp.usage };
}

function setup(rootRunId = "root") {
  const dir = mkdtempSync(join(tmpdir(), "perstack-multirun-"));
  const store = new JobStore(dir, "job1");
  const files = store.openRun(rootRunId);
  const seen: PerstackEvent[] = [];
  let n = 0;
  const collector = new RunCollector({
    jobId: "job1",
    runId: rootRunId,
    store,
    files,
    childRunSetting: { model: "m1", runtime: { name: "perstack" } },
    parser: jsonLines,
    newId: () => `x${++n}`,
    now: () => 1,
    onEvent: (e) => seen.push(e),
  });
  const feed = async (events: PerstackEvent[]) => {
    const text = events.map((e) => `${JSON.stringify(e)}\n`).join("");
    await new Promise<void>((resolve) => collector.stdout.write(text, () => resolve()));
  };
  const runDir = (runId: string) => join(store.jobDir, "runs", runId);
  const eventsOf = (runId: string) =>
    readFileSync(join(runDir(runId), "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as PerstackEvent);
  return { collector, files, store, seen, feed, runDir, eventsOf };
}

/** Root delegates to "helper" (2 steps), which completes; then the root completes on step 3. */
function delegation(rootInitialTokens = 0) {
  const rootInit = checkpoint("root", "lead", "init", 0, rootInitialTokens);
  const rootStop = checkpoint("root", "lead", "stoppedByDelegate", 1, rootInitialTokens + 10, {
    delegateTo: [{ expert: { key: "helper", name: "helper", version: "1.0.0" }, toolCallId: "t1", toolName: "helper", runId: "child", query: "help" }],
  });
  const childInit = checkpoint("child", "helper", "init", 0, 0, {
    delegatedBy: { expert: { key: "lead", name: "lead", version: "1.0.0" }, toolCallId: "t1", toolName: "helper", checkpointId: rootStop.id, runId: "root" },
  });
  const childStep = checkpoint("child", "helper", "proceeding", 1, 5);
  const childDone = checkpoint("child", "helper", "completed", 2, 7);
  const rootDone = checkpoint("root", "lead", "completed", 3, rootInitialTokens + 30);
  const events: PerstackEvent[] = [
    { ...base("root", "lead", 0), type: "initializeRuntime", runtime: "perstack" } as unknown as PerstackEvent,
    startRun("root", "lead", rootInit),
    generation("root", "lead", 1, rootInit),
    { ...base("root", "lead", 1), type: "stopRunByDelegate", checkpoint: rootStop },
    startRun("child", "helper", childInit),
    generation("child", "helper", 1, childInit),
    { ...base("child", "helper", 1), type: "continueToNextStep", checkpoint: childStep, nextCheckpoint: { ...childStep, id: `${childStep.id}-next`, stepNumber: 2 } },
    generation("child", "helper", 2, childStep),
    // A retried generation of the same step is not another step.
    generation("child", "helper", 2, childStep),
    complete("child", "helper", childDone, "the child's answer"),
    generation("root", "lead", 2, rootStop),
    generation("root", "lead", 3, rootStop),
    complete("root", "lead", rootDone, "the final answer"),
  ];
  return { events, rootDone, childDone, rootStop, childInit };
}

describe("RunCollector with delegated runs", () => {
  it("routes each run's events to its own events.jsonl and writes a delegated run's run-setting.json", async () => {
    const { collector, files, feed, runDir, eventsOf, store } = setup();
    const { events, childInit, childDone, rootStop } = delegation();
    await feed(events);
    const outcome = await collector.finish(0);
    await files.close();

    expect(eventsOf("root").map((e) => e.type)).toEqual([
      "initializeRuntime", "startRun", "startGeneration", "stopRunByDelegate", "startGeneration", "startGeneration", "completeRun",
    ]);
    expect(eventsOf("child").map((e) => e.type)).toEqual([
      "startRun", "startGeneration", "continueToNextStep", "startGeneration", "startGeneration", "completeRun",
    ]);
    // The container's own output stays with the root run.
    expect(existsSync(join(runDir("root"), "raw.log"))).toBe(true);
    expect(existsSync(join(runDir("child"), "raw.log"))).toBe(false);
    expect(existsSync(join(runDir("child"), "stderr.log"))).toBe(false);
    const setting = JSON.parse(readFileSync(join(runDir("child"), "run-setting.json"), "utf8"));
    expect(setting).toMatchObject({
      jobId: "job1",
      runId: "child",
      expertKey: "helper",
      expert: { key: "helper" },
      delegatedBy: childInit.delegatedBy,
      model: "m1",
      runtime: { name: "perstack" },
    });
    expect(typeof setting.startedAt).toBe("number");
    // Where a run stopped is a file; a start or a step is a line of its run's checkpoints.jsonl. Each reads back.
    for (const cp of [rootStop, childDone]) expect(existsSync(join(store.jobDir, "checkpoints", `${cp.id}.json`))).toBe(true);
    expect(readFileSync(join(runDir("child"), "checkpoints.jsonl"), "utf8")).toContain(`"id":"${childInit.id}"`);
    for (const cp of [rootStop, childDone, childInit]) expect(readCheckpoint(store.perstackDir, "job1", cp.id).runId).toBe(cp.runId);
    expect(outcome.status).toBe("completed");
  });

  it("ends the job on the root run's completeRun only, with steps and usage over all runs", async () => {
    const { collector, files, feed } = setup();
    const { events, rootDone } = delegation();
    await feed(events);
    const outcome = await collector.finish(0);
    await files.close();
    expect(outcome).toMatchObject({ status: "completed", text: "the final answer", lastCheckpoint: { id: rootDone.id } });
    // root steps 1, 2, 3 + child steps 1, 2
    expect(outcome.steps).toBe(5);
    expect(outcome.usage.totalTokens).toBe(30 + 7);
  });

  it("a child's completeRun alone does not end the job", async () => {
    const { collector, files, feed } = setup();
    const { events } = delegation();
    await feed(events.slice(0, -1));
    const outcome = await collector.finish(1);
    await files.close();
    expect(outcome).toMatchObject({ status: "stoppedByError", error: { name: "NoResult" } });
    expect(outcome.lastCheckpoint).toBeUndefined();
  });

  it("counts a continued run's usage from the checkpoint it started at", async () => {
    const { collector, files, feed } = setup();
    const { events } = delegation(1_000);
    await feed(events);
    const outcome = await collector.finish(0);
    await files.close();
    expect(outcome.usage.totalTokens).toBe(30 + 7);
    expect(outcome.usage.inputTokens).toBe(37);
  });

  it.each([
    ["stopRunByExceededMaxSteps", "stoppedByExceededMaxSteps", "stoppedByMaxSteps"],
    ["stopRunByInteractiveTool", "stoppedByInteractiveTool", "stoppedByInteractiveTool"],
    ["stopRunByError", "stoppedByError", "stoppedByError"],
  ] as const)("maps the root run's %s to %s", async (type, cpStatus, status) => {
    const { collector, files, feed } = setup();
    const init = checkpoint("root", "lead", "init", 0, 0);
    const stop = checkpoint("root", "lead", cpStatus, 1, 4, {
      pendingToolCalls: [{ id: "t9", skillName: "ask", toolName: "askUser", args: { question: "which?" } }],
    });
    const error = { name: "APIError", message: "boom", isRetryable: false };
    const last = { ...base("root", "lead", 1), type, checkpoint: stop, ...(type === "stopRunByError" ? { error } : {}) } as PerstackEvent;
    await feed([startRun("root", "lead", init), generation("root", "lead", 1, init), last]);
    const outcome = await collector.finish(0);
    await files.close();
    expect(outcome).toMatchObject({ status, steps: 1, usage: { totalTokens: 4 }, lastCheckpoint: { id: stop.id } });
    if (type === "stopRunByError") expect(outcome.error).toEqual(error);
  });

  it("a child's terminal stop does not decide the job, except a child waiting for input when the root never ended", async () => {
    const { collector, files, feed } = setup();
    const { events } = delegation();
    const childWaiting = checkpoint("child", "helper", "stoppedByInteractiveTool", 2, 7);
    const childError = checkpoint("child", "helper", "stoppedByError", 1, 2);
    await feed([
      ...events.slice(0, 6),
      { ...base("child", "helper", 1), type: "stopRunByError", checkpoint: childError, error: { name: "E", message: "m", isRetryable: false } },
      { ...base("child", "helper", 2), type: "stopRunByInteractiveTool", checkpoint: childWaiting },
    ]);
    const outcome = await collector.finish(0);
    await files.close();
    expect(outcome).toMatchObject({ status: "stoppedByInteractiveTool", lastCheckpoint: { id: childWaiting.id } });
  });

  it("keeps runtime events of the sandbox with the root run", async () => {
    const { collector, files, eventsOf } = setup();
    collector.runtimeEvent({ type: "dockerContainerStatus", service: "agent", status: "started" });
    await collector.finish(0);
    await files.close();
    expect(eventsOf("root").map((e) => e.type)).toEqual(["dockerContainerStatus"]);
  });
});

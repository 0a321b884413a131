// A job of 100k events (issue 9: "a job of 100k events answers in about a second"). Timing is not asserted (it
// depends on the machine); what is checked is that the whole job streams through and every count is right, with
// the default page and with context, so nothing is dropped or held back.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TAKE, selectedTypes } from "../../../src/history/event-selection.js";
import { parseFilterExpression } from "../../../src/history/filter-expression.js";
import { readJobLog, type LogQuery } from "../../../src/history/job-log.js";
import { checkpoint, perstackDir, usage } from "./job-fixtures.js";

const EVENTS = 100_000;
/** Of every 10 events of the main run: one blocked proxy request, one retry; the rest a step's usual events. */
const CYCLE = ["startGeneration", "callTools", "proxyAccess", "resolveToolResults", "retry", "callTools", "resolveToolResults", "startGeneration", "callTools", "continueToNextStep"];

function writeLargeJob(dir: string): void {
  const jobDir = join(dir, "jobs", "big");
  mkdirSync(join(jobDir, "checkpoints"), { recursive: true });
  writeFileSync(join(jobDir, "job.json"), JSON.stringify({ id: "big", status: "completed", coordinatorExpertKey: "lead", totalSteps: 10_000, usage: usage(5, 5), startedAt: 1, finishedAt: 2, runtime: "perstack" }));
  // Two runs written separately; their timestamps interleave (r2 takes every 5th millisecond).
  const runs: Record<string, string[]> = { r1: [], r2: [] };
  let main = 0;
  for (let i = 0; i < EVENTS; i++) {
    const timestamp = 1_000_000 + i;
    if (i % 5 === 4) {
      runs.r2!.push(JSON.stringify({ type: "skillStderr", id: `x${i}`, jobId: "big", runId: "r2", timestamp, skillName: "s", message: `line ${i}` }));
      continue;
    }
    const position = main % CYCLE.length;
    const type = CYCLE[position]!;
    const step = Math.floor(main / CYCLE.length) + 1;
    main += 1;
    const base = { type, id: `e${i}`, jobId: "big", runId: "r1", expertKey: "lead", timestamp, stepNumber: step };
    const event =
      type === "callTools" ? { ...base, toolCalls: [{ id: `t${i}`, skillName: "@perstack/base", toolName: position === 8 ? "readTextFile" : "exec", args: { path: `f${i}.txt` } }], usage: usage(1, 1) }
      : type === "resolveToolResults" ? { ...base, toolResults: [{ id: `t${i}`, skillName: "@perstack/base", toolName: "readTextFile", result: [{ type: "textPart", text: "ok" }] }] }
      : type === "proxyAccess" ? { type, id: `e${i}`, jobId: "big", runId: "r1", timestamp, action: "blocked", domain: `d${step % 3}.example.com`, port: 443 }
      : type === "retry" ? { ...base, reason: "429" }
      : type === "continueToNextStep" ? { ...base, checkpoint: checkpoint(`c${step}`, "r1", "lead", "proceeding", step), nextCheckpoint: checkpoint(`n${step}`, "r1", "lead", "init", step + 1) }
      : { ...base, messages: [] };
    runs.r1!.push(JSON.stringify(event));
  }
  for (const [runId, lines] of Object.entries(runs)) {
    mkdirSync(join(jobDir, "runs", runId), { recursive: true });
    writeFileSync(join(jobDir, "runs", runId, "events.jsonl"), `${lines.join("\n")}\n`);
  }
}

const query = (over: Partial<LogQuery> = {}): LogQuery => ({ selector: {}, paging: { take: DEFAULT_TAKE, offset: 0, context: 0 }, ...over });

describe("a job of 100k events", () => {
  const dir = perstackDir();
  writeLargeJob(dir);
  const mainEvents = EVENTS - EVENTS / 5;
  const cycles = mainEvents / CYCLE.length;

  it("streams through: the default page, every event counted, the summary complete", async () => {
    const log = (await readJobLog(dir, query()))!;
    expect(log.events).toHaveLength(DEFAULT_TAKE);
    expect(log.events.map((e) => e.timestamp)).toEqual(Array.from({ length: DEFAULT_TAKE }, (_, i) => 1_000_000 + i));
    expect(log.totalEventsBeforeLimit).toBe(EVENTS);
    expect(log.matchedAfterPagination).toBe(DEFAULT_TAKE);
    expect(log.summary).toMatchObject({
      eventsInScope: EVENTS,
      runs: 2,
      toolCalls: { readTextFile: cycles, exec: cycles * 2 },
      blockedEgress: { count: cycles, domains: ["d1.example.com", "d2.example.com", "d0.example.com"] },
      checkpoints: cycles,
      latestCheckpointId: `c${cycles}`,
      malformedLines: 0,
    });
    expect(log.summary.errors.retries).toBe(cycles);
    expect(log.summary.errors.details).toHaveLength(20);
    expect(log.checkpoints).toHaveLength(cycles);
  });

  it("the last page, a filter with context, and every match of a type", async () => {
    const last = (await readJobLog(dir, query({ paging: { take: 10, offset: EVENTS - 10, context: 0 } })))!;
    expect(last.events.map((e) => e.timestamp)).toEqual(Array.from({ length: 10 }, (_, i) => 1_000_000 + EVENTS - 10 + i));
    const around = (await readJobLog(dir, query({ selector: { filter: parseFilterExpression(".stepNumber == 4000"), types: new Set(["retry"]) }, paging: { take: 100, offset: 0, context: 2 } })))!;
    expect(around.events.map((e) => e.type)).toEqual(["proxyAccess", "resolveToolResults", "retry", "callTools", "skillStderr"]);
    expect(around.totalEventsBeforeLimit).toBe(1);
    const retries = (await readJobLog(dir, query({ selector: { types: selectedTypes(undefined, ["errors"]) }, paging: { take: 0, offset: 0, context: 0 } })))!;
    expect(retries.events).toHaveLength(cycles);
    expect(retries.matchedAfterPagination).toBe(cycles);
    const r2 = (await readJobLog(dir, query({ runId: "r2", paging: { take: 1, offset: 0, context: 0 } })))!;
    expect(r2.totalEventsBeforeLimit).toBe(EVENTS / 5);
  });
});

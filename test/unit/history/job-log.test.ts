import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, InvalidOptionError, JobNotFoundError, RunNotFoundError } from "../../../src/errors.js";
import { DEFAULT_TAKE, selectedTypes } from "../../../src/history/event-selection.js";
import { parseFilterExpression } from "../../../src/history/filter-expression.js";
import { readJobLog, type LogQuery } from "../../../src/history/job-log.js";
import { parseStepFilter } from "../../../src/history/step-filter.js";
import { checkpoint, ev, MULTI_RUN_ORDER, multiRunJob, perstackDir, usage, writeJob } from "./job-fixtures.js";

const query = (over: Partial<LogQuery> = {}): LogQuery => ({ selector: {}, paging: { take: DEFAULT_TAKE, offset: 0, context: 0 }, ...over });

function twoJobs() {
  const dir = perstackDir();
  writeJob(dir, multiRunJob());
  writeJob(dir, {
    job: { id: "job0", startedAt: 500, finishedAt: 900, coordinatorExpertKey: "old" },
    runs: { r9: [ev("startRun", "r9", 600, { expertKey: "old", stepNumber: 1, inputMessages: [] })] },
  });
  return dir;
}

describe("readJobLog", () => {
  it("no options: the latest job, every run merged by time, Perstack's counts, the job's checkpoints", async () => {
    const dir = twoJobs();
    const log = (await readJobLog(dir, query()))!;
    expect(log.job.id).toBe("job1");
    expect(log.isLatestJob).toBe(true);
    expect(log.storagePath).toBe(dir);
    expect(log.events.map((e) => e.type)).toEqual(MULTI_RUN_ORDER);
    expect(log.totalEventsBeforeLimit).toBe(MULTI_RUN_ORDER.length);
    expect(log.matchedAfterPagination).toBe(MULTI_RUN_ORDER.length);
    expect(log.checkpoints?.map((c) => [c.id, c.status, c.stepNumber, c.messageCount])).toEqual([
      ["cp1", "proceeding", 1, 2], ["cp2", "stoppedByDelegate", 2, 2], ["cp3", "completed", 1, 2], ["cp4", "completed", 3, 2],
    ]);
    expect(log.checkpoint).toBeUndefined();
    expect(log.warnings).toEqual(["skipped 2 line(s) of runs/r1/events.jsonl that are not events"]);
  });

  it("the summary: the job's record for status, steps, tokens and duration; the events for the rest", async () => {
    const log = (await readJobLog(twoJobs(), query()))!;
    expect(log.summary).toEqual({
      totalEvents: 18, errorCount: 1, toolCallCount: 4, delegationCount: 2, stepRange: { min: 1, max: 3 },
      scope: "job",
      status: "completed",
      steps: 3,
      usage: usage(100, 20),
      durationMs: 42_000,
      runs: 2,
      eventsInScope: 18,
      toolCalls: { writeTextFile: 1, helper: 1, exec: 1 },
      errors: {
        stoppedByError: 0, retries: 1, failedToolResults: 1, sandboxWarnings: 0,
        details: [{ type: "retry", runId: "r1", expertKey: "lead", stepNumber: 1, timestamp: 1003, message: "429: slow down" }],
      },
      blockedEgress: { count: 1, domains: ["evil.example.com"] },
      checkpoints: 4,
      latestCheckpointId: "cp4",
      malformedLines: 2,
    });
  });

  it("--job picks a job; a missing one is one error pointing at `perstack jobs`", async () => {
    const dir = twoJobs();
    const log = (await readJobLog(dir, query({ jobId: "job0" })))!;
    expect(log.job.coordinatorExpertKey).toBe("old");
    expect(log.isLatestJob).toBeUndefined();
    expect(log.events.map((e) => e.type)).toEqual(["startRun"]);
    await expect(readJobLog(dir, query({ jobId: "nope" }))).rejects.toThrow(JobNotFoundError);
    await expect(readJobLog(dir, query({ jobId: "nope" }))).rejects.toThrow(/list jobs with `perstack jobs`$/);
  });

  it("no jobs at all: undefined", async () => {
    expect(await readJobLog(perstackDir(), query())).toBeUndefined();
  });

  it("--run: that run's events only and a run-scoped summary; its job is found without --job", async () => {
    const dir = twoJobs();
    const log = (await readJobLog(dir, query({ runId: "r2" })))!;
    expect(log.job.id).toBe("job1");
    expect(log.isLatestJob).toBeUndefined();
    expect(log.checkpoints).toBeUndefined();
    expect(log.events.map((e) => e.type)).toEqual(["startRun", "startGeneration", "callTools", "resolveToolResults", "completeRun"]);
    expect(log.summary).toMatchObject({ scope: "run", runId: "r2", status: "completed", steps: 1, usage: usage(30, 4), durationMs: 4, runs: 1, toolCalls: { exec: 1 } });
    const lead = (await readJobLog(dir, query({ jobId: "job1", runId: "r1" })))!;
    expect(lead.summary).toMatchObject({ status: "completed", steps: 3, usage: usage(70, 16), toolCalls: { writeTextFile: 1, helper: 1 } });
    expect((await readJobLog(dir, query({ runId: "r9" })))!.job.id).toBe("job0");
  });

  it("--run that is nowhere, or not in the named job, is one error", async () => {
    const dir = twoJobs();
    await expect(readJobLog(dir, query({ runId: "ghost" }))).rejects.toThrow(RunNotFoundError);
    await expect(readJobLog(dir, query({ runId: "ghost" }))).rejects.toThrow(/^run "ghost" is in no job in .*perstack\/jobs; list jobs with `perstack jobs`, then pass --job <jobId>$/);
    await expect(readJobLog(dir, query({ runId: "../job0" }))).rejects.toThrow(RunNotFoundError);
    await expect(readJobLog(dir, query({ jobId: "job1", runId: "r9" }))).rejects.toThrow('run "r9" is not in job job1 (its runs: r1, r2)');
  });

  it("--checkpoint: the checkpoint from its file and the events of its run", async () => {
    const dir = twoJobs();
    const log = (await readJobLog(dir, query({ checkpointId: "cp3" })))!;
    expect(log.checkpoint).toMatchObject({ id: "cp3", runId: "r2", status: "completed" });
    expect(log.checkpoint!.messages).toHaveLength(2);
    expect(new Set(log.events.map((e) => e.runId))).toEqual(new Set(["r2"]));
    await expect(readJobLog(dir, query({ checkpointId: "cp3", runId: "r1" }))).rejects.toThrow(InvalidOptionError);
    await expect(readJobLog(dir, query({ checkpointId: "nope" }))).rejects.toThrow(CheckpointNotFoundError);
    await expect(readJobLog(dir, query({ jobId: "job1", checkpointId: "nope" }))).rejects.toThrow(/list the job's checkpoints with `perstack log --job job1 --summary`$/);
  });

  it("--messages without --checkpoint: the job's latest checkpoint; none yet is one error", async () => {
    const dir = twoJobs();
    const log = (await readJobLog(dir, query({ messages: true })))!;
    expect(log.checkpoint?.id).toBe("cp4");
    expect(log.summary.scope).toBe("job");
    await expect(readJobLog(dir, query({ jobId: "job0", messages: true }))).rejects.toThrow("--messages: job job0 has no checkpoint yet; name one with --checkpoint <checkpointId>");
  });

  it("filters, presets, steps and paging apply to the merged stream; the summary does not change", async () => {
    const dir = twoJobs();
    const run = async (over: Partial<LogQuery>) => (await readJobLog(dir, query(over)))!;
    const tools = await run({ selector: { types: selectedTypes(undefined, ["tools"]) } });
    expect(tools.events.map((e) => `${e.runId}:${e.type}`)).toEqual(["r1:callTools", "r1:resolveToolResults", "r2:callTools", "r2:resolveToolResults"]);
    expect(tools.summary.eventsInScope).toBe(18);
    const errors = await run({ selector: { types: selectedTypes(undefined, ["errors"]) } });
    expect(errors.events.map((e) => e.type)).toEqual(["retry"]);
    const delegations = await run({ selector: { types: selectedTypes(undefined, ["delegations"]) } });
    expect(delegations.events.map((e) => e.type)).toEqual(["callDelegate", "stopRunByDelegate"]);
    const step2 = await run({ selector: { steps: parseStepFilter("2") } });
    expect(step2.events.map((e) => e.type)).toEqual(["startGeneration", "callDelegate", "stopRunByDelegate"]);
    const exec = await run({ selector: { filter: parseFilterExpression('.toolCalls[].normalized.toolName == "exec"') } });
    expect(exec.events.map((e) => e.id)).toHaveLength(1);
    expect(exec.events[0]).toMatchObject({ runId: "r2", type: "callTools" });
    const blocked = await run({ selector: { filter: parseFilterExpression('.action == "blocked"') }, paging: { take: 100, offset: 0, context: 1 } });
    expect(blocked.events.map((e) => e.type)).toEqual(["callTools", "proxyAccess", "resolveToolResults"]);
    expect([blocked.totalEventsBeforeLimit, blocked.matchedAfterPagination]).toEqual([1, 1]);
    const paged = await run({ paging: { take: 3, offset: 2, context: 0 } });
    expect(paged.events.map((e) => e.type)).toEqual(MULTI_RUN_ORDER.slice(2, 5));
    expect([paged.totalEventsBeforeLimit, paged.matchedAfterPagination]).toEqual([18, 3]);
    expect(paged.summary).toMatchObject({ totalEvents: 3, eventsInScope: 18, errorCount: 1, toolCallCount: 1 });
  });

  it("a job still running has no duration; a run without a stopping event is running", async () => {
    const dir = perstackDir();
    writeJob(dir, { job: { id: "j", status: "running", finishedAt: undefined }, runs: { r: [ev("startRun", "r", 5, { expertKey: "x", stepNumber: 1, initialCheckpoint: checkpoint("c", "r", "x", "init", 0), inputMessages: [] })] } });
    const log = (await readJobLog(dir, query()))!;
    expect(log.summary.durationMs).toBeUndefined();
    expect(log.summary.status).toBe("running");
    expect((await readJobLog(dir, query({ runId: "r" })))!.summary.status).toBe("running");
  });
});

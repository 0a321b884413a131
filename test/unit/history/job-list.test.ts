import { describe, expect, it } from "vitest";
import { formatJobTable, jobListEntry, noJobsMessage } from "../../../src/history/job-list.js";
import type { Checkpoint, Job } from "../../../src/model/perstack.js";
import { checkpoint, usage } from "./job-fixtures.js";

const job = (over: Partial<Job> = {}): Job => ({
  id: "j1", status: "completed", coordinatorExpertKey: "lead", totalSteps: 4, usage: usage(1200, 34), startedAt: Date.UTC(2025, 5, 1, 12), finishedAt: Date.UTC(2025, 5, 1, 12) + 65_000, runtime: "perstack", ...over,
});

describe("perstack jobs", () => {
  it("an entry: the job's fields, every runtime its runs used (its own first), the duration", () => {
    expect(jobListEntry(job(), ["claude-code", "perstack", "claude-code"])).toEqual({ ...job(), runtimes: ["perstack", "claude-code"], durationMs: 65_000 });
    const { finishedAt: _finishedAt, ...running } = job({ status: "running" });
    expect(jobListEntry(running, []).durationMs).toBeUndefined();
  });

  it("a job waiting for input carries the command that answers it; a delegate's question goes through the coordinator", () => {
    const waiting = job({ status: "stoppedByInteractiveTool" });
    expect(jobListEntry(waiting, []).continueCommand).toBe("perstack run lead --continue-job j1 -i '<answer>'");
    const own = checkpoint("c", "r", "lead", "stoppedByInteractiveTool", 1) as unknown as Checkpoint;
    expect(jobListEntry(waiting, [], own).continueCommand).toBe("perstack run lead --continue-job j1 -i '<answer>'");
    const delegated = { ...own, expert: { key: "asker", name: "asker", version: "1" }, delegatedBy: { expert: { key: "lead" }, toolCallId: "t", toolName: "asker", checkpointId: "p", runId: "r0" } } as unknown as Checkpoint;
    expect(jobListEntry({ ...waiting, coordinatorExpertKey: "desk" }, [], delegated).continueCommand).toBe("perstack run desk --continue-job j1 -i '<answer>'");
    expect(jobListEntry(job({ status: "stoppedByError" }), []).continueCommand).toBeUndefined();
  });

  it("the table: a header, one line per job in the given order, numbers aligned, the answer command on a waiting job's line", () => {
    const entries = [
      jobListEntry(job({ id: "newest-job", status: "stoppedByInteractiveTool", totalSteps: 12, usage: usage(99_000, 1_000) }), []),
      jobListEntry(job({ id: "j2", status: "stoppedByError", coordinatorExpertKey: "a-much-longer-expert" }), ["claude-code"]),
      jobListEntry({ ...job({ id: "j3", status: "running" }), finishedAt: undefined }, []),
    ];
    const lines = formatJobTable(entries).split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe("JOB         EXPERT                RUNTIME               STATUS                    STEPS   TOKENS  STARTED              DURATION");
    const date = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`;
    expect(lines[1]).toMatch(new RegExp(`^newest-job  lead                  perstack              stoppedByInteractiveTool     12  100,000  ${date}  1m 05s    answer: perstack run lead --continue-job newest-job -i '<answer>'$`));
    expect(lines[2]).toMatch(new RegExp(`^j2          a-much-longer-expert  perstack,claude-code  stoppedByError                4    1,234  ${date}  1m 05s$`));
    expect(lines[3]).toMatch(/ running {2}.* running$/);
  });

  it("says where jobs would be and how to start one", () => {
    expect(noJobsMessage("/w/perstack/jobs")).toBe('no jobs in /w/perstack/jobs yet; start one with `perstack run <expert> "<query>"`');
  });
});

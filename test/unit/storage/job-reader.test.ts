import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, JobNotFoundError } from "../../../src/errors.js";
import { emptyUsage } from "../../../src/model/perstack.js";
import { latestJobId, readCheckpoint, readJob } from "../../../src/storage/job-reader.js";

function perstackDir(jobs: Record<string, { startedAt: number; checkpoints?: Record<string, unknown> }>) {
  const dir = join(mkdtempSync(join(tmpdir(), "perstack-reader-")), "perstack");
  for (const [id, { startedAt, checkpoints }] of Object.entries(jobs)) {
    mkdirSync(join(dir, "jobs", id, "checkpoints"), { recursive: true });
    writeFileSync(
      join(dir, "jobs", id, "job.json"),
      JSON.stringify({ id, status: "completed", coordinatorExpertKey: "lead", totalSteps: 1, usage: emptyUsage(), startedAt, runtime: "perstack" }),
    );
    for (const [cpId, cp] of Object.entries(checkpoints ?? {})) writeFileSync(join(dir, "jobs", id, "checkpoints", `${cpId}.json`), JSON.stringify(cp));
  }
  return dir;
}

const cp = (id: string, jobId = "a") => ({
  id, jobId, runId: "r", status: "completed", stepNumber: 1, messages: [], expert: { key: "lead", name: "lead", version: "1" }, usage: emptyUsage(),
});

describe("job-reader", () => {
  it("finds the most recent job by startedAt, not by name", () => {
    const dir = perstackDir({ zzz: { startedAt: 1 }, aaa: { startedAt: 5 }, mmm: { startedAt: 3 } });
    expect(latestJobId(dir)).toBe("aaa");
  });

  it("no jobs: one error saying how to start one", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "perstack-reader-")), "perstack");
    expect(() => latestJobId(dir)).toThrow(JobNotFoundError);
    expect(() => latestJobId(dir)).toThrow(/--continue: no jobs in .*perstack\/jobs; start one with/);
  });

  it("a missing job names the path and how to list jobs", () => {
    const dir = perstackDir({ a: { startedAt: 1 } });
    expect(() => readJob(dir, "nope", "/")).toThrow(new RegExp(`job nope not found: ${dir}/jobs/nope/job.json does not exist; list jobs with \`ls `));
    expect(readJob(dir, "a").coordinatorExpertKey).toBe("lead");
  });

  it("reads and validates a job's checkpoint; others are refused by name", () => {
    const dir = perstackDir({ a: { startedAt: 1, checkpoints: { c1: cp("c1"), bad: { id: "bad" }, other: cp("other", "b") } } });
    expect(readCheckpoint(dir, "a", "c1").id).toBe("c1");
    expect(() => readCheckpoint(dir, "a", "c2")).toThrow(CheckpointNotFoundError);
    expect(() => readCheckpoint(dir, "a", "c2")).toThrow(/checkpoint c2 is not in job a: no .*checkpoints\/c2\.json; list the job's checkpoints with/);
    expect(() => readCheckpoint(dir, "a", "../job")).toThrow(/checkpoint \.\.\/job is not in job a/);
    expect(() => readCheckpoint(dir, "a", "bad")).toThrow(/not a valid checkpoint/);
    expect(() => readCheckpoint(dir, "a", "other")).toThrow(/belongs to job b, not a/);
  });
});

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, JobNotFoundError } from "../../../src/errors.js";
import { emptyUsage } from "../../../src/model/perstack.js";
import { latestJobId, listJobs, listRunIds, readCheckpoint, readJob, runRuntimeName } from "../../../src/storage/job-reader.js";

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
    expect(() => readJob(dir, "nope")).toThrow(new RegExp(`job nope not found: ${dir}/jobs/nope/job.json does not exist; list jobs with \`perstack jobs\`$`));
    expect(() => readJob(dir, "../a")).toThrow(/job "\.\.\/a" not found: job ids are letters, digits, '-' and '_'; list jobs with `perstack jobs`$/);
    expect(readJob(dir, "a").coordinatorExpertKey).toBe("lead");
  });

  it("reads and validates a job's checkpoint; others are refused by name", () => {
    const dir = perstackDir({ a: { startedAt: 1, checkpoints: { c1: cp("c1"), bad: { id: "bad" }, other: cp("other", "b") } } });
    expect(readCheckpoint(dir, "a", "c1").id).toBe("c1");
    expect(() => readCheckpoint(dir, "a", "c2")).toThrow(CheckpointNotFoundError);
    expect(() => readCheckpoint(dir, "a", "c2")).toThrow(/checkpoint c2 is not in job a: no .*checkpoints\/c2\.json; list the job's checkpoints with `perstack log --job a --summary`$/);
    expect(() => readCheckpoint(dir, "a", "../job")).toThrow(/checkpoint \.\.\/job is not in job a/);
    expect(() => readCheckpoint(dir, "a", "bad")).toThrow(/not a valid checkpoint/);
    expect(() => readCheckpoint(dir, "a", "other")).toThrow(/belongs to job b, not a/);
  });

  it("lists valid jobs newest first and says why each other directory is skipped", () => {
    const dir = perstackDir({ old: { startedAt: 1 }, fresh: { startedAt: 9 }, mid: { startedAt: 5 } });
    mkdirSync(join(dir, "jobs", "empty"));
    mkdirSync(join(dir, "jobs", "broken"));
    writeFileSync(join(dir, "jobs", "broken", "job.json"), "{not json");
    mkdirSync(join(dir, "jobs", "wrong"));
    writeFileSync(join(dir, "jobs", "wrong", "job.json"), JSON.stringify({ id: "wrong", status: "exploded" }));
    mkdirSync(join(dir, "jobs", "alias"));
    writeFileSync(join(dir, "jobs", "alias", "job.json"), readFileSync(join(dir, "jobs", "old", "job.json")));
    mkdirSync(join(dir, "jobs", "bad name"));
    const { jobs, skipped } = listJobs(dir);
    expect(jobs.map((j) => j.id)).toEqual(["fresh", "mid", "old"]);
    expect(Object.fromEntries(skipped.map((s) => [s.name, s.reason]))).toEqual({
      alias: 'job.json belongs to job "old"',
      "bad name": "not a job id (letters, digits, '-' and '_')",
      broken: expect.stringMatching(/^job\.json: not JSON/),
      empty: "no job.json",
      wrong: expect.stringMatching(/^job\.json is not a valid job \(status: /),
    });
    expect(listJobs(join(dir, "nowhere"))).toEqual({ jobs: [], skipped: [] });
  });

  it("lists a job's runs and reads each run's runtime name", () => {
    const dir = perstackDir({ a: { startedAt: 1 } });
    for (const run of ["r2", "r1", "bad name"]) mkdirSync(join(dir, "jobs", "a", "runs", run), { recursive: true });
    writeFileSync(join(dir, "jobs", "a", "runs", "r1", "run-setting.json"), JSON.stringify({ runtime: { name: "claude-code" } }));
    writeFileSync(join(dir, "jobs", "a", "runs", "r2", "run-setting.json"), "[]");
    expect(listRunIds(dir, "a")).toEqual(["r1", "r2"]);
    expect(listRunIds(dir, "../a")).toEqual([]);
    expect(runRuntimeName(dir, "a", "r1")).toBe("claude-code");
    expect(runRuntimeName(dir, "a", "r2")).toBeUndefined();
    expect(runRuntimeName(dir, "a", "missing")).toBeUndefined();
  });
});

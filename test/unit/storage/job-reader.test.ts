import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointNotFoundError, JobNotFoundError } from "../../../src/errors.js";
import { emptyUsage } from "../../../src/model/perstack.js";
import { hasCheckpoint, latestJobId, listJobs, listRunIds, readCheckpoint, readJob, runRuntimeName } from "../../../src/storage/job-reader.js";

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
    expect(() => readCheckpoint(dir, "a", "c2")).toThrow(/checkpoint c2 is not in job a: no .*checkpoints\/c2\.json, nor a line of a run's checkpoints\.jsonl; list the job's checkpoints with `perstack log --job a --summary`$/);
    expect(() => readCheckpoint(dir, "a", "../job")).toThrow(/checkpoint \.\.\/job is not in job a/);
    expect(() => readCheckpoint(dir, "a", "bad")).toThrow(/not a valid checkpoint/);
    expect(() => readCheckpoint(dir, "a", "other")).toThrow(/belongs to job b, not a/);
  });

  it("a step checkpoint is a line of its run's checkpoints.jsonl, its messages the first lines of messages.jsonl; bad lines are refused", () => {
    const { messages: _none, ...header } = cp("s1");
    void _none;
    const logged = (id: string, count: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ ...header, id, status: "proceeding", messagesLog: { count }, ...extra });
    const dir = perstackDir({ a: { startedAt: 1, checkpoints: { both: { ...JSON.parse(logged("both", 1)), messages: [] } } } });
    const user = (text: string) => ({ type: "userMessage", id: text, contents: [{ type: "textPart", id: `${text}-t`, text }] });
    const run = (id: string) => {
      mkdirSync(join(dir, "jobs", "a", "runs", id), { recursive: true });
      return (name: string, text: string) => writeFileSync(join(dir, "jobs", "a", "runs", id, name), text);
    };
    const r = run("r");
    // A last line still being written is not there yet: not a message, not a checkpoint.
    r("messages.jsonl", `${JSON.stringify(user("one"))}\n${JSON.stringify(user("two"))}\n{"type":"user`);
    r("checkpoints.jsonl", [logged("s1", 2), logged("s2", 3), logged("s0", 0), logged("neg", -1), "not json", logged("../up", 1), logged("claims", 1, { runId: "r2" }), '{"id":"partial"'].join("\n"));
    // A run with checkpoints but no messages.jsonl.
    run("r3")("checkpoints.jsonl", `${logged("lost", 1, { runId: "r3" })}\n`);
    const s1 = readCheckpoint(dir, "a", "s1");
    expect(s1.messages.map((m) => m.id)).toEqual(["one", "two"]);
    expect(s1).not.toHaveProperty("messagesLog");
    expect(hasCheckpoint(dir, "a", "s1")).toBe(true);
    expect(readCheckpoint(dir, "a", "s0").messages).toEqual([]);
    expect(() => readCheckpoint(dir, "a", "s2")).toThrow(/runs\/r\/checkpoints\.jsonl \(checkpoint s2\): cannot read its 3 messages: its run's messages\.jsonl holds 2$/);
    expect(() => readCheckpoint(dir, "a", "neg")).toThrow(/\(checkpoint neg\): not a valid checkpoint \(messagesLog\.count: not a whole number\)/);
    expect(() => readCheckpoint(dir, "a", "both")).toThrow(/both\.json: not a valid checkpoint \(both messages and messagesLog\)/);
    expect(() => readCheckpoint(dir, "a", "lost")).toThrow(/cannot read its 1 messages: .*runs\/r3\/messages\.jsonl is missing/);
    // A line that claims another run than the one it is in, an unsafe id, a line not yet ended: not checkpoints.
    for (const id of ["claims", "partial"]) {
      expect(hasCheckpoint(dir, "a", id)).toBe(false);
      expect(() => readCheckpoint(dir, "a", id)).toThrow(new RegExp(`checkpoint ${id} is not in job a`));
    }
    expect(() => readCheckpoint(dir, "a", "../up")).toThrow(/checkpoint \.\.\/up is not in job a/);
    // A message line that is not a message fails validation like a whole checkpoint's would.
    r("messages.jsonl", `${JSON.stringify(user("one"))}\n{"type":"nope"}\n`);
    expect(() => readCheckpoint(dir, "a", "s1")).toThrow(/\(checkpoint s1\): not a valid checkpoint \(messages\.1/);
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

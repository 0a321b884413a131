import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runJobsCommand } from "../../../src/cli/jobs-command.js";
import { capturedIo, checkpoint, ev, perstackDir, usage, writeJob } from "../history/job-fixtures.js";

const io = capturedIo;

function jobsOnDisk(): string {
  const dir = perstackDir();
  const run = (runId: string) => [ev("startRun", runId, 1, { expertKey: "x", stepNumber: 1 })];
  writeJob(dir, { job: { id: "done", startedAt: 1_000, finishedAt: 5_000 }, runs: { r1: run("r1") }, settings: { r1: { runtime: { name: "perstack" } } } });
  writeJob(dir, {
    job: { id: "failed", status: "stoppedByError", startedAt: 2_000, finishedAt: 3_000, runtime: "claude-code", usage: usage(5, 1) },
    runs: { r2: run("r2") },
    settings: { r2: { runtime: { name: "claude-code" } } },
  });
  const asked = checkpoint("ask1", "r4", "asker", "stoppedByInteractiveTool", 1, {
    jobId: "waiting",
    pendingToolCalls: [{ id: "t", skillName: "ask", toolName: "askColor", args: {} }],
    delegatedBy: { expert: { key: "desk", name: "desk", version: "1" }, toolCallId: "t0", toolName: "asker", checkpointId: "p1", runId: "r3" },
  });
  writeJob(dir, {
    job: { id: "waiting", status: "stoppedByInteractiveTool", coordinatorExpertKey: "desk", startedAt: 3_000, finishedAt: 4_000, latestCheckpointId: "ask1" },
    runs: { r3: run("r3"), r4: run("r4") },
    checkpoints: [asked],
  });
  mkdirSync(join(dir, "jobs", "broken"), { recursive: true });
  writeFileSync(join(dir, "jobs", "broken", "job.json"), "{");
  mkdirSync(join(dir, "jobs", "evil\u001b[2Jname"), { recursive: true });
  return dir;
}

describe("perstack jobs command", () => {
  it("one line per job, newest first; a waiting job's line says how to answer it; broken directories are warnings", () => {
    const dir = jobsOnDisk();
    const out = io(dir);
    expect(runJobsCommand({}, out)).toBe(0);
    const lines = out.out.trimEnd().split("\n");
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual(["JOB", "waiting", "failed", "done"]);
    expect(lines[1]).toMatch(/ desk .* stoppedByInteractiveTool .* answer: perstack run desk --continue-job waiting -i '<answer>'$/);
    expect(lines[2]).toMatch(/^failed +lead +claude-code +stoppedByError +3 +6 /);
    expect(lines[3]).toMatch(/^done +lead +perstack +completed +3 +120 .* 4\.0s$/);
    expect(out.err.split("\n").filter(Boolean)).toEqual([
      expect.stringMatching(/^perstack: warning: skipped .*jobs\/broken: job\.json: not JSON/),
      expect.stringMatching(/^perstack: warning: skipped .*jobs\/evilname: not a job id/),
    ]);
  });

  it("--json: an array of the jobs with their runtimes, duration and answer command", () => {
    const out = io(jobsOnDisk());
    runJobsCommand({ json: true }, out);
    const jobs = JSON.parse(out.out) as Array<Record<string, unknown>>;
    expect(jobs.map((j) => [j.id, j.status, j.runtimes, j.durationMs, j.continueCommand])).toEqual([
      ["waiting", "stoppedByInteractiveTool", ["perstack"], 1_000, "perstack run desk --continue-job waiting -i '<answer>'"],
      ["failed", "stoppedByError", ["claude-code"], 1_000, undefined],
      ["done", "completed", ["perstack"], 4_000, undefined],
    ]);
    expect(jobs[0]).toMatchObject({ coordinatorExpertKey: "desk", totalSteps: 3, usage: usage(100, 20), startedAt: 3_000, latestCheckpointId: "ask1" });
  });

  it("no jobs: says so and how to start one; --json is an empty array", () => {
    const out = io(perstackDir());
    runJobsCommand({}, out);
    expect(out.out).toMatch(/^no jobs in .*perstack\/jobs yet; start one with `perstack run <expert> "<query>"`\n$/);
    const json = io(perstackDir());
    runJobsCommand({ json: true }, json);
    expect(json.out).toBe("[]\n");
  });
});

// Issue 13: which jobs a command takes over (job/orphaned-runs.ts): those that say `running` while their lock names a
// process of this host that is gone. A live holder, another host's, a finished job or no lock at all is left alone;
// and the leftover sweep spares the containers of a run that can still be taken over.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JobLock, LOCK_FILE } from "../../../src/job/job-lock.js";
import { awaitsTakeOver, findOrphanedRuns } from "../../../src/job/orphaned-runs.js";
import { isLeftover } from "../../../src/sandbox/leftovers.js";

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "0"]);
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

function job(perstackDir: string, jobId: string, status: string, lock?: Record<string, unknown>): string {
  const dir = join(perstackDir, "jobs", jobId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "job.json"), JSON.stringify({ id: jobId, status, coordinatorExpertKey: "e", totalSteps: 0, maxSteps: 10, usage: { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 }, startedAt: 1, runtime: "perstack" }));
  if (lock) writeFileSync(join(dir, LOCK_FILE), `${JSON.stringify({ since: 0, nonce: "n", ...lock })}\n`);
  return dir;
}

describe("orphaned runs", () => {
  it("are running jobs whose lock names a process of this host that is gone, with the run it started", async () => {
    const perstackDir = join(mkdtempSync(join(tmpdir(), "perstack-orphans-")), "perstack");
    const dead = await deadPid();
    job(perstackDir, "orphan", "running", { pid: dead, host: hostname(), runId: "run1" });
    job(perstackDir, "live", "running", { pid: process.pid, host: hostname(), runId: "run2" });
    job(perstackDir, "elsewhere", "running", { pid: dead, host: "build-7", runId: "run3" });
    job(perstackDir, "finished", "completed", { pid: dead, host: hostname(), runId: "run4" });
    job(perstackDir, "unlocked", "running");
    job(perstackDir, "bad-run-id", "running", { pid: dead, host: hostname(), runId: "../x" });
    const found = findOrphanedRuns(perstackDir).sort((a, b) => a.jobId.localeCompare(b.jobId));
    expect(found).toEqual([
      { jobId: "bad-run-id", pid: dead },
      { jobId: "orphan", pid: dead, runId: "run1" },
    ]);
  });

  it("a lock names the run its process started", () => {
    const perstackDir = join(mkdtempSync(join(tmpdir(), "perstack-orphans-")), "perstack");
    const dir = job(perstackDir, "j1", "running");
    const lock = JobLock.acquire(dir, "j1", { runId: "r1" });
    // Its process is this one, alive: not an orphan.
    expect(findOrphanedRuns(perstackDir)).toEqual([]);
    lock.release();
  });

  it("the sweep spares a dead process's containers while their job still says running", async () => {
    const perstackDir = join(mkdtempSync(join(tmpdir(), "perstack-orphans-")), "perstack");
    const dead = await deadPid();
    job(perstackDir, "open", "running");
    job(perstackDir, "closed", "completed");
    const labels = (jobId: string) => ({ "perstack.managed": "true", "perstack.job": jobId, "perstack.run": "r", "perstack.owner-pid": String(dead), "perstack.owner-host": hostname(), "perstack.jobs-dir": join(perstackDir, "jobs") });
    expect(awaitsTakeOver(labels("open"))).toBe(true);
    expect(isLeftover(labels("open"))).toBe(false);
    expect(isLeftover(labels("closed"))).toBe(true);
    // Labels of an older version (no jobs directory) or naming a job that is not there: leftovers as before.
    const { "perstack.jobs-dir": _dir, ...old } = labels("open");
    expect(isLeftover(old)).toBe(true);
    expect(isLeftover(labels("missing"))).toBe(true);
    // A live owner's containers are never leftovers.
    expect(isLeftover({ ...labels("closed"), "perstack.owner-pid": String(process.pid) })).toBe(false);
  });
});

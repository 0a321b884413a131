// Issue 13: one perstack process at a time works on a job (job/job-lock.ts). A second is refused by name; a lock left
// by a process that died is taken over; and when several processes race for a job, even over a stale lock, exactly
// one gets it (real processes, not a simulation).
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { JobInUseError, JobLock, LOCK_FILE } from "../../../src/job/job-lock.js";

const BUILT_LOCK = fileURLToPath(new URL("../../../dist/src/job/job-lock.js", import.meta.url));

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "0"]);
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

const jobDir = () => join(mkdtempSync(join(tmpdir(), "perstack-lock-")), "job1");
const holder = (fields: Record<string, unknown>) => `${JSON.stringify({ pid: process.pid, host: "elsewhere", since: 0, nonce: "n0", ...fields })}\n`;

describe("the job lock", () => {
  it("a second taker is refused by name until the first lets go; the lock file is gone afterwards", () => {
    const dir = jobDir();
    const lock = JobLock.acquire(dir, "job1", { now: () => Date.UTC(2026, 10, 29) });
    expect(() => JobLock.acquire(dir, "job1")).toThrow(JobInUseError);
    expect(() => JobLock.acquire(dir, "job1")).toThrow(new RegExp(`^job job1 is in use by perstack process ${process.pid} on .*, since 2026-11-29T00:00:00.000Z; wait until it ends, then run again$`));
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
    JobLock.acquire(dir, "job1").release();
  });

  it("a lock whose process is gone is taken over; one from another host never is", async () => {
    const dir = jobDir();
    JobLock.acquire(dir, "job1").release();
    const { hostname } = await import("node:os");
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: await deadPid(), host: hostname() }));
    const lock = JobLock.acquire(dir, "job1");
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")).pid).toBe(process.pid);
    lock.release();
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: 1, host: "build-7" }));
    expect(() => JobLock.acquire(dir, "job1")).toThrow(/in use by perstack process 1 on build-7/);
  });

  it("a lock file that is not a lock is taken over; releasing never removes another's lock", () => {
    const dir = jobDir();
    JobLock.acquire(dir, "job1").release();
    writeFileSync(join(dir, LOCK_FILE), "{not json");
    const lock = JobLock.acquire(dir, "job1");
    writeFileSync(join(dir, LOCK_FILE), holder({ nonce: "someone-else" }));
    lock.release();
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toContain("someone-else");
  });

  it("eight processes racing for a job with a stale lock: exactly one gets it", async () => {
    const dir = jobDir();
    JobLock.acquire(dir, "job1").release();
    const { hostname } = await import("node:os");
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: await deadPid(), host: hostname() }));
    // Each waits for the same moment, tries, holds what it got for a while, and says what happened.
    const start = Date.now() + 500;
    const script = `
      const { JobLock } = await import(${JSON.stringify(BUILT_LOCK)});
      while (Date.now() < ${start}) {}
      try { JobLock.acquire(${JSON.stringify(dir)}, "job1"); console.log("got"); setTimeout(() => {}, 1000); }
      catch (error) { console.log(error.name === "JobInUseError" ? "refused" : "error " + error.message); }`;
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => (out += chunk));
        return new Promise<string>((resolve) => child.once("close", () => resolve(out.trim())));
      }),
    );
    expect(outcomes.filter((o) => o === "got")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(7);
  }, 30_000);
});

// Issue 13: the disk fills while a run is collected. The collector writes onto a real filesystem of 1 MiB (a tmpfs,
// mounted here) until it is full. Every JSON file must still parse, every JSONL file must hold whole lines only, no
// temporary file may be left, and the run must say that the disk is full. Needs root to mount; in CI that is a failure
// to have, never a reason to skip.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunCollector } from "../../src/collector/run-collector.js";
import { diskFullMessage } from "../../src/job/disk-full.js";
import { newId } from "../../src/model/ids.js";
import { ClaudeStreamParser } from "../../src/runtimes/claude-code.js";
import { JobStore } from "../../src/storage/job-store.js";
import { inCI } from "../support/docker.js";
import { recordedClaudeStream, replicateClaudeStream } from "../support/stream-replicate.js";

const root = process.getuid?.() === 0;
if (!root && inCI()) throw new Error("test/integration/disk-full.test.ts mounts a tmpfs and needs root, which CI has");
if (!root) console.warn("[disk-full] skipped: mounting a small tmpfs needs root");

const mounts: string[] = [];
afterAll(() => {
  for (const dir of mounts) {
    execFileSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A fresh filesystem of `size` bytes. */
function smallDisk(size: number): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  mounts.push(dir);
  return dir;
}

/** Every file under `dir`, by path relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}

const write = (stream: NodeJS.WritableStream, data: string) => new Promise<void>((resolve) => stream.write(data, () => resolve()));

describe.skipIf(!root)("collecting onto a disk that fills up", () => {
  it("stops with the disk named as full; every JSON file parses, every JSONL file is whole lines, nothing temporary is left", async () => {
    const disk = smallDisk(1024 * 1024);
    const perstackDir = join(disk, "perstack");
    const store = new JobStore(perstackDir, "job1");
    await store.writeJob({ id: "job1", status: "running", coordinatorExpertKey: "e", totalSteps: 0, usage: { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 }, startedAt: 1, runtime: "claude-code" });
    const files = store.openRun("run1");
    let failures = 0;
    files.onFailure(() => (failures += 1));
    const parser = new ClaudeStreamParser({
      jobId: "job1", runId: "run1", expert: { key: "e", name: "e", version: "1.0.0" }, instruction: "Be brief.", query: "Write hello.",
      runtime: "claude-code", metadata: { runtimeVersion: "2.1.330" }, newId, now: Date.now,
    });
    const collector = new RunCollector({ jobId: "job1", runId: "run1", store, files, parser, newId, now: Date.now, onEvent: () => undefined });
    // About 3 MB of stream: raw.log alone would not fit.
    const lines = replicateClaudeStream(recordedClaudeStream(), 5_000);
    for (let at = 0; at < lines.length && !files.failure; at += 200) {
      await write(collector.stdout, `${lines.slice(at, at + 200).join("\n")}\n`);
      await files.drained();
    }
    expect(files.failure?.code).toBe("ENOSPC");
    expect(failures).toBe(1);
    const outcome = await collector.fail({ name: "DiskFull", message: diskFullMessage(store.jobDir, files.failure!), isRetryable: false });
    expect(outcome.status).toBe("stoppedByError");
    expect(outcome.error?.message).toMatch(/^the disk is full where the run's files are \(.*\/perstack\/jobs\/job1\), so the run was stopped; its files are kept whole up to that point\. Free some space, then continue the job$/);
    await files.close();
    // job.json cannot be replaced any more: the old one stays, whole.
    await expect(store.writeJob({ id: "job1", status: "stoppedByError", coordinatorExpertKey: "e", totalSteps: 1, usage: outcome.usage, startedAt: 1, finishedAt: 2, runtime: "claude-code", padding: "x".repeat(2 * 1024 * 1024) } as never)).rejects.toMatchObject({ code: "ENOSPC" });

    const written = filesUnder(store.jobDir);
    expect(written).toEqual(expect.arrayContaining(["job.json", "runs/run1/events.jsonl", "runs/run1/raw.log"]));
    expect(written.filter((f) => f.endsWith(".tmp"))).toEqual([]);
    for (const file of written) {
      const text = readFileSync(join(store.jobDir, file), "utf8");
      if (file.endsWith(".json")) expect(() => JSON.parse(text), file).not.toThrow();
      if (file.endsWith(".jsonl")) {
        expect(text === "" || text.endsWith("\n"), `${file} ends at a line boundary`).toBe(true);
        for (const line of text.split("\n").filter(Boolean)) expect(() => JSON.parse(line), file).not.toThrow();
      }
    }
    expect(JSON.parse(readFileSync(join(store.jobDir, "job.json"), "utf8")).status).toBe("running");
    expect(statSync(join(store.jobDir, "runs/run1/events.jsonl")).size).toBeGreaterThan(0);
  }, 60_000);
});

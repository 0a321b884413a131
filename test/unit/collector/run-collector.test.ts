import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunCollector } from "../../../src/collector/run-collector.js";
import type { PerstackEvent } from "../../../src/model/perstack.js";
import { ClaudeStreamParser } from "../../../src/runtimes/claude-code.js";
import { JobStore } from "../../../src/storage/job-store.js";

function collector() {
  const dir = mkdtempSync(join(tmpdir(), "perstack-collector-"));
  const store = new JobStore(dir, "job1");
  const files = store.openRun("run1");
  let n = 0;
  const newId = () => `id${++n}`;
  const seen: PerstackEvent[] = [];
  const parser = new ClaudeStreamParser({
    jobId: "job1", runId: "run1", expert: { key: "e", name: "e", version: "1" }, instruction: "i", query: "q",
    runtime: "claude-code", metadata: {}, newId, now: () => 1,
  });
  const c = new RunCollector({ jobId: "job1", runId: "run1", store, files, parser, newId, now: () => 1, onEvent: (e) => seen.push(e) });
  return { c, files, store, seen, runDir: files.dir, jobDir: store.jobDir };
}

const write = (stream: NodeJS.WritableStream, data: Buffer | string) => new Promise<void>((resolve) => stream.write(data, () => resolve()));

describe("RunCollector", () => {
  it("keeps junk, binary and overlong lines in raw.log and still collects the run", async () => {
    const { c, files, seen, runDir, jobDir } = collector();
    const fixture = readFileSync(new URL("../../fixtures/claude-code/sandbox-run-success.jsonl", import.meta.url));
    const junk = Buffer.concat([
      Buffer.from("not json at all\n"),
      Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]),
      Buffer.from(`{"type":"assistant","message":${"x".repeat(9 * 1024 * 1024)}\n`),
    ]);
    // Arbitrary chunk boundaries, as a docker stream delivers them.
    const all = Buffer.concat([junk, fixture]);
    for (let i = 0; i < all.length; i += 65_521) await write(c.stdout, all.subarray(i, i + 65_521));
    await write(c.stderr, "some stderr\n");
    const outcome = await c.finish(0);
    await files.close();

    expect(outcome.status).toBe("completed");
    expect(outcome.text).toBe("All done: wrote hello.txt");
    expect(readFileSync(join(runDir, "raw.log")).equals(all)).toBe(true);
    expect(seen).toContainEqual(expect.objectContaining({ type: "sandboxWarning", code: "invalid-output", message: expect.stringMatching(/overlong line of \d+ bytes/) }));
    const events = readFileSync(join(runDir, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(seen.map((e) => e.type));
    expect(events.at(-1).type).toBe("completeRun");
    // The end is a file; the initial state and the two tool steps are lines of the run's checkpoints.jsonl.
    expect(readdirSync(join(jobDir, "checkpoints"))).toHaveLength(1);
    expect(readdirSync(join(jobDir, "checkpoints")).every((f) => f.endsWith(".json"))).toBe(true);
    expect(readFileSync(join(runDir, "checkpoints.jsonl"), "utf8").trim().split("\n")).toHaveLength(3);
  });

  it("turns proxy log lines into proxyAccess events", async () => {
    const { c, seen } = collector();
    c.proxyLine("1700000000.000 TCP_DENIED 403 CONNECT evil.example:443 not-allowlisted");
    c.proxyLine("junk");
    expect(seen).toEqual([expect.objectContaining({ type: "proxyAccess", action: "blocked", domain: "evil.example", port: 443, reason: "not-allowlisted", jobId: "job1", runId: "run1" })]);
  });

  it("fails a run from outside with the given error when the stream never ended it", async () => {
    const { c } = collector();
    const outcome = await c.fail({ name: "Interrupted", message: "stopped", isRetryable: false });
    expect(outcome).toMatchObject({ status: "stoppedByError", error: { name: "Interrupted", message: "stopped" } });
  });
});

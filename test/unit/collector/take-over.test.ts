// A collector that takes over a run whose perstack process died (job/recover-run.ts) reads the agent's output again
// from its start. Whatever the first collector got onto the disk before it died, the run's files must end up as if
// nobody had died: the same events, messages and checkpoints, none twice, and the hostile-output rules unchanged.
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunCollector } from "../../../src/collector/run-collector.js";
import { idSequence } from "../../../src/model/ids.js";
import { emptyUsage, type CheckpointRef, type PerstackEvent } from "../../../src/model/perstack.js";
import { ClaudeStreamParser } from "../../../src/runtimes/claude-code.js";
import { PerstackStreamParser } from "../../../src/runtimes/perstack.js";
import { JobStore } from "../../../src/storage/job-store.js";
import { readRecordedRun } from "../../../src/storage/recorded-run.js";

const JOB = "job1";
const ROOT = "root1";
const context = { jobId: JOB, runId: ROOT, expert: { key: "main", name: "main", version: "1.0.0" }, instruction: "i", query: "q", metadata: {}, now: () => 1 };

type Runtime = "claude-code" | "perstack";

function parserOf(runtime: Runtime) {
  const ctx = { ...context, runtime, newId: idSequence(ROOT) };
  return runtime === "claude-code" ? new ClaudeStreamParser(ctx) : new PerstackStreamParser(ctx);
}

const write = (stream: NodeJS.WritableStream, data: Buffer) => new Promise<void>((resolve) => stream.write(data, () => resolve()));

/**
 * Collects `output` into a fresh or (`resumed`) existing job under `perstackDir`. With `cutAt`, only that many bytes
 * arrive and the collector stops without ending the run, as when its process is killed (what it wrote stays).
 */
async function collect(perstackDir: string, runtime: Runtime, output: Buffer, options: { cutAt?: number; resumed?: boolean } = {}) {
  const store = new JobStore(perstackDir, JOB);
  const files = store.openRun(ROOT, options.resumed ? { resumed: readRecordedRun(store.runDir(ROOT)) } : {});
  const seen: PerstackEvent[] = [];
  let host = 0;
  const collector = new RunCollector({
    jobId: JOB,
    runId: ROOT,
    store,
    files,
    parser: parserOf(runtime),
    newId: () => `host${++host}`,
    now: () => 1,
    onEvent: (e) => seen.push(e),
    experts: new Set(["main", "helper"]),
    ...(options.resumed ? { resumed: { recordedRun: (id: string) => readRecordedRun(store.runDir(id)) } } : {}),
  });
  const data = options.cutAt === undefined ? output : output.subarray(0, options.cutAt);
  // Arbitrary chunk boundaries, as a docker stream delivers them.
  for (let i = 0; i < data.length; i += 997) await write(collector.stdout, data.subarray(i, i + 997));
  if (options.cutAt !== undefined) {
    await collector.closeWithoutEnding();
    await files.close();
    return { seen, store };
  }
  const outcome = await collector.finish(0);
  await files.close();
  return { seen, store, outcome };
}

/** Every file of the job, by path, as text. */
function snapshot(jobDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const path of readdirSync(jobDir, { recursive: true }).map(String).sort()) {
    try {
      out[path] = readFileSync(join(jobDir, path), "utf8");
    } catch {
      // a directory
    }
  }
  return out;
}

const tempDir = () => join(mkdtempSync(join(tmpdir(), "perstack-takeover-")), "perstack");

/** A built-in engine run that delegates to a helper run, as the engine prints it. */
function delegatingOutput(): Buffer {
  const expert = context.expert;
  const helper = { ...expert, key: "helper" };
  const usage = emptyUsage();
  const cp = (over: Partial<CheckpointRef>): CheckpointRef => ({ id: "cp", jobId: JOB, runId: ROOT, status: "init", stepNumber: 1, messagesRef: { checkpointId: over.id ?? "cp", count: 0 }, expert, usage, ...over });
  const ev = (over: Record<string, unknown>) => `${JSON.stringify({ expertKey: "main", timestamp: 1, jobId: JOB, runId: ROOT, stepNumber: 1, ...over })}\n`;
  const lines = [
    ev({ id: "e1", type: "startRun", initialCheckpoint: cp({ id: "root-start" }), inputMessages: [] }),
    ev({ id: "e2", type: "startRun", runId: "child1", expertKey: "helper", initialCheckpoint: cp({ id: "child-start", runId: "child1", expert: helper, delegatedBy: { expert, toolCallId: "t", toolName: "helper", checkpointId: "root-start", runId: ROOT } }), inputMessages: [] }),
    ...Array.from({ length: 20 }, (_, i) => ev({ id: `r${i}`, type: "retry", runId: "child1", expertKey: "helper", reason: `child retry ${i}` })),
    ev({ id: "e3", type: "completeRun", runId: "child1", expertKey: "helper", checkpoint: cp({ id: "child-end", runId: "child1", status: "completed", expert: helper }), text: "helped", usage }),
    ...Array.from({ length: 20 }, (_, i) => ev({ id: `q${i}`, type: "retry", reason: `root retry ${i}` })),
    ev({ id: "e4", type: "completeRun", checkpoint: cp({ id: "root-end", status: "completed" }), text: "done", usage }),
  ];
  return Buffer.from(lines.join(""));
}

describe("taking over a run whose collector died", () => {
  const claude = readFileSync(new URL("../../fixtures/claude-code/sandbox-run-success.jsonl", import.meta.url));
  const builtIn = delegatingOutput();

  it.each([
    ["claude-code", claude, [1, 0.2, 0.5, 0.9]],
    ["perstack", builtIn, [0.1, 0.4, 0.6, 0.95]],
  ] as const)("%s: the files end as if nobody died, wherever the first collector stopped", async (runtime, output, cuts) => {
    const reference = tempDir();
    const whole = await collect(reference, runtime, output);
    expect(whole.outcome?.status).toBe("completed");
    const expected = snapshot(whole.store.jobDir);
    for (const fraction of cuts) {
      const dir = tempDir();
      const cutAt = Math.floor(output.length * fraction);
      const first = await collect(dir, runtime, output, { cutAt });
      // The kill also tore the last line being written.
      appendFileSync(join(first.store.runDir(ROOT), "events.jsonl"), '{"id":"torn","type":"ret');
      const taken = await collect(dir, runtime, output, { resumed: true });
      expect(taken.outcome?.status).toBe("completed");
      expect(snapshot(taken.store.jobDir), `cut at ${cutAt} of ${output.length} bytes`).toEqual(expected);
      // Only what was not recorded before is shown again.
      expect(first.seen.length + taken.seen.length).toBe(whole.seen.length);
    }
  });

  it("still refuses a checkpoint id or a run id of an earlier invocation, and accepts the ones this invocation wrote", async () => {
    const dir = tempDir();
    const store = new JobStore(dir, JOB);
    mkdirSync(join(store.jobDir, "runs", "earlier-run"), { recursive: true });
    writeFileSync(join(store.jobDir, "runs", "earlier-run", "checkpoints.jsonl"), `${JSON.stringify({ id: "earlier-step", jobId: JOB, runId: "earlier-run", status: "proceeding", stepNumber: 1, messagesLog: { count: 0 } })}\n`);
    writeFileSync(join(store.jobDir, "checkpoints", "earlier.json"), '{"kept":true}\n');
    const usage = emptyUsage();
    const expert = context.expert;
    const cp = (id: string, status: CheckpointRef["status"]): CheckpointRef => ({ id, jobId: JOB, runId: ROOT, status, stepNumber: 1, messagesRef: { checkpointId: id, count: 0 }, expert, usage });
    const ev = (over: Record<string, unknown>) => `${JSON.stringify({ expertKey: "main", timestamp: 1, jobId: JOB, runId: ROOT, stepNumber: 1, ...over })}\n`;
    const output = Buffer.from(
      [
        ev({ id: "e1", type: "startRun", initialCheckpoint: cp("mine", "init"), inputMessages: [] }),
        ev({ id: "f1", type: "stopRunByError", checkpoint: cp("earlier-step", "stoppedByError"), error: { name: "E", message: "forged", isRetryable: false } }),
        ev({ id: "f2", type: "stopRunByError", checkpoint: cp("earlier", "stoppedByError"), error: { name: "E", message: "forged", isRetryable: false } }),
        // A delegated run under an earlier run's id would append to that run's record.
        ev({ id: "f3", type: "startRun", runId: "earlier-run", initialCheckpoint: { ...cp("f3cp", "init"), runId: "earlier-run", delegatedBy: { expert, toolCallId: "t", toolName: "main", checkpointId: "mine", runId: ROOT } }, inputMessages: [] }),
        ev({ id: "e2", type: "completeRun", checkpoint: cp("mine", "completed"), text: "done", usage }),
      ].join(""),
    );
    const cutAt = output.indexOf("f2") - 40;
    await collect(dir, "perstack", output, { cutAt });
    const taken = await collect(dir, "perstack", output, { resumed: true });
    expect(taken.outcome?.status).toBe("completed");
    const warnings = taken.seen.filter((e) => e.type === "sandboxWarning").map((e) => (e as { message: string }).message);
    expect(warnings.join("\n")).toMatch(/checkpoint earlier already exists from before this run/);
    expect(warnings.join("\n")).toMatch(/startRun for run earlier-run, which exists from before this invocation/);
    expect(readdirSync(join(store.jobDir, "runs", "earlier-run"))).toEqual(["checkpoints.jsonl"]);
    expect(readFileSync(join(store.jobDir, "checkpoints", "earlier.json"), "utf8")).toBe('{"kept":true}\n');
    const events = readFileSync(join(store.runDir(ROOT), "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as PerstackEvent);
    expect(events.filter((e) => e.type !== "sandboxWarning").map((e) => e.id)).toEqual(["e1", "e2"]);
  });
});

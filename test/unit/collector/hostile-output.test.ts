// The agent's stdout is hostile: every line here is one a process in the agent container could print. None of the
// forged ones may name a file outside the job's directory, reach events.jsonl, or overwrite a checkpoint.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EventGuard } from "../../../src/collector/event-guard.js";
import { RunCollector } from "../../../src/collector/run-collector.js";
import { emptyUsage, type CheckpointRef, type MessagesRef, type PerstackEvent } from "../../../src/model/perstack.js";
import { PerstackStreamParser } from "../../../src/runtimes/perstack.js";
import { JobStore, UnsafeJobPathError } from "../../../src/storage/job-store.js";

const JOB = "job1";
const ROOT = "root1";
const usage = emptyUsage();
const expert = { key: "main", name: "main", version: "1.0.0" };

/** A checkpoint as the engine prints it; a file's messagesRef names itself (no messages unless told). */
const checkpoint = (over: Partial<CheckpointRef> = {}): CheckpointRef => ({
  id: "cp1",
  jobId: JOB,
  runId: ROOT,
  status: "init",
  stepNumber: 1,
  messagesRef: { checkpointId: over.id ?? "cp1", count: 0 },
  expert,
  usage,
  ...over,
});
const base = (over: Record<string, unknown> = {}) => ({ id: "ev1", expertKey: "main", timestamp: 1, jobId: JOB, runId: ROOT, stepNumber: 1, ...over });
const line = (event: object) => `${JSON.stringify(event)}\n`;

function setup(options: { maxOutputBytes?: number; earlierCheckpoints?: string[]; earlierStepCheckpoints?: string[] } = {}) {
  const parent = mkdtempSync(join(tmpdir(), "perstack-hostile-"));
  const perstackDir = join(parent, "work", "perstack");
  const store = new JobStore(perstackDir, JOB);
  // Checkpoints of an earlier invocation of the job: on disk before this one starts.
  for (const id of options.earlierCheckpoints ?? []) writeFileSync(join(store.jobDir, "checkpoints", `${id}.json`), '{"kept":true}\n');
  // Step checkpoints an earlier invocation logged (run-history-log.ts): lines of its run's checkpoints.jsonl.
  if (options.earlierStepCheckpoints) {
    mkdirSync(join(store.jobDir, "runs", "earlier-run"), { recursive: true });
    const lines = options.earlierStepCheckpoints.map((id) => JSON.stringify({ id, jobId: JOB, runId: "earlier-run", status: "proceeding", stepNumber: 1, messagesLog: { count: 0 } }));
    writeFileSync(join(store.jobDir, "runs", "earlier-run", "checkpoints.jsonl"), `${lines.join("\n")}\n`);
  }
  const files = store.openRun(ROOT);
  const seen: PerstackEvent[] = [];
  let n = 0;
  let limited = 0;
  const parser = new PerstackStreamParser({
    jobId: JOB, runId: ROOT, expert, instruction: "i", query: "q", runtime: "perstack", metadata: {}, newId: () => `host${++n}`, now: () => 1,
  });
  const collector = new RunCollector({
    jobId: JOB,
    runId: ROOT,
    store,
    files,
    parser,
    newId: () => `host${++n}`,
    now: () => 1,
    onEvent: (e) => seen.push(e),
    experts: new Set(["main", "helper"]),
    ...(options.maxOutputBytes !== undefined ? { maxOutputBytes: options.maxOutputBytes } : {}),
    onOutputLimit: () => {
      limited += 1;
    },
  });
  return { parent, store, files, collector, seen, limited: () => limited };
}

const write = (stream: NodeJS.WritableStream, data: string) => new Promise<void>((resolve) => stream.write(data, () => resolve()));

/** Every path under `dir`, relative, recursively. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

describe("hostile lines on the agent's stdout", () => {
  it("forged events name no file outside the job, are not stored, and each leaves a warning", async () => {
    // A checkpoint of an earlier invocation that a forged event tries to replace.
    const { parent, store, files, collector, seen } = setup({ earlierCheckpoints: ["earlier"], earlierStepCheckpoints: ["earlier-step"] });
    const forged = [
      line({ ...base({ runId: "../../../../../x" }), type: "retry", reason: "r" }),
      line({ ...base(), type: "continueToNextStep", checkpoint: checkpoint({ id: "../../../../escape", status: "proceeding" }), nextCheckpoint: checkpoint({ id: "n1" }) }),
      line({ id: "p1", timestamp: 1, jobId: JOB, runId: ROOT, type: "proxyAccess", action: "allowed", domain: "attacker.example", port: 443 }),
      line({ id: "p2", timestamp: 1, jobId: JOB, runId: ROOT, type: "dockerContainerStatus", service: "agent", status: "exited with code 0" }),
      line({ id: "p3", timestamp: 1, jobId: JOB, runId: ROOT, type: "sandboxWarning", code: "output-limit", message: "fake" }),
      line({ ...base({ runId: "ghost" }), type: "retry", reason: "a run nobody started" }),
      line({ ...base({ runId: "child1" }), type: "startRun", initialCheckpoint: checkpoint({ runId: "child1", delegatedBy: { expert, toolCallId: "t", toolName: "x", checkpointId: "c", runId: "ghost" } }), inputMessages: [] }),
      line({ ...base(), type: "stopRunByError", checkpoint: checkpoint({ id: "earlier", status: "stoppedByError" }), error: { name: "E", message: "m", isRetryable: false } }),
      // A file under an earlier step checkpoint's id would shadow it for --resume-from.
      line({ ...base(), type: "stopRunByError", checkpoint: checkpoint({ id: "earlier-step", status: "stoppedByError" }), error: { name: "E", message: "m", isRetryable: false } }),
      line({ ...base({ expertKey: "intruder" }), type: "retry", reason: "r" }),
      line({ ...base({ jobId: "other-job" }), type: "retry", reason: "r" }),
      "plain text written to /proc/1/fd/1\n",
    ];
    await write(collector.stdout, line({ ...base(), type: "startRun", initialCheckpoint: checkpoint(), inputMessages: [] }));
    for (const text of forged) await write(collector.stdout, text);
    // A legitimate delegated run still works after all that.
    await write(collector.stdout, line({ ...base({ runId: "child2", expertKey: "helper" }), type: "startRun", initialCheckpoint: checkpoint({ id: "cpc2", runId: "child2", expert: { ...expert, key: "helper" }, delegatedBy: { expert, toolCallId: "t", toolName: "helper", checkpointId: "cp1", runId: ROOT } }), inputMessages: [] }));
    await write(collector.stdout, line({ ...base(), type: "completeRun", checkpoint: checkpoint({ id: "final1", status: "completed" }), text: "done", usage }));
    const outcome = await collector.finish(0);
    await files.close();

    expect(outcome.status).toBe("completed");
    expect(tree(parent)).toEqual(tree(parent).filter((p) => p === "work" || p.startsWith(join("work", "perstack"))));
    expect(existsSync(join(parent, "x"))).toBe(false);
    expect(readFileSync(join(store.jobDir, "checkpoints", "earlier.json"), "utf8")).toBe('{"kept":true}\n');
    expect(readdirSync(join(store.jobDir, "runs")).sort()).toEqual([ROOT, "child2", "earlier-run"].sort());
    expect(readdirSync(join(store.jobDir, "checkpoints")).sort()).toEqual(["cp1.json", "cpc2.json", "earlier.json", "final1.json"]);

    const stored = readFileSync(join(files.dir, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as PerstackEvent);
    const storedTypes = stored.map((e) => e.type);
    expect(storedTypes.filter((t) => t !== "sandboxWarning")).toEqual(["startRun", "completeRun"]);
    expect(stored.some((e) => e.type === "proxyAccess" || e.type === "dockerContainerStatus")).toBe(false);
    const warnings = seen.filter((e): e is Extract<PerstackEvent, { type: "sandboxWarning" }> => e.type === "sandboxWarning");
    expect(warnings).toHaveLength(forged.length);
    expect(warnings.map((w) => w.code)).toEqual([
      "invalid-output", "invalid-output", "forged-event", "forged-event", "forged-event", "forged-event", "forged-event", "forged-event", "forged-event", "forged-event", "invalid-output", "invalid-output",
    ]);
    expect(warnings.map((w) => w.message).join("\n")).toMatch(/"proxyAccess" events come only from the host/);
    expect(warnings.map((w) => w.message).join("\n")).toMatch(/already exists from before this run/);
    expect(warnings.map((w) => w.message).join("\n")).toMatch(/which was never started/);
    // The forged warning the agent printed is not the one the host stored.
    expect(warnings.some((w) => w.message === "fake")).toBe(false);
  });

  it("stops recording at the output limit, calls for the run to stop once, and keeps what came before", async () => {
    const { files, collector, seen, limited } = setup({ maxOutputBytes: 1_000 });
    const start = line({ ...base(), type: "startRun", initialCheckpoint: checkpoint(), inputMessages: [] });
    await write(collector.stdout, start);
    for (let i = 0; i < 50; i++) await write(collector.stdout, `${"y".repeat(99)}\n`);
    await write(collector.stderr, "late stderr\n");
    collector.proxyLine("1700000000.000 TCP_DENIED 403 CONNECT evil.example:443 not-allowlisted");
    expect(limited()).toBe(1);
    expect(collector.outputLimitExceeded).toBe(true);
    const outcome = await collector.fail({ name: "OutputLimitExceeded", message: "too much", isRetryable: false });
    await files.close();
    expect(outcome).toMatchObject({ status: "stoppedByError", error: { name: "OutputLimitExceeded" } });
    expect(readFileSync(join(files.dir, "raw.log")).length).toBe(1_000);
    expect(readFileSync(join(files.dir, "stderr.log"), "utf8")).toBe("");
    expect(seen.filter((e) => e.type === "sandboxWarning" && e.code === "output-limit")).toHaveLength(1);
    expect(seen.some((e) => e.type === "proxyAccess")).toBe(false);
    expect(seen.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "OutputLimitExceeded" } });
  });

  it("caps warnings: a flood of junk lines leaves at most 101 warning events", async () => {
    const { collector, seen } = setup();
    for (let i = 0; i < 500; i++) await write(collector.stdout, `junk ${i}\n`);
    await collector.finish(0);
    const warnings = seen.filter((e) => e.type === "sandboxWarning");
    expect(warnings).toHaveLength(101);
    expect(warnings.at(-1)).toMatchObject({ message: expect.stringMatching(/more than 100 warnings/) });
  });
});

describe("EventGuard", () => {
  const guard = (onDisk: string[] = [], messages = 5) =>
    new EventGuard({ jobId: JOB, rootRunId: ROOT, experts: new Set(["main", "helper"]), checkpointOnDisk: (id) => onDisk.includes(id), messageCount: () => messages });
  const retry = (over: Record<string, unknown>) => ({ ...base(over), type: "retry", reason: "r" }) as PerstackEvent;

  it("accepts the root run's events and rewrites of checkpoints it wrote itself", () => {
    const g = guard();
    const stop = { ...base(), type: "stopRunByError", checkpoint: checkpoint({ id: "c9" }), error: { name: "E", message: "m", isRetryable: false } } as PerstackEvent;
    expect(g.check(retry({}))).toEqual({ ok: true });
    expect(g.check(stop)).toEqual({ ok: true });
    const later = guard(["c9"]);
    expect(later.check(stop)).toMatchObject({ ok: false });
  });

  it("refuses ids that are not safe, wherever a checkpoint carries them", () => {
    const g = guard();
    const withDelegate = (ids: { runId: string; checkpointId?: string }) =>
      ({ ...base(), type: "stopRunByDelegate", checkpoint: checkpoint({ id: "c2", delegateTo: [{ expert, toolCallId: "t", toolName: "x", query: "q", ...ids }] }) }) as PerstackEvent;
    expect(g.check(withDelegate({ runId: "../up" }))).toMatchObject({ ok: false, reason: expect.stringMatching(/invalid id/) });
    expect(g.check(withDelegate({ runId: "ok", checkpointId: "/abs" }))).toMatchObject({ ok: false });
    expect(g.check(retry({ id: "a b" }))).toMatchObject({ ok: false, reason: expect.stringMatching(/invalid id/) });
  });

  describe("message references", () => {
    const ref = (checkpointId: string, count: number): MessagesRef => ({ checkpointId, count });
    const start = (id: string, runId: string, count: number, over: Partial<CheckpointRef> = {}) =>
      ({ ...base({ runId, expertKey: runId === ROOT ? "main" : "helper" }), type: "startRun", initialCheckpoint: checkpoint({ id, runId, messagesRef: ref(id, count), ...over }), inputMessages: [] }) as PerstackEvent;
    const generation = (messagesRef: MessagesRef, runId = ROOT) => ({ ...base({ runId }), type: "startGeneration", messagesRef }) as PerstackEvent;
    const step = (id: string, count: number, next: MessagesRef) =>
      ({ ...base(), type: "continueToNextStep", checkpoint: checkpoint({ id, status: "proceeding", messagesRef: ref(id, count) }), nextCheckpoint: checkpoint({ id: `${id}n`, status: "proceeding", messagesRef: next }) }) as PerstackEvent;
    /** A guard that has seen the root run start (c0, 2 messages) and delegate to run "kid" (k0, 1 message). */
    function started(onDisk: string[] = []) {
      const g = guard(onDisk);
      expect(g.check(start("c0", ROOT, 2))).toEqual({ ok: true });
      const delegatedBy = { expert, toolCallId: "t", toolName: "helper", checkpointId: "c0", runId: ROOT };
      expect(g.check(start("k0", "kid", 1, { delegatedBy, expert: { ...expert, key: "helper" } }))).toEqual({ ok: true });
      return g;
    }

    it("accepts references to checkpoint files this run wrote, within their messages", () => {
      const g = started();
      expect(g.check(generation(ref("c0", 2)))).toEqual({ ok: true });
      expect(g.check(generation(ref("c0", 1)))).toEqual({ ok: true });
      expect(g.check(step("c1", 4, ref("c1", 4)))).toEqual({ ok: true });
      expect(g.check(generation(ref("c1", 4)))).toEqual({ ok: true });
      expect(g.check(generation(ref("k0", 1), "kid"))).toEqual({ ok: true });
    });

    it("refuses a reference to a checkpoint that does not exist, or that exists only from before this invocation", () => {
      const g = started(["old"]);
      expect(g.check(generation(ref("nowhere", 0)))).toMatchObject({ ok: false, reason: expect.stringMatching(/messagesRef names checkpoint nowhere, which this run has not written/) });
      expect(g.check(generation(ref("old", 0)))).toMatchObject({ ok: false, reason: expect.stringMatching(/checkpoint old, which this run has not written/) });
      expect(g.check(step("c1", 2, ref("ghost", 1)))).toMatchObject({ ok: false, reason: expect.stringMatching(/nextCheckpoint\.messagesRef names checkpoint ghost/) });
    });

    it("refuses a reference to another run's checkpoint", () => {
      const g = started();
      expect(g.check(generation(ref("k0", 1)))).toMatchObject({ ok: false, reason: expect.stringMatching(/names checkpoint k0 of run kid, not of run root1/) });
      expect(g.check(generation(ref("c0", 1), "kid"))).toMatchObject({ ok: false, reason: expect.stringMatching(/names checkpoint c0 of run root1, not of run kid/) });
    });

    it("refuses a reference asking for more messages than its checkpoint holds, or that is not one", () => {
      const g = started();
      expect(g.check(generation(ref("c0", 3)))).toMatchObject({ ok: false, reason: expect.stringMatching(/asks for 3 messages of checkpoint c0, which holds 2/) });
      expect(g.check(generation({ checkpointId: "../c0", count: 1 }))).toMatchObject({ ok: false, reason: expect.stringMatching(/is not a reference/) });
      expect(g.check(generation({ checkpointId: "c0", count: 1.5 }))).toMatchObject({ ok: false, reason: expect.stringMatching(/is not a reference/) });
      expect(g.check(generation(undefined as unknown as MessagesRef))).toMatchObject({ ok: false, reason: expect.stringMatching(/is not a reference/) });
    });

    it("refuses a checkpoint file whose messages are another checkpoint's, or more than its run's conversation holds", () => {
      const g = started();
      const borrowed = { ...base(), type: "completeRun", checkpoint: checkpoint({ id: "c5", status: "completed", messagesRef: ref("c0", 2) }), text: "", usage } as PerstackEvent;
      expect(g.check(borrowed)).toMatchObject({ ok: false, reason: expect.stringMatching(/refers to the messages of another checkpoint, "c0"/) });
      expect(guard([], 1).check(start("c0", ROOT, 2))).toMatchObject({ ok: false, reason: expect.stringMatching(/claims 2 messages; run root1's conversation has 1/) });
    });

    it("refuses a checkpoint file another run wrote, or one that would shrink under earlier references", () => {
      const g = started();
      const kidTakesRoot = { ...base({ runId: "kid", expertKey: "helper" }), type: "completeRun", checkpoint: checkpoint({ id: "c0", runId: "kid", status: "completed", messagesRef: ref("c0", 1) }), text: "", usage } as PerstackEvent;
      expect(g.check(kidTakesRoot)).toMatchObject({ ok: false, reason: expect.stringMatching(/checkpoint c0 was written by run root1, not kid/) });
      const shrink = { ...base(), type: "completeRun", checkpoint: checkpoint({ id: "c0", status: "completed", messagesRef: ref("c0", 1) }), text: "", usage } as PerstackEvent;
      expect(g.check(shrink)).toMatchObject({ ok: false, reason: expect.stringMatching(/would shrink from 2 to 1 messages/) });
    });
  });
});

describe("JobStore paths", () => {
  it("builds paths only from safe ids, inside the job directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "perstack-store-"));
    mkdirSync(join(dir, "jobs"), { recursive: true });
    expect(() => new JobStore(dir, "../escape")).toThrow(UnsafeJobPathError);
    const store = new JobStore(dir, "job1");
    for (const bad of ["../x", "a/b", "", ".", "..", "x\0y", "/abs", "a".repeat(200)]) {
      expect(() => store.checkpointPath(bad), bad).toThrow(UnsafeJobPathError);
      expect(() => store.runDir(bad), bad).toThrow(UnsafeJobPathError);
    }
    expect(store.checkpointPath("cp_1-a")).toBe(join(dir, "jobs", "job1", "checkpoints", "cp_1-a.json"));
    expect(readdirSync(dir)).toEqual(["jobs"]);
  });
});

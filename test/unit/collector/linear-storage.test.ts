// Issue 12: what a run records grows linearly with its steps. Events name their messages by reference to the
// checkpoint files, and a step's checkpoint file names lines of the run's messages.jsonl (the conversation written
// once), so a step costs what it added, whatever came before; the checkpoint a run stops on is whole; the collector
// holds the conversation once; and every reference and every checkpoint reads back in Perstack's shape.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { afterAll, describe, expect, it } from "vitest";
import { runLogCommand } from "../../../src/cli/log-command.js";
import { RunCollector } from "../../../src/collector/run-collector.js";
import { CheckpointFileMessages } from "../../../src/history/checkpoint-messages.js";
import { expandRecord, recordedEvent } from "../../../src/model/event-messages.js";
import { newId } from "../../../src/model/ids.js";
import type { Checkpoint, CheckpointRef, Job, Message, PerstackEvent } from "../../../src/model/perstack.js";
import { ClaudeStreamParser } from "../../../src/runtimes/claude-code.js";
import { readCheckpoint } from "../../../src/storage/job-reader.js";
import { JobStore } from "../../../src/storage/job-store.js";
import { capturedIo } from "../history/job-fixtures.js";
import { recordedClaudeStream, replicateClaudeStream } from "../../support/stream-replicate.js";

const JOB = "job1";
const RUN = "run1";
const RECORDING = recordedClaudeStream();
const TOOL_RESULT_TEXT = '"type":"tool_result","content":"';
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
/** A fresh perstack/ directory, removed after the tests. */
function perstackDir(prefix: string): string {
  const parent = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(parent);
  return join(parent, "perstack");
}

/** success.jsonl's tool turns take 7 lines for 3 steps; its head and tail 3 lines. */
const linesFor = (steps: number) => 3 + Math.ceil((steps * 7) / 3);

function collector(store: JobStore, onEvent: (event: PerstackEvent, expanded?: () => unknown) => void = () => undefined, expandEvents = false) {
  const files = store.openRun(RUN);
  const parser = new ClaudeStreamParser({
    jobId: JOB, runId: RUN, expert: { key: "e", name: "e", version: "1.0.0" }, instruction: "Be brief.", query: "Write hello.",
    runtime: "claude-code", metadata: { runtimeVersion: "2.1.330" }, newId, now: Date.now,
  });
  const collector = new RunCollector({ jobId: JOB, runId: RUN, store, files, parser, newId, now: Date.now, onEvent, ...(expandEvents ? { expandEvents } : {}) });
  return { collector, files, parser };
}

const write = (stream: NodeJS.WritableStream, data: string) => new Promise<void>((resolve) => stream.write(data, () => resolve()));

/** A Claude Code run of about `steps` tool steps through the collector into a fresh perstack/ directory. */
async function recordRun(steps: number) {
  const dir = perstackDir("perstack-linear-");
  const store = new JobStore(dir, JOB);
  const emitted: PerstackEvent[] = [];
  const { collector: c, files } = collector(store, (event) => emitted.push(event));
  const lines = replicateClaudeStream(RECORDING, linesFor(steps));
  await write(c.stdout, `${lines.join("\n")}\n`);
  const outcome = await c.finish(0);
  await files.close();
  await store.writeJob({ id: JOB, status: "completed", coordinatorExpertKey: "e", totalSteps: outcome.steps, usage: outcome.usage, startedAt: 1, finishedAt: 2, runtime: "claude-code", latestCheckpointId: outcome.lastCheckpoint!.id });
  const eventsPath = join(files.dir, "events.jsonl");
  const events = readFileSync(eventsPath, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  // Tool steps; the final answer's generation is one more step of its own.
  const toolSteps = events.filter((e) => e.type === "continueToNextStep").length;
  return { dir, store, files, outcome, events, emitted, toolSteps, eventsBytes: statSync(eventsPath).size, rawBytes: statSync(join(files.dir, "raw.log")).size };
}

/** Bytes of every file under `dir`. */
function treeBytes(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(join(entry.parentPath, entry.name)).size, 0);
}

const readCheckpointFile = (store: JobStore, id: string) => JSON.parse(readFileSync(store.checkpointPath(id), "utf8")) as Checkpoint;

describe("events.jsonl grows linearly with the run's steps", () => {
  it("bytes per step stay flat from 50 to 200 steps, within a small factor of the agent's own output", async () => {
    const runs = await Promise.all([50, 100, 200].map(recordRun));
    const perStep = runs.map((r) => r.eventsBytes / r.toolSteps);
    expect(runs.map((r) => r.toolSteps)).toEqual([50, 100, 200]);
    // Linear: twice the steps, twice the bytes (a repeated history would make it four times).
    expect(runs[2]!.eventsBytes / runs[1]!.eventsBytes).toBeGreaterThan(1.8);
    expect(runs[2]!.eventsBytes / runs[1]!.eventsBytes).toBeLessThan(2.2);
    expect(Math.max(...perStep) / Math.min(...perStep)).toBeLessThan(1.1);
    for (const run of runs) expect(run.eventsBytes / run.rawBytes).toBeLessThan(3);
  });

  it("a step's checkpoint is a line naming lines of messages.jsonl, the run's last a whole file; each reads back whole", async () => {
    const { dir, store, events, outcome, files } = await recordRun(30);
    // One file: the checkpoint the run stopped on. The start and the 30 steps are lines of checkpoints.jsonl.
    expect(readdirSync(join(store.jobDir, "checkpoints"))).toEqual([`${outcome.lastCheckpoint!.id}.json`]);
    const lines = (name: string) => readFileSync(join(files.dir, name), "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    const logged = new Map(lines("checkpoints.jsonl").map((line) => [line.id as string, line]));
    expect(logged.size).toBe(30 + 1);
    const final = readCheckpointFile(store, outcome.lastCheckpoint!.id);
    expect(final.status).toBe("completed");
    // instruction, query, then per step the expert's call and the tool result, then the final answer.
    expect(final.messages).toHaveLength(2 + 30 * 2 + 1);
    expect(JSON.stringify(final.messages.at(-1))).toContain("All done: wrote hello.txt");
    // messages.jsonl: the conversation once, a message per line, a prefix of the final checkpoint's.
    const conversation = lines("messages.jsonl");
    expect(conversation).toEqual(final.messages.slice(0, conversation.length));
    let steps = 0;
    for (const event of events) {
      for (const field of ["checkpoint", "initialCheckpoint"] as const) {
        const ref = event[field] as CheckpointRef | undefined;
        if (!ref) continue;
        expect(ref).not.toHaveProperty("messages");
        expect(ref.messagesRef.checkpointId).toBe(ref.id);
        const { messagesRef: _ref, ...header } = ref;
        void _ref;
        if (ref.status === "completed") {
          expect(readCheckpointFile(store, ref.id)).toEqual({ ...header, messages: final.messages });
        } else {
          steps += 1;
          // Every field of Perstack's checkpoint but the messages, which are the first `count` lines of the run's log.
          expect(logged.get(ref.id)).toEqual({ ...header, messagesLog: { count: ref.messagesRef.count } });
        }
        expect(readCheckpoint(dir, JOB, ref.id)).toEqual({ ...header, messages: final.messages.slice(0, ref.messagesRef.count) });
      }
    }
    expect(steps).toBe(30 + 1);
  });

  it("all a job's files together grow linearly too: bytes per step flat from 50 to 200 steps", async () => {
    const runs = await Promise.all([50, 100, 200].map(recordRun));
    const perStep = runs.map((r) => treeBytes(r.store.jobDir) / r.toolSteps);
    expect(Math.max(...perStep) / Math.min(...perStep)).toBeLessThan(1.15);
    // Against the agent's own output: the run records it (raw.log) plus what it means, each about its size.
    for (const run of runs) expect(treeBytes(run.store.jobDir) / run.rawBytes).toBeLessThan(4);
  });

  it("every reference reads back from the checkpoint files: each step starts from the messages its previous step ended with", async () => {
    const { dir, events } = await recordRun(12);
    const files = new CheckpointFileMessages(dir, JOB);
    const expanded = events.map((event) => expandRecord(event, files.resolve));
    let previous: Message[] | undefined;
    let generations = 0;
    for (const event of expanded) {
      if (event.type === "startGeneration") {
        generations += 1;
        expect(event).not.toHaveProperty("messagesRef");
        const messages = event.messages as Message[];
        if (previous) expect(messages).toEqual(previous);
        else expect(messages.map((m) => m.type)).toEqual(["instructionMessage", "userMessage"]);
      }
      if (event.type === "continueToNextStep") {
        const [checkpoint, next] = [event.checkpoint as Checkpoint, event.nextCheckpoint as Checkpoint];
        expect(next.messages).toEqual(checkpoint.messages);
        expect(next.stepNumber).toBe(checkpoint.stepNumber + 1);
        expect(checkpoint.messages.at(-1)?.type).toBe("toolMessage");
        previous = checkpoint.messages;
      }
    }
    expect(generations).toBe(13);
  });

  it("`perstack log --json` shows each event in Perstack's shape, its messages read back from the files", async () => {
    const { dir } = await recordRun(12);
    const io = capturedIo(dir);
    expect(await runLogCommand({ json: true, take: 0 }, io)).toBe(0);
    expect(io.err).toBe("");
    const out = JSON.parse(io.out) as { job: Job; events: Array<Record<string, unknown>>; warnings?: string[] };
    expect(out.warnings).toBeUndefined();
    const generations = out.events.filter((e) => e.type === "startGeneration");
    expect(generations.map((e) => (e.messages as unknown[]).length)).toEqual([2, ...Array.from({ length: 12 }, (_, i) => 4 + 2 * i)]);
    for (const event of out.events) {
      expect(JSON.stringify(event)).not.toContain("messagesRef");
      for (const field of ["checkpoint", "nextCheckpoint", "initialCheckpoint"]) {
        if (event[field]) expect(Array.isArray((event[field] as Checkpoint).messages), `${String(event.type)}.${field}`).toBe(true);
      }
    }
  });
});

describe("continueToNextStep's nextCheckpoint is recorded as what it changes from the event's checkpoint", () => {
  const error = { name: "E", message: "m", isRetryable: false };
  /** A step's checkpoint as the recorder makes it. */
  function checkpointOf(over: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      id: "c1", jobId: JOB, runId: RUN, status: "proceeding", stepNumber: 1, messagesRef: { checkpointId: "c1", count: 4 },
      expert: { key: "e", name: "e", version: "1.0.0" }, usage: { inputTokens: 3, outputTokens: 1, reasoningTokens: 0, totalTokens: 4, cachedInputTokens: 0 },
      metadata: { runtime: "claude-code", model: "m" }, ...over,
    };
  }
  /** The step's event; by default its next checkpoint is the same one (a copy) under another id and step. */
  function step(checkpoint = checkpointOf(), nextCheckpoint: Record<string, unknown> = { ...structuredClone(checkpoint), id: "c1n", stepNumber: 2 }) {
    return { id: "e1", expertKey: "e", timestamp: 1, jobId: JOB, runId: RUN, stepNumber: 1, type: "continueToNextStep", checkpoint, nextCheckpoint } as unknown as PerstackEvent;
  }
  /** The event as events.jsonl holds it, read back. */
  const recorded = (event: PerstackEvent) => JSON.parse(JSON.stringify(recordedEvent(event))) as Record<string, unknown>;
  /** Expansion that needs no files: a reference reads back as itself. */
  const resolve = (_runId: string, ref: { checkpointId: string; count: number }) => [ref] as unknown as Message[];
  /** Perstack's shape as JSON text: the same whichever way the event was recorded. */
  const shown = (event: object) => JSON.stringify(expandRecord(JSON.parse(JSON.stringify(event)) as Record<string, unknown>, resolve));

  it("as the id and step number it changes, and reads back to the very text of the whole one", () => {
    const event = step();
    expect(recorded(event).nextCheckpoint).toEqual({ checkpointWith: { id: "c1n", stepNumber: 2 } });
    expect(shown(recorded(event))).toBe(shown(event));
  });

  it.each([
    ["a field the checkpoint does not have", () => step(checkpointOf(), { ...checkpointOf({ error }), id: "c1n" })],
    ["the checkpoint's fields in another order", () => step(checkpointOf(), { stepNumber: 2, ...checkpointOf(), id: "c1n" })],
    ["a field JSON leaves out where the checkpoint has one", () => step(checkpointOf({ error }), { ...checkpointOf({ error: undefined }), id: "c1n" })],
  ])("whole, when it has %s", (_what, make) => {
    const event = make();
    expect(recorded(event).nextCheckpoint).toEqual(JSON.parse(JSON.stringify((event as { nextCheckpoint: object }).nextCheckpoint)));
    expect(shown(recorded(event))).toBe(shown(event));
  });

  it("with every other field that differs, however deep", () => {
    const event = step(checkpointOf({ metadata: { a: { b: { c: { d: 1 } } } } }), { ...checkpointOf({ metadata: { a: { b: { c: { d: 2 } } } } }), id: "c1n", stepNumber: 2 });
    const record = recorded(event);
    expect(record.nextCheckpoint).toEqual({ checkpointWith: { id: "c1n", stepNumber: 2, metadata: { a: { b: { c: { d: 2 } } } } } });
    expect(shown(record)).toBe(shown(event));
  });

  it("whole when a field named __proto__ differs, which no copy could set; compact when it does not", () => {
    // As JSON.parse makes them: "__proto__" an own field like any other.
    const checkpoint = JSON.parse(JSON.stringify(checkpointOf()).replace(/}$/, ',"__proto__":{"x":1}}')) as Record<string, unknown>;
    const same = { ...structuredClone(checkpoint), id: "c1n", stepNumber: 2 };
    expect(recorded(step(checkpoint, same)).nextCheckpoint).toEqual({ checkpointWith: { id: "c1n", stepNumber: 2 } });
    expect(shown(recorded(step(checkpoint, same)))).toBe(shown(step(checkpoint, same)));
    const other = JSON.parse(JSON.stringify(same).replace('"__proto__":{"x":1}', '"__proto__":{"x":2}')) as Record<string, unknown>;
    expect(recorded(step(checkpoint, other)).nextCheckpoint).toEqual(JSON.parse(JSON.stringify(other)));
    expect(shown(recorded(step(checkpoint, other)))).toContain('"__proto__":{"x":2}');
  });

  it("on a recorded run: every event reads back from the files to the text of the event the collector emitted", async () => {
    const { dir, events, emitted } = await recordRun(6);
    const steps = events.filter((e) => e.type === "continueToNextStep");
    expect(steps).toHaveLength(6);
    for (const recordedStep of steps) {
      const stepNumber = (recordedStep.checkpoint as CheckpointRef).stepNumber;
      expect(recordedStep.nextCheckpoint).toEqual({ checkpointWith: { id: expect.any(String), stepNumber: stepNumber + 1 } });
    }
    const files = new CheckpointFileMessages(dir, JOB);
    const readBack = (event: object) => JSON.stringify(expandRecord(JSON.parse(JSON.stringify(event)) as Record<string, unknown>, files.resolve));
    expect(events.map(readBack)).toEqual(emitted.map(readBack));
  });
});

describe("events in Perstack's shape as they come (--json)", () => {
  it("with expandEvents, each event expands to what the files read back; without, none is offered and messages leave memory", async () => {
    for (const expandEvents of [true, false]) {
      const dir = perstackDir("perstack-expand-");
      const store = new JobStore(dir, JOB);
      const shown: string[] = [];
      let offered = 0;
      const { collector: c, files, parser } = collector(
        store,
        (_event, expanded) => {
          if (!expanded) return;
          offered += 1;
          shown.push(JSON.stringify(expanded()));
        },
        expandEvents,
      );
      await write(c.stdout, `${replicateClaudeStream(RECORDING, linesFor(20)).join("\n")}\n`);
      await c.finish(0);
      await files.close();
      const log = parser.history(RUN)!;
      if (!expandEvents) {
        expect(offered).toBe(0);
        expect(log.firstHeld).toBeGreaterThan(30);
        continue;
      }
      expect(log.firstHeld).toBe(0);
      const recorded = readFileSync(join(files.dir, "events.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
      const checkpointFiles = new CheckpointFileMessages(dir, JOB);
      expect(shown).toEqual(recorded.map((event) => JSON.stringify(expandRecord(event, checkpointFiles.resolve))));
      expect(shown.some((line) => line.includes('"type":"startGeneration","messages":['))).toBe(true);
    }
  });
});

describe("the collector on a 10k-step stream", () => {
  it("keeps memory flat (the conversation is on disk, not in memory) and writes the conversation once: disk grows with what the run said, never with its events", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const dir = perstackDir("perstack-memory-");
    const store = new JobStore(dir, JOB);
    const { collector: c, files, parser } = collector(store);
    // Each tool result carries 2 KB more, so that what the conversation weighs dwarfs what the host keeps per step.
    const lines = replicateClaudeStream(RECORDING, linesFor(10_000)).map((line) => line.replace(TOOL_RESULT_TEXT, `${TOOL_RESULT_TEXT}${"x".repeat(2048)}`));
    const body = lines.slice(0, -2);
    const before = heap();
    const samples: Array<{ steps: number; heap: number; logBytes: number }> = [];
    const chunk = 2_000;
    for (let at = 0; at < body.length; at += chunk) {
      await write(c.stdout, `${body.slice(at, at + chunk).join("\n")}\n`);
      await files.drained();
      samples.push({ steps: parser.runRecorder.steps, heap: heap() - before, logBytes: statSync(join(files.dir, "messages.jsonl")).size });
    }
    await write(c.stdout, `${lines.slice(-2).join("\n")}\n`);
    const outcome = await c.finish(0);
    await files.close();
    expect(outcome.status).toBe("completed");
    expect(outcome.steps).toBe(10_000 + 1);
    expect(readdirSync(join(store.jobDir, "checkpoints"))).toHaveLength(1);
    expect(readFileSync(join(files.dir, "checkpoints.jsonl"), "utf8").split("\n")).toHaveLength(10_000 + 1 + 1);
    const half = samples.find((s) => s.steps >= 5_000)!;
    const last = samples.at(-1)!;
    // The conversation is not held: once a message is a line of messages.jsonl it leaves memory. What the heap still
    // gains per step is a checkpoint's id and count, kept by the guard (under 300 bytes), against more than 2 KB a
    // step of conversation; from the half-way point on, the heap grows by under a quarter of what the conversation does.
    const first = samples[0]!;
    expect(last.logBytes).toBeGreaterThan(15 * 1024 * 1024);
    expect((last.heap - first.heap) / (last.steps - first.steps)).toBeLessThan(300);
    expect(last.heap - half.heap).toBeLessThan((last.logBytes - half.logBytes) / 4);
    const eventsBytes = statSync(join(files.dir, "events.jsonl")).size;
    const rawBytes = statSync(join(files.dir, "raw.log")).size;
    expect(eventsBytes / rawBytes).toBeLessThan(2);
    // Everything the job wrote, 10k checkpoint files included, against the agent's own output: a small factor.
    expect(treeBytes(store.jobDir) / rawBytes).toBeLessThan(4.5);
    // And the last checkpoint reads back whole, every message of the 10k steps in it.
    expect(readCheckpoint(dir, JOB, outcome.lastCheckpoint!.id).messages).toHaveLength(2 + 10_000 * 2 + 1);
  }, 120_000);
});

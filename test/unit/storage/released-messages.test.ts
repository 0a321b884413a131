// A run's messages leave memory once they are lines of messages.jsonl (runtimes/message-log.ts): a whole checkpoint
// is then written from those lines and the messages still held, and reads back as if it had been cut from memory.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CheckpointRef, Message } from "../../../src/model/perstack.js";
import { MessageLog } from "../../../src/runtimes/message-log.js";
import { JobStore } from "../../../src/storage/job-store.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function store(): JobStore {
  const parent = mkdtempSync(join(tmpdir(), "perstack-released-"));
  dirs.push(parent);
  return new JobStore(join(parent, "perstack"), "job1");
}

// Texts with commas, brackets, quotes, escapes and characters of more than one UTF-8 byte: the file's bytes are
// joined as they are, never re-encoded. 40 of them weigh about 2.4 MB: the file is read back in several chunks.
const message = (i: number): Message => ({ type: "userMessage", id: `m${i}`, contents: [{ type: "textPart", text: `line ${i}, "quoted" [x] \\n é ✓ ${"z".repeat(i * 3000)}` }] });

function checkpoint(id: string, count: number, status: CheckpointRef["status"]): CheckpointRef {
  return {
    id,
    jobId: "job1",
    runId: "run1",
    status,
    stepNumber: count,
    messagesRef: { checkpointId: id, count },
    expert: { key: "e", name: "e", version: "1.0.0" },
    usage: { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 },
  };
}

describe("released messages", () => {
  it("a log lets go of what messages.jsonl holds, and refuses to give it back from memory", () => {
    const log = new MessageLog();
    log.append([message(0), message(1), message(2)]);
    log.release(2);
    expect(log.length).toBe(3);
    expect(log.firstHeld).toBe(2);
    expect(JSON.parse(log.text(2))).toEqual(message(2));
    expect(() => log.text(1)).toThrow(/not held/);
    expect(() => log.head(3)).toThrow(/not held/);
    expect(log.from(2)).toEqual([message(2)]);
    log.release(1);
    expect(log.firstHeld).toBe(2);
    log.release(10);
    expect(log.firstHeld).toBe(3);
    expect(log.length).toBe(3);
  });

  // Released all, some, or none of the checkpoint's messages; a chunk of the file ends anywhere in a line.
  it.each([
    { name: "all of them released", total: 40, steps: [40], count: 40 },
    { name: "some released, the rest held", total: 40, steps: [10, 25], count: 40 },
    { name: "a checkpoint shorter than what was released", total: 40, steps: [30], count: 20 },
    { name: "none released", total: 5, steps: [], count: 5 },
  ])("a whole checkpoint reads back the same: $name", async ({ total, steps, count }) => {
    const jobs = store();
    const files = jobs.openRun("run1");
    const log = new MessageLog();
    log.append(Array.from({ length: total }, (_, i) => message(i)));
    for (const step of steps) expect(files.appendCheckpoint(checkpoint(`s${step}`, step, "proceeding"), log, true)).toBe(true);
    expect(log.firstHeld).toBe(steps.at(-1) ?? 0);
    const last = checkpoint("last", count, "completed");
    await jobs.writeCheckpointFrom(last, log, files);
    await files.close();
    const written = JSON.parse(readFileSync(jobs.checkpointPath("last"), "utf8")) as { messages: Message[] };
    expect(written.messages).toEqual(Array.from({ length: count }, (_, i) => message(i)));
    expect(Object.keys(written)).toEqual(["id", "jobId", "runId", "status", "stepNumber", "messages", "expert", "usage"]);
  });

  it("without the run's files, released messages cannot be written and nothing is left half-written", async () => {
    const jobs = store();
    const files = jobs.openRun("run1");
    const log = new MessageLog();
    log.append([message(0), message(1)]);
    files.appendCheckpoint(checkpoint("s1", 1, "proceeding"), log, true);
    await expect(jobs.writeCheckpointFrom(checkpoint("last", 2, "completed"), log)).rejects.toThrow(/released/);
    await files.close();
    expect(() => readFileSync(jobs.checkpointPath("last"))).toThrow();
  });
});

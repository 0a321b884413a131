// `perstack log --json` puts the messages that recorded events name by reference (MessagesRef) back in place, from
// the job's checkpoint files, and trusts those files no more than the events: a reference to a file that is
// missing, of another run, or too short leaves the event as recorded, with a warning.
import { describe, expect, it } from "vitest";
import { runLogCommand } from "../../../src/cli/log-command.js";
import { CheckpointFileMessages } from "../../../src/history/checkpoint-messages.js";
import { readJobLog } from "../../../src/history/job-log.js";
import { formatLogJson, logJsonChunks } from "../../../src/history/log-format.js";
import { checkpointHeader } from "../../../src/history/logged-event.js";
import { expandRecord, UnresolvedMessagesError } from "../../../src/model/event-messages.js";
import { capturedIo, checkpoint, ev, multiRunJob, perstackDir, writeJob, type JobFixture } from "./job-fixtures.js";

/** A checkpoint as events carry it: the fixture's header, messages by reference. */
function ref(file: { id: string; messages: unknown[] }, count = file.messages.length, checkpointId = file.id) {
  const { messages: _messages, ...header } = file;
  void _messages;
  return { ...header, messagesRef: { checkpointId, count } };
}

const answer = { type: "expertMessage", id: "a1", contents: [{ type: "textPart", text: "done" }] };

/** One run: starts (c0), a step (c1), completes (c2); its events name their messages by reference. */
function referencedJob(over: { generationRef?: Record<string, unknown> } = {}): JobFixture {
  const c0 = checkpoint("c0", "r1", "lead", "init", 1);
  const c1 = { ...checkpoint("c1", "r1", "lead", "proceeding", 1), messages: [...c0.messages, answer] };
  const c2 = { ...checkpoint("c2", "r1", "lead", "completed", 2), messages: [...c1.messages, answer] };
  const other = checkpoint("x0", "r2", "helper", "init", 1);
  return {
    job: { id: "job1", latestCheckpointId: "c2" },
    checkpoints: [c0, c1, c2, other],
    runs: {
      r1: [
        ev("startRun", "r1", 1, { expertKey: "lead", stepNumber: 1, initialCheckpoint: ref(c0), inputMessages: c0.messages }),
        ev("startGeneration", "r1", 2, { expertKey: "lead", stepNumber: 1, messagesRef: over.generationRef ?? { checkpointId: "c0", count: 2 } }),
        ev("continueToNextStep", "r1", 3, { expertKey: "lead", stepNumber: 1, checkpoint: ref(c1), nextCheckpoint: { ...ref(c1), id: "c1n", stepNumber: 2 } }),
        ev("startGeneration", "r1", 4, { expertKey: "lead", stepNumber: 2, messagesRef: { checkpointId: "c1", count: 3 }, messagesAfterRef: [answer] }),
        ev("completeRun", "r1", 5, { expertKey: "lead", stepNumber: 2, checkpoint: ref(c2), text: "done", usage: c2.usage }),
      ],
    },
  };
}

async function logJson(fixture: JobFixture) {
  const dir = perstackDir();
  writeJob(dir, fixture);
  const io = capturedIo(dir);
  expect(await runLogCommand({ json: true, take: 0 }, io)).toBe(0);
  return { io, out: JSON.parse(io.out) as { events: Array<Record<string, unknown>>; warnings?: string[]; checkpoints?: Array<{ messageCount: number }> } };
}

describe("perstack log --json expands message references", () => {
  it("gives every event Perstack's shape: startGeneration's messages, checkpoints whole", async () => {
    const { io, out } = await logJson(referencedJob());
    expect(io.err).toBe("");
    expect(out.warnings).toBeUndefined();
    expect(io.out).not.toContain("messagesRef");
    const [start, first, step, second, done] = out.events;
    expect((start!.initialCheckpoint as { messages: unknown[] }).messages).toHaveLength(2);
    expect((first!.messages as unknown[]).map((m) => (m as { type: string }).type)).toEqual(["instructionMessage", "userMessage"]);
    expect((step!.checkpoint as { messages: unknown[] }).messages).toHaveLength(3);
    expect(step!.nextCheckpoint).toMatchObject({ id: "c1n", stepNumber: 2, messages: (step!.checkpoint as { messages: unknown[] }).messages });
    expect(second!.messages).toEqual([...(step!.checkpoint as { messages: unknown[] }).messages, answer]);
    expect(second).not.toHaveProperty("messagesAfterRef");
    expect((done!.checkpoint as { messages: unknown[] }).messages).toHaveLength(4);
    // The run's start is a checkpoint file too; summaries read the count from the reference.
    expect(out.checkpoints?.map((c) => c.messageCount)).toEqual([2, 3, 4]);
  });

  it.each([
    ["a checkpoint file that does not exist", { checkpointId: "gone", count: 1 }, /checkpoint gone is not in job job1/],
    ["another run's checkpoint", { checkpointId: "x0", count: 1 }, /checkpoint x0 belongs to run r2, not r1/],
    ["more messages than the file holds", { checkpointId: "c0", count: 9 }, /checkpoint c0 holds 2 messages, not 9/],
    ["an id that is no file name", { checkpointId: "../../job.json", count: 1 }, /messagesRef: not a reference/],
    ["a count that is no count", { checkpointId: "c0", count: "2" }, /messagesRef: not a reference/],
  ])("a reference to %s leaves the event as recorded, with a warning", async (_what, generationRef, reason) => {
    const { out, io } = await logJson(referencedJob({ generationRef }));
    const generation = out.events[1]!;
    expect(generation.messagesRef).toEqual(generationRef);
    expect(generation).not.toHaveProperty("messages");
    expect(out.warnings?.join("\n")).toMatch(new RegExp(`event ${String(generation.id)} \\(startGeneration\\) is shown with its message reference: messagesRef: `));
    expect(out.warnings?.join("\n")).toMatch(reason);
    // The other events still expand.
    expect((out.events[2]!.checkpoint as { messages: unknown[] }).messages).toHaveLength(3);
    expect(io.err).toBe("");
  });

  it("events recorded with their messages in place (before references) come out as they are", async () => {
    const { out } = await logJson(multiRunJob());
    expect(out.events.find((e) => e.type === "startGeneration")).toMatchObject({ messages: [] });
    expect(out.warnings).toEqual(["skipped 2 line(s) of runs/r1/events.jsonl that are not events"]);
  });

  it("reads each checkpoint file once while its events stream past, keeping only a few", async () => {
    const dir = perstackDir();
    writeJob(dir, referencedJob());
    const files = new CheckpointFileMessages(dir, "job1", 1);
    expect(files.resolve("r1", { checkpointId: "c1", count: 2 })).toHaveLength(2);
    expect(() => files.resolve("r2", { checkpointId: "c1", count: 2 })).toThrow(/belongs to run r1, not r2/);
    expect(() => expandRecord({ type: "startGeneration", runId: "r1", messagesRef: { checkpointId: "c9", count: 0 } }, files.resolve)).toThrow(UnresolvedMessagesError);
    expect(checkpointHeader({ id: "c", messagesRef: { checkpointId: "c", count: 7 } })?.messageCount).toBe(7);
  });
});

describe("perstack log --json reads back a nextCheckpoint recorded by what it changes", () => {
  /** referencedJob with its step's nextCheckpoint as given. */
  function withNext(fixture: JobFixture, nextCheckpoint: unknown): JobFixture {
    const events = fixture.runs.r1!.map((event) => (typeof event !== "string" && event.type === "continueToNextStep" ? { ...event, nextCheckpoint } : event));
    return { ...fixture, runs: { r1: events } };
  }

  it("whole, exactly as if it had been recorded whole", async () => {
    const fixture = referencedJob();
    const whole = await logJson(fixture);
    const compact = await logJson(withNext(fixture, { checkpointWith: { id: "c1n", stepNumber: 2 } }));
    expect(compact.out.warnings).toBeUndefined();
    // The same text, but for the directory each job was written to.
    const text = (log: typeof whole) => log.io.out.replace(JSON.stringify((log.out as { storagePath?: string }).storagePath), "");
    expect(text(compact)).toBe(text(whole));
    expect(compact.out.events[2]!.nextCheckpoint).toMatchObject({ id: "c1n", stepNumber: 2, messages: (compact.out.events[2]!.checkpoint as { messages: unknown[] }).messages });
  });

  it.each([
    ["changes that are no object", { checkpointWith: ["c1n"] }, /nextCheckpoint\.checkpointWith: not an object of fields/],
    ["a field the checkpoint does not have", { checkpointWith: { id: "c1n", messages: [{ type: "userMessage" }] } }, /nextCheckpoint\.checkpointWith: "messages" is not a field of the event's checkpoint/],
    ["a __proto__ field", JSON.parse('{"checkpointWith":{"__proto__":{"polluted":true}}}') as unknown, /"__proto__" is not a field of the event's checkpoint/],
    ["a reference to another run's checkpoint", { checkpointWith: { messagesRef: { checkpointId: "x0", count: 1 } } }, /nextCheckpoint\.messagesRef: checkpoint x0 belongs to run r2, not r1/],
    ["a reference that is no reference", { checkpointWith: { messagesRef: { checkpointId: "../../job.json", count: 1 } } }, /nextCheckpoint\.messagesRef: not a reference/],
  ])("with %s: shown as recorded, with a warning", async (_what, nextCheckpoint, reason) => {
    const { out, io } = await logJson(withNext(referencedJob(), nextCheckpoint));
    const step = out.events[2]!;
    expect(step.nextCheckpoint).toEqual(JSON.parse(JSON.stringify(nextCheckpoint)));
    expect(step).not.toHaveProperty("checkpoint.messages");
    expect(out.warnings?.join("\n")).toMatch(new RegExp(`event ${String(step.id)} \\(continueToNextStep\\) is shown with its message reference: `));
    expect(out.warnings?.join("\n")).toMatch(reason);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // The other events still expand.
    expect((out.events[4]!.checkpoint as { messages: unknown[] }).messages).toHaveLength(4);
    expect(io.err).toBe("");
  });

  it("without the event's checkpoint to apply it to: shown as recorded, with a warning", async () => {
    const fixture = withNext(referencedJob(), { checkpointWith: { id: "c1n", stepNumber: 2 } });
    const events = fixture.runs.r1!.map((event) => {
      if (typeof event === "string" || event.type !== "continueToNextStep") return event;
      const { checkpoint: _checkpoint, ...rest } = event;
      void _checkpoint;
      return rest as typeof event;
    });
    const { out } = await logJson({ ...fixture, runs: { r1: events } });
    expect(out.events[2]!.nextCheckpoint).toEqual({ checkpointWith: { id: "c1n", stepNumber: 2 } });
    expect(out.warnings?.join("\n")).toMatch(/nextCheckpoint\.checkpointWith: the event has no checkpoint to apply it to/);
  });

  it("a nextCheckpoint with other fields besides is a whole one, whatever it is named", () => {
    const event = { type: "continueToNextStep", runId: "r1", nextCheckpoint: { checkpointWith: { id: "x" }, id: "c1n" } };
    expect(expandRecord(event, () => [])).toBe(event);
  });
});

describe("perstack log --filter on messages", () => {
  it("matches Perstack's shape: the messages events name by reference are read back to be matched", async () => {
    const dir = perstackDir();
    writeJob(dir, referencedJob());
    const io = capturedIo(dir);
    // Only step 2's generation holds the answer among its messages.
    expect(await runLogCommand({ json: true, take: 0, filter: '.messages[].type == "expertMessage"' }, io)).toBe(0);
    const events = (JSON.parse(io.out) as { events: Array<{ type: string; stepNumber: number }> }).events;
    expect(events.map((e) => [e.type, e.stepNumber])).toEqual([["startGeneration", 2]]);
    const io2 = capturedIo(dir);
    expect(await runLogCommand({ json: true, take: 0, filter: '.checkpoint.messages[].id == "a1"' }, io2)).toBe(0);
    expect((JSON.parse(io2.out) as { events: Array<{ type: string }> }).events.map((e) => e.type)).toEqual(["continueToNextStep", "completeRun"]);
  });
});

describe("perstack log --json's layout", () => {
  it("written a piece at a time, it is exactly JSON.stringify's, indented or not", async () => {
    const dir = perstackDir();
    writeJob(dir, multiRunJob());
    const log = (await readJobLog(dir, { selector: {}, paging: { take: 100, offset: 0, context: 0 } }))!;
    const data = {
      job: log.job,
      events: log.events,
      summary: log.summary,
      checkpoints: log.checkpoints,
      isLatestJob: true,
      storagePath: log.storagePath,
      totalEventsBeforeLimit: log.totalEventsBeforeLimit,
      matchedAfterPagination: log.matchedAfterPagination,
      warnings: log.warnings,
    };
    expect(formatLogJson(log, true)).toBe(JSON.stringify(data, null, 2));
    expect(formatLogJson(log, false)).toBe(JSON.stringify(data));
    expect(formatLogJson({ ...log, events: [] }, true)).toBe(JSON.stringify({ ...data, events: [] }, null, 2));
    expect([...logJsonChunks(log, false)].length).toBeGreaterThan(log.events.length);
  });
});

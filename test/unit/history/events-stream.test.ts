import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mergeByTimestamp, newReadProblems, readEventsFile } from "../../../src/history/events-stream.js";
import { asLoggedEvent, type LoggedEvent } from "../../../src/history/logged-event.js";

async function collect(stream: AsyncIterable<LoggedEvent>): Promise<string[]> {
  const out: string[] = [];
  for await (const event of stream) out.push(event.id);
  return out;
}

async function* of(...events: Array<[string, number]>): AsyncGenerator<LoggedEvent> {
  for (const [id, timestamp] of events) yield { type: "t", id, timestamp, runId: "r" };
}

describe("events stream", () => {
  it("an event needs its envelope: type, id, runId and a finite timestamp; a stepNumber, if any, is a number", () => {
    const ok = { type: "retry", id: "e", runId: "r", timestamp: 1, stepNumber: 2 };
    expect(asLoggedEvent(ok)).toBe(ok);
    expect(asLoggedEvent({ ...ok, stepNumber: undefined })).toBeDefined();
    for (const bad of [null, [], "x", { ...ok, type: "" }, { ...ok, type: 3 }, { ...ok, id: 1 }, { ...ok, runId: undefined }, { ...ok, timestamp: "1" }, { ...ok, timestamp: Number.NaN }, { ...ok, stepNumber: "2" }]) {
      expect(asLoggedEvent(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it("reads a file line by line, skipping and counting what is not an event; a missing file has no events", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perstack-stream-"));
    const path = join(dir, "events.jsonl");
    writeFileSync(path, ['{"type":"a","id":"1","runId":"r","timestamp":1}', "", "not json", "[1,2]", '{"type":"b","id":"2","runId":"r","timestamp":2}\r', '{"type":"c","id":"3","runId":"r","timestamp":3}'].join("\n"));
    const problems = newReadProblems();
    expect(await collect(readEventsFile({ runId: "r", path }, problems))).toEqual(["1", "2", "3"]);
    expect(problems.malformedLines.get("r")).toBe(2);
    expect(await collect(readEventsFile({ runId: "m", path: join(dir, "missing.jsonl") }, problems))).toEqual([]);
    expect(problems.unreadable).toEqual([]);
    expect(await collect(readEventsFile({ runId: "d", path: dir }, problems))).toEqual([]);
    expect(problems.unreadable).toEqual([{ runId: "d", path: dir, reason: "EISDIR" }]);
  });

  it("merges runs by timestamp; ties keep the order of the runs, then of each file", async () => {
    const merged = mergeByTimestamp([of(["a1", 1], ["a2", 5], ["a3", 5], ["a4", 9]), of(), of(["b1", 2], ["b2", 5], ["b3", 10]), of(["c1", 0])]);
    expect(await collect(merged)).toEqual(["c1", "a1", "b1", "a2", "a3", "b2", "a4", "b3"]);
  });

  it("a consumer that stops early closes every stream", async () => {
    const closed: string[] = [];
    async function* tracked(name: string) {
      try {
        yield* of([`${name}1`, 1], [`${name}2`, 2]);
      } finally {
        closed.push(name);
      }
    }
    for await (const event of mergeByTimestamp([tracked("a"), tracked("b")])) if (event.id === "a1") break;
    expect(closed.sort()).toEqual(["a", "b"]);
  });
});

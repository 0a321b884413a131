import { appendFileSync, mkdirSync, mkdtempSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { JobNotFoundError } from "../../../src/errors.js";
import {
  EventFeedError,
  formatCursor,
  formatSse,
  InvalidCursorError,
  JobEventFeed,
  MAX_CURSOR_LENGTH,
  parseCursor,
  sseKeepAlive,
  type FeedItem,
  type JobEventFeedOptions,
} from "../../../src/server/event-feed.js";

const JOB = "job1";

/** A job directory the way job-store.ts lays it out, with files the test appends to as a run would. */
function jobFixture(status = "running") {
  const perstackDir = join(mkdtempSync(join(tmpdir(), "perstack-feed-")), "perstack");
  const jobDir = join(perstackDir, "jobs", JOB);
  mkdirSync(jobDir, { recursive: true });
  let version = 0;
  const setStatus = (next: string) => {
    // Replaced by rename, as writeJsonAtomic does.
    const temp = join(jobDir, `job.json.${++version}.tmp`);
    const usage = { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 };
    writeFileSync(temp, JSON.stringify({ id: JOB, status: next, coordinatorExpertKey: "e", totalSteps: 0, usage, startedAt: 1, runtime: "perstack" }));
    renameSync(temp, join(jobDir, "job.json"));
  };
  setStatus(status);
  const eventsPath = (runId: string) => join(jobDir, "runs", runId, "events.jsonl");
  const append = (runId: string, text: string) => {
    mkdirSync(join(jobDir, "runs", runId), { recursive: true });
    appendFileSync(eventsPath(runId), text);
  };
  return { perstackDir, jobDir, setStatus, append, eventsPath };
}

const line = (runId: string, n: number, extra: Record<string, unknown> = {}) => `${JSON.stringify({ type: "callTools", id: `${runId}-${n}`, runId, timestamp: n, ...extra })}\n`;

const feed = (perstackDir: string, options: JobEventFeedOptions = {}) => new JobEventFeed(perstackDir, JOB, { pollMs: 20, ...options });

async function collect(source: AsyncIterable<FeedItem>, limit = Number.POSITIVE_INFINITY): Promise<FeedItem[]> {
  const items: FeedItem[] = [];
  if (limit <= 0) return items;
  for await (const item of source) {
    items.push(item);
    if (items.length >= limit) break;
  }
  return items;
}

const idOf = (item: FeedItem) => item.event.id as string;

/** Event ids per run, in the order given. */
function byRun(items: FeedItem[]): Map<string, string[]> {
  const runs = new Map<string, string[]>();
  for (const item of items) runs.set(item.runId, [...(runs.get(item.runId) ?? []), idOf(item)]);
  return runs;
}

/** Asserts the items are each event of `expected` (per run, in file order) exactly once. */
function expectExactlyOnce(items: FeedItem[], expected: Record<string, string[]>): void {
  const ids = items.map(idOf);
  expect(new Set(ids).size, "no event twice").toBe(ids.length);
  const runs = byRun(items);
  for (const [runId, events] of Object.entries(expected)) expect(runs.get(runId) ?? [], `run ${runId}`).toEqual(events);
  expect(ids.length).toBe(Object.values(expected).flat().length);
}

// Each test is bounded: a feed that never ends fails the test instead of hanging the run.
describe("JobEventFeed", { timeout: 5_000 }, () => {
  it.each([{ watch: true }, { watch: false }])("streams two runs written concurrently, a delegate that appears later, a line written in two halves; a client that drops and resumes sees every event once (watch: $watch)", async ({ watch }) => {
    const job = jobFixture();
    const expected: Record<string, string[]> = { runA: [], runB: [], runC: [] };
    const writer = (async () => {
      for (let i = 0; i < 12; i++) {
        job.append("runA", line("runA", i));
        expected.runA!.push(`runA-${i}`);
        if (i === 3) job.append("runB", "not json\n[1,2]\n\n");
        if (i % 2 === 0) {
          job.append("runB", line("runB", i));
          expected.runB!.push(`runB-${i}`);
        }
        if (i === 5) {
          // Half a line: the feed must wait for its newline, then give it once, whole.
          const whole = line("runB", 100, { text: "split across two writes" });
          job.append("runB", whole.slice(0, 30));
          await sleep(60);
          job.append("runB", whole.slice(30));
          expected.runB!.push("runB-100");
        }
        if (i >= 6) {
          job.append("runC", line("runC", i));
          expected.runC!.push(`runC-${i}`);
        }
        await sleep(8);
      }
      // A line still being written when the job stops is not an event.
      job.append("runA", '{"type":"cut');
      job.setStatus("completed");
    })();

    // One client reads everything; another drops every few events and comes back with its last id.
    const full = collect(feed(job.perstackDir, { watch }));
    const dropping = (async () => {
      const seen: FeedItem[] = [];
      let lastId: string | undefined;
      for (let session = 0; session < 200; session++) {
        const after = lastId === undefined ? undefined : parseCursor(lastId);
        const got = await collect(feed(job.perstackDir, { after, watch }), 1 + (session % 4));
        seen.push(...got);
        if (got.length === 0) return seen;
        lastId = got.at(-1)!.id;
      }
      throw new Error("the dropping client never reached the end");
    })();
    await writer;
    const [items, resumed] = await Promise.all([full, dropping]);
    expectExactlyOnce(items, expected);
    expectExactlyOnce(resumed, expected);
    // Each id is the cursor just after its event.
    const last = parseCursor(items.at(-1)!.id);
    expect(Object.fromEntries(last)).toEqual({ runA: 12, runB: 7 + 3, runC: 6 });
  });

  it("resumed from every intermediate cursor, yields exactly the remainder, across runs; a run the cursor does not name starts at line 0", async () => {
    const job = jobFixture();
    const expected: Record<string, string[]> = { r1: [], r2: [], r3: [] };
    const writer = (async () => {
      for (let i = 0; i < 10; i++) {
        for (const runId of i < 4 ? ["r1", "r2"] : ["r1", "r2", "r3"]) {
          job.append(runId, line(runId, i));
          expected[runId]!.push(`${runId}-${i}`);
        }
        if (i === 6) job.append("r2", "{not an event}\n");
        await sleep(5);
      }
      job.setStatus("completed");
    })();
    const items = await collect(feed(job.perstackDir));
    await writer;
    expectExactlyOnce(items, expected);
    const all = items.map(idOf);
    for (const [index, item] of items.entries()) {
      const rest = await collect(feed(job.perstackDir, { after: parseCursor(item.id) }));
      const restIds = rest.map(idOf);
      const before = new Set(all.slice(0, index + 1));
      expect(restIds.filter((id) => before.has(id)), `after item ${index}: nothing twice`).toEqual([]);
      expect(new Set(restIds).size).toBe(restIds.length);
      expect([...before, ...restIds].sort(), `after item ${index}: nothing missing`).toEqual([...all].sort());
      // Within a run, file order.
      for (const [runId, ids] of byRun(rest)) expect(ids).toEqual(expected[runId]!.filter((id) => !before.has(id)));
    }
    // From the very start (an empty cursor) is the whole job.
    expect((await collect(feed(job.perstackDir, { after: parseCursor("v1:") }))).map(idOf).sort()).toEqual([...all].sort());
  });

  it("ends once job.json says the job stopped and every file is drained, without watch events (poll only)", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0));
    const started = Date.now();
    const reading = collect(feed(job.perstackDir, { watch: false, pollMs: 25 }));
    await sleep(80);
    job.append("a", line("a", 1));
    job.append("b", line("b", 0));
    job.append("b", '{"type":"half');
    job.setStatus("stoppedByError");
    const items = await reading;
    expect(items.map(idOf)).toEqual(["a-0", "a-1", "b-0"]);
    expect(Date.now() - started).toBeLessThan(2_000);

    // A stopped job's feed ends at once when read: it does not wait a poll to find out.
    const quick = Date.now();
    expect((await collect(feed(job.perstackDir, { pollMs: 60_000 }))).length).toBe(3);
    expect(Date.now() - quick).toBeLessThan(1_000);
  });

  it("wakes on fs.watch without waiting for the poll where watching works", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0));
    const reading = collect(feed(job.perstackDir, { pollMs: 60_000 }));
    await sleep(50);
    job.append("a", line("a", 1));
    await sleep(50);
    job.setStatus("completed");
    const result = await Promise.race([reading, sleep(3_000).then(() => "timeout" as const)]);
    // Some file systems give no watch events; then only the poll (60 s here) would end it, and this is not tested.
    if (result === "timeout") return;
    expect(result.map(idOf)).toEqual(["a-0", "a-1"]);
  });

  it("reads in chunks: lines across chunk boundaries, multibyte characters split, an oversized line skipped but counted", async () => {
    const job = jobFixture("completed");
    const texts = ["é", "日本語のテキスト", "🙂🙂🙂", "x".repeat(200), "plain"];
    for (const [n, text] of texts.entries()) job.append("run", line("run", n, { text }));
    const options = { chunkBytes: 7, maxLineBytes: 150 };
    const items = await collect(feed(job.perstackDir, options));
    expect(items.map((item) => item.event.text)).toEqual(["é", "日本語のテキスト", "🙂🙂🙂", "plain"]);
    // The same with the default chunk size: which lines are skipped does not depend on where chunks end.
    expect((await collect(feed(job.perstackDir, { maxLineBytes: 150 }))).map(idOf)).toEqual(items.map(idOf));
    expect(parseCursor(items.at(-1)!.id).get("run")).toBe(5);
    for (const [index, item] of items.entries()) {
      const rest = await collect(feed(job.perstackDir, { ...options, after: parseCursor(item.id) }));
      expect(rest.map(idOf)).toEqual(items.slice(index + 1).map(idOf));
    }
  });

  it("refuses a hostile, oversized or malformed Last-Event-ID with InvalidCursorError only", () => {
    expect(Object.fromEntries(parseCursor("v1:a.1,b_2-c.42"))).toEqual({ a: 1, "b_2-c": 42 });
    expect(formatCursor(parseCursor("v1:a.1,b.9007199254740991"))).toBe("v1:a.1,b.9007199254740991");
    const hostile: unknown[] = [
      undefined,
      ["v1:a.1", "v1:a.2"],
      "",
      "a.1",
      "v2:a.1",
      "v1:a",
      "v1:a.",
      "v1:a.0",
      "v1:a.01",
      "v1:a.-1",
      "v1:a.1.5",
      "v1:a.1e3",
      "v1:a.9007199254740993",
      "v1:a.1,",
      "v1:,a.1",
      "v1:a.1,a.2",
      "v1:../x.1",
      "v1:-a.1",
      "v1:a b.1",
      "v1:a.1\nid: forged",
      "v1:é.1",
      `v1:${"a".repeat(129)}.1`,
      `v1:${"a.1,".repeat(MAX_CURSOR_LENGTH)}`,
      `v1:a.${"9".repeat(MAX_CURSOR_LENGTH)}`,
    ];
    for (const text of hostile) expect(() => parseCursor(text), JSON.stringify(text)?.slice(0, 60)).toThrow(InvalidCursorError);
    // Random input: a cursor or InvalidCursorError, never another error.
    const alphabet = "v1:.,aZ09-_\n\r\0é ";
    for (let i = 0; i < 2_000; i++) {
      let text = i % 2 ? "v1:" : "";
      for (let n = Math.floor(Math.random() * 30); n > 0; n--) text += alphabet[Math.floor(Math.random() * alphabet.length)];
      try {
        parseCursor(text);
      } catch (error) {
        expect(error, JSON.stringify(text)).toBeInstanceOf(InvalidCursorError);
      }
    }
    expect(new InvalidCursorError("x").exitCode).toBe(2);
  });

  it("refuses, when opened, a cursor of another job (an unknown run or more lines than a run has), and a missing job", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0) + line("a", 1) + '{"partial');
    await expect(feed(job.perstackDir, { after: parseCursor("v1:a.2") }).open()).resolves.toBeUndefined();
    await expect(feed(job.perstackDir, { after: parseCursor("v1:zz.1") }).open()).rejects.toThrow(InvalidCursorError);
    // The partial line is not a line yet.
    await expect(feed(job.perstackDir, { after: parseCursor("v1:a.3") }).open()).rejects.toThrow(/has 2 lines/);
    // Iterating opens too: the error comes from the first next().
    await expect(collect(feed(job.perstackDir, { after: parseCursor("v1:a.3") }))).rejects.toThrow(InvalidCursorError);
    await expect(new JobEventFeed(job.perstackDir, "nope", {}).open()).rejects.toThrow(JobNotFoundError);
    await expect(new JobEventFeed(job.perstackDir, "../jobs", {}).open()).rejects.toThrow(JobNotFoundError);
  });

  it("stops promptly on abort, while idle and while a consumer waits for the next event", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0));
    const controller = new AbortController();
    const iterator = feed(job.perstackDir, { pollMs: 60_000, watch: false, signal: controller.signal })[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.runId).toBe("a");
    const pending = iterator.next();
    await sleep(30);
    const aborted = Date.now();
    controller.abort();
    expect((await pending).done).toBe(true);
    expect(Date.now() - aborted).toBeLessThan(500);

    // Already aborted: nothing is read.
    expect(await collect(feed(job.perstackDir, { signal: AbortSignal.abort() }))).toEqual([]);
  });

  it("a consumer that stops early (break) ends the feed without waiting for the poll", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0) + line("a", 1));
    const started = Date.now();
    expect((await collect(feed(job.perstackDir, { pollMs: 60_000 }), 1)).map(idOf)).toEqual(["a-0"]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("fails clearly when a file shrinks below what was already sent", async () => {
    const job = jobFixture();
    job.append("a", line("a", 0) + line("a", 1));
    const iterator = feed(job.perstackDir, { watch: false })[Symbol.asyncIterator]();
    await iterator.next();
    await iterator.next();
    truncateSync(job.eventsPath("a"), 5);
    await expect(iterator.next()).rejects.toThrow(EventFeedError);
  });

  it("formats SSE: one data line whatever the event holds, a type only when it is a plain name, keep-alive comments", () => {
    const item: FeedItem = { id: "v1:a.1", runId: "a", event: { type: "completeRun", text: "two\nlines\r\nand\u2028more" } };
    const wire = formatSse(item);
    expect(wire).toBe(`id: v1:a.1\nevent: completeRun\ndata: ${JSON.stringify(item.event)}\n\n`);
    expect(wire.slice(0, -2).split("\n")).toHaveLength(3);
    expect(JSON.parse(wire.split("\n")[2]!.slice("data: ".length))).toEqual(item.event);
    expect(formatSse({ ...item, event: { type: "x\nevent: forged" } })).toBe(`id: v1:a.1\ndata: ${JSON.stringify({ type: "x\nevent: forged" })}\n\n`);
    expect(formatSse({ ...item, event: { no: "type" } })).not.toContain("event:");
    expect(() => formatSse({ ...item, id: "v1:a.1\ndata: x" })).toThrow(RangeError);
    expect(sseKeepAlive()).toBe(": keep-alive\n\n");
    expect(sseKeepAlive("a\nb")).toBe(": a b\n\n");
  });
});

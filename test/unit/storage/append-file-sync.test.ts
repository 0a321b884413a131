// Power loss (issue 13): step checkpoints are lines, flushed to the disk in batches (AppendFile.syncSoon): however
// many records ask, one flush is under way at a time and one more follows it for all who asked meanwhile; none starts
// once the file is closing, and the descriptor is closed only after the flush under way.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";

const flushes: Array<{ fd: number; done: () => void }> = [];
vi.mock("node:fs", async (original) => {
  const fs = await original<typeof import("node:fs")>();
  return {
    ...fs,
    fdatasync: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      flushes.push({ fd, done: () => callback(null) });
    },
  };
});

const { AppendFile } = await import("../../../src/storage/append-file.js");

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** `promise`, or a failure naming `what` after 5 s: a stream that never closes fails here, it does not hang. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within 5 s`)), 5_000).unref())]);
}

const closed = (file: NodeJS.EventEmitter) => within(new Promise<void>((resolve) => file.once("close", () => resolve())), "the file's close");

describe("AppendFile.syncSoon", () => {
  beforeEach(() => {
    flushes.length = 0;
  });

  it("coalesces: one flush at a time, one more for everything asked meanwhile", async () => {
    const file = new AppendFile(join(mkdtempSync(join(tmpdir(), "perstack-sync-")), "log.jsonl"));
    for (let i = 0; i < 100; i++) file.syncSoon();
    expect(flushes).toHaveLength(1);
    flushes[0]!.done();
    await turn();
    expect(flushes).toHaveLength(2);
    flushes[1]!.done();
    await turn();
    expect(flushes).toHaveLength(2);
    file.syncSoon();
    expect(flushes).toHaveLength(3);
    flushes[2]!.done();
    const done = closed(file);
    file.end();
    await done;
  }, 10_000);

  it("closes only after the flush under way, and starts none once closing", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "perstack-sync-")), "log.jsonl");
    const file = new AppendFile(path);
    await within(new Promise<void>((resolve, reject) => file.write("a line\n", (error) => (error ? reject(error) : resolve()))), "the write");
    file.syncSoon();
    file.syncSoon();
    let ended = false;
    file.end(() => {
      ended = true;
    });
    await turn();
    expect(ended).toBe(false);
    const done = closed(file);
    flushes[0]!.done();
    await done;
    expect(ended).toBe(true);
    expect(flushes).toHaveLength(1);
    file.syncSoon();
    expect(flushes).toHaveLength(1);
    expect(readFileSync(path, "utf8")).toBe("a line\n");
  }, 10_000);
});

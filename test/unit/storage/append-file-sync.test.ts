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
    await new Promise<void>((resolve) => file.end(() => resolve()));
  });

  it("closes only after the flush under way, and starts none once closing", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "perstack-sync-")), "log.jsonl");
    const file = new AppendFile(path);
    file.write("a line\n");
    await turn();
    file.syncSoon();
    file.syncSoon();
    let closed = false;
    file.end(() => {
      closed = true;
    });
    await turn();
    expect(closed).toBe(false);
    flushes[0]!.done();
    await new Promise<void>((resolve) => file.once("close", () => resolve()));
    expect(closed).toBe(true);
    expect(flushes).toHaveLength(1);
    file.syncSoon();
    expect(flushes).toHaveLength(1);
    expect(readFileSync(path, "utf8")).toBe("a line\n");
  });
});

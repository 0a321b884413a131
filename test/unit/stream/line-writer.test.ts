import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { LineWriter } from "../../../src/stream/line-writer.js";

/** A stream that keeps a copy of every write and finishes each a turn later, like a file; or fails them all. */
function sink(options: { fail?: boolean } = {}) {
  const writes: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push(Buffer.from(chunk));
      setImmediate(() => callback(options.fail ? new Error("disk full") : null));
    },
  });
  stream.on("error", () => undefined);
  return { stream, writes, text: () => Buffer.concat(writes).toString("utf8") };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("LineWriter", () => {
  it("writes the lines of one turn as one write, each with its newline", async () => {
    const out = sink();
    const lines = new LineWriter(out.stream);
    lines.line('{"a":1}');
    lines.line('{"b":"é—"}');
    expect(lines.queued).toBeGreaterThan(0);
    await turn();
    lines.line("{}");
    await turn();
    expect(out.writes.map((w) => w.toString("utf8"))).toEqual(['{"a":1}\n{"b":"é—"}\n', "{}\n"]);
  });

  it("keeps every byte through many slabs, reused while older writes are still in flight, and long lines of their own", async () => {
    const out = sink();
    const lines = new LineWriter(out.stream);
    const expected: string[] = [];
    for (let i = 0; i < 40_000; i++) {
      const line = i % 5_000 === 0 ? "x".repeat(300_000) : `{"n":${i},"text":"${"é—🙂".repeat(i % 40)}"}`;
      expected.push(`${line}\n`);
      lines.line(line);
      if (i % 3_000 === 0) await turn();
    }
    lines.flush();
    await new Promise<void>((resolve) => out.stream.end(resolve));
    expect(out.text()).toBe(expected.join(""));
  });

  it("calls back once the lines queued before are written, in order; at once when they all are", async () => {
    const out = sink();
    const lines = new LineWriter(out.stream);
    const order: string[] = [];
    lines.whenWritten(() => order.push("nothing waiting"));
    lines.line("one");
    lines.whenWritten(() => order.push(`after one: ${out.text()}`));
    lines.flush();
    lines.whenWritten(() => order.push("after one, in flight"));
    expect(order).toEqual(["nothing waiting"]);
    await turn();
    await turn();
    expect(order).toEqual(["nothing waiting", "after one: one\n", "after one, in flight"]);
    lines.whenWritten(() => order.push("all written"));
    expect(order.at(-1)).toBe("all written");
  });

  it("hands a failed write's error to what waited for it", async () => {
    const out = sink({ fail: true });
    const lines = new LineWriter(out.stream);
    const errors: Array<Error | null | undefined> = [];
    lines.line("lost");
    lines.whenWritten((error) => errors.push(error));
    await turn();
    await turn();
    expect(errors.map((e) => e?.message)).toEqual(["disk full"]);
  });
});

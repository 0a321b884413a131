import { describe, expect, it } from "vitest";
import { LineSplitter } from "../../../src/stream/line-splitter.js";

function split(chunks: Buffer[], max?: number) {
  const lines: string[] = [];
  const overlong: number[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), (n) => overlong.push(n), max);
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return { lines, overlong };
}

describe("LineSplitter", () => {
  it("joins lines across chunks, including a multi-byte character split in two", () => {
    const text = Buffer.from('{"a":"é"}\n{"b":2}\r\nlast');
    const cut = text.indexOf(0xa9); // second byte of é
    expect(split([text.subarray(0, cut), text.subarray(cut)]).lines).toEqual(['{"a":"é"}', '{"b":2}', "last"]);
  });

  it("reports an overlong line instead of buffering it, and recovers on the next line", () => {
    const result = split([Buffer.from("x".repeat(50)), Buffer.from("y".repeat(60) + "\nok\n")], 100);
    expect(result.overlong).toEqual([110]);
    expect(result.lines).toEqual(["ok"]);
  });

  it("passes binary junk through as text without throwing", () => {
    expect(split([Buffer.from([0xff, 0x00, 0xfe, 0x0a])]).lines).toHaveLength(1);
  });
});

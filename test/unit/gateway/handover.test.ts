// The gateway's handover (gateway/handover.ts): what arrives on its stdin is checked before anything is written, and
// an error names what is wrong, never a value.
import { describe, expect, it } from "vitest";
import { HandoverError, handoverText, MAX_HANDOVER_BYTES, parseHandover } from "../../../src/gateway/handover.js";

describe("the gateway's handover on stdin", () => {
  it("gives back the files and variables the host wrote", () => {
    const handover = { files: { "gateway.json": "{}\n", "prices.json": "[]" }, env: { PERSTACK_GATEWAY_TOKEN: "t".repeat(64), ANTHROPIC_API_KEY: "sk-secret" } };
    expect(parseHandover(handoverText(handover))).toEqual(handover);
  });

  it.each([
    ["", /stdin closed before a handover arrived/],
    ["not json", /not JSON/],
    ["[]", /object of files and env/],
    [JSON.stringify({ files: {}, env: {} }), /no gateway\.json/],
    [JSON.stringify({ files: { "gateway.json": "{}", "../etc/passwd": "x" }, env: {} }), /names a file "..\/etc\/passwd"; only gateway.json and prices.json/],
    [JSON.stringify({ files: { "gateway.json": 1 }, env: {} }), /gateway.json is not text/],
    [JSON.stringify({ files: { "gateway.json": "{}" }, env: { "BAD=NAME": "x" } }), /not a variable name/],
    [JSON.stringify({ files: { "gateway.json": "{}" }, env: { KEY: 1 } }), /KEY is not text/],
  ])("refuses %j", (text, reason) => {
    expect(() => parseHandover(text)).toThrow(HandoverError);
    expect(() => parseHandover(text)).toThrow(reason);
  });

  it("never quotes a secret in its error", () => {
    const text = JSON.stringify({ files: { "gateway.json": "{}" }, env: { ANTHROPIC_API_KEY: 42, OTHER: "sk-do-not-print" } });
    expect(() => parseHandover(text)).toThrow(/ANTHROPIC_API_KEY is not text/);
    try {
      parseHandover(JSON.stringify({ files: { "gateway.json": "{}" }, env: { "x y": "sk-do-not-print" } }));
    } catch (error) {
      expect((error as Error).message).not.toContain("sk-do-not-print");
    }
  });

  it("refuses more than its bound", () => {
    expect(() => parseHandover(" ".repeat(MAX_HANDOVER_BYTES + 1))).toThrow(/larger than/);
  });
});

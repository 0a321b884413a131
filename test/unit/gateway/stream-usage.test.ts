import { describe, expect, it } from "vitest";
import { asksForStreamUsage, withStreamUsage } from "../../../src/gateway/stream-usage.ts";

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe("asksForStreamUsage", () => {
  it.each([
    ["openai", "POST", "/v1/chat/completions", true],
    ["openai", "POST", "/chat/completions", true],
    ["openai", "POST", "/openai/deployments/d/chat/completions", true],
    ["openai", "POST", "/v1/completions", true],
    ["openai", "POST", "/v1/responses", false],
    ["openai", "GET", "/v1/chat/completions", false],
    ["ollama", "POST", "/v1/chat/completions", true],
    ["ollama", "POST", "/api/chat", false],
    ["anthropic", "POST", "/v1/messages", false],
  ] as const)("%s %s %s: %s", (protocol, method, path, expected) => {
    expect(asksForStreamUsage(protocol, method, path)).toBe(expected);
  });
});

describe("withStreamUsage", () => {
  it("asks a stream for its usage, keeping the other stream options and fields", () => {
    const out = JSON.parse(withStreamUsage(json({ model: "m", stream: true, stream_options: { include_obfuscation: false }, n: 1 })).toString());
    expect(out).toEqual({ model: "m", stream: true, stream_options: { include_obfuscation: false, include_usage: true }, n: 1 });
  });

  it("counts anything but absent, null or false as a stream, and replaces an include_usage that is not true", () => {
    for (const stream of ["true", 1, {}]) expect(JSON.parse(withStreamUsage(json({ stream })).toString()).stream_options).toEqual({ include_usage: true });
    expect(JSON.parse(withStreamUsage(json({ stream: true, stream_options: { include_usage: "no" } })).toString()).stream_options).toEqual({ include_usage: true });
    expect(JSON.parse(withStreamUsage(json({ stream: true, stream_options: [1] })).toString()).stream_options).toEqual({ include_usage: true });
  });

  it("leaves alone what does not stream, already asks, or is not a JSON object", () => {
    for (const body of [json({ stream: false }), json({ stream: null }), json({ model: "m" }), json({ stream: true, stream_options: { include_usage: true } }), json([1]), Buffer.from("{not json"), Buffer.alloc(0)]) {
      expect(withStreamUsage(body)).toBe(body);
    }
  });
});

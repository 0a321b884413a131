// forQuery scripts (a conversation's first user text picks its own script) and the usage each main reply
// reported, as the request log shows them, for all three fake protocols.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchRequestLog, postScript } from "../support/fake-models-server.js";
import { startFakeModels } from "../fake-models/server.ts";
import type { FakeModelsHandle, ProtocolName, Step } from "../fake-models/server.ts";

let server: FakeModelsHandle;
beforeAll(async () => {
  server = await startFakeModels({ port: 0 });
});
afterAll(async () => {
  await server.close();
});

const setScript = (protocol: ProtocolName, steps: Step[]) => postScript(server.url, protocol, steps);
const requestLog = (protocol: ProtocolName) => fetchRequestLog(server.url, protocol);

/** One conversation: its first user text and how many model turns it already holds. */
interface Conversation {
  first: string;
  turns: number;
}

/** Per protocol: a non-streaming main request for a conversation, and the reply text and usage it got. */
// forQuery is shared machinery (script.ts): the three original protocols exercise it; the others reuse it.
const CLIENTS: Record<"anthropic" | "openai" | "gemini", (c: Conversation) => Promise<{ text: string; usage: Record<string, unknown> }>> = {
  async anthropic({ first, turns }) {
    const messages: unknown[] = [{ role: "user", content: [{ type: "text", text: first }] }];
    for (let i = 0; i < turns; i += 1) {
      messages.push({ role: "assistant", content: [{ type: "text", text: `earlier ${i}` }] }, { role: "user", content: "go on" });
    }
    const res = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "k" },
      body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 1000, tools: [{ name: "t", input_schema: { type: "object" } }], messages }),
    });
    const body = (await res.json()) as { content: Array<{ text?: string }>; usage: Record<string, unknown> };
    return { text: body.content.map((b) => b.text ?? "").join(""), usage: body.usage };
  },
  async openai({ first, turns }) {
    const input: unknown[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: [{ type: "input_text", text: first }] },
    ];
    for (let i = 0; i < turns; i += 1) {
      input.push({ type: "message", role: "assistant", content: [{ type: "output_text", text: `earlier ${i}` }] }, { role: "user", content: "go on" });
    }
    const res = await fetch(`${server.url}/v1/responses`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer k" },
      body: JSON.stringify({ model: "gpt-5", input, tools: [{ type: "function", name: "t", parameters: { type: "object" } }], stream: false }),
    });
    const body = (await res.json()) as { output: Array<{ content?: Array<{ text: string }> }>; usage: Record<string, unknown> };
    return { text: body.output.flatMap((o) => o.content ?? []).map((c) => c.text).join(""), usage: body.usage };
  },
  async gemini({ first, turns }) {
    const contents: unknown[] = [{ role: "user", parts: [{ text: first }] }];
    for (let i = 0; i < turns; i += 1) {
      contents.push({ role: "model", parts: [{ text: `earlier ${i}` }] }, { role: "user", parts: [{ text: "go on" }] });
    }
    const res = await fetch(`${server.url}/v1beta/models/gemini-2.5-pro:generateContent`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-goog-api-key": "k" },
      body: JSON.stringify({ contents, tools: [{ functionDeclarations: [{ name: "t", parameters: { type: "object" } }] }] }),
    });
    const body = (await res.json()) as { candidates: Array<{ content: { parts: Array<{ text?: string }> } }>; usageMetadata: Record<string, unknown> };
    return { text: body.candidates[0]!.content.parts.map((p) => p.text ?? "").join(""), usage: body.usageMetadata };
  },
};

const SCRIPT: Step[] = [
  { text: "lead 0" },
  { text: "alpha 0", forQuery: "say alpha" },
  { text: "beta 0", forQuery: "say beta" },
  { text: "lead 1" },
  { error: { status: 500, type: "api_error", message: "alpha hiccup" }, times: 1, forQuery: "say alpha" },
  { text: "alpha 1", forQuery: "say alpha" },
];

describe.each(["anthropic", "openai", "gemini"] as const)("fake %s: forQuery scripts and reported usage", (protocol) => {
  const send = CLIENTS[protocol];

  it("gives each conversation the script its first user text selects, turns counted within it", async () => {
    await setScript(protocol, SCRIPT);
    expect((await send({ first: "Coordinate the team", turns: 0 })).text).toBe("lead 0");
    // Children start fresh conversations: without forQuery they would replay "lead 0".
    expect((await send({ first: "Please say alpha now", turns: 0 })).text).toBe("alpha 0");
    expect((await send({ first: "say beta", turns: 0 })).text).toBe("beta 0");
    expect((await send({ first: "Coordinate the team", turns: 1 })).text).toBe("lead 1");
    // Error steps of a forQuery script answer that script's turn only.
    const failed = await send({ first: "say alpha", turns: 1 }).catch(() => undefined);
    expect(failed?.text ?? "").not.toBe("alpha 1");
    expect((await send({ first: "say alpha", turns: 1 })).text).toBe("alpha 1");
    // A used-up forQuery script gets the exhausted reply, not the default script's steps.
    expect((await send({ first: "say beta", turns: 1 })).text).toMatch(/no more steps/);

    const main = (await requestLog(protocol)).filter((r) => r.kind === "main");
    expect(main.map((r) => [r.firstUserText, r.forQuery ?? null, r.turn])).toEqual([
      ["Coordinate the team", null, 0],
      ["Please say alpha now", "say alpha", 0],
      ["say beta", "say beta", 0],
      ["Coordinate the team", null, 1],
      ["say alpha", "say alpha", 1],
      ["say alpha", "say alpha", 1],
      ["say beta", "say beta", 1],
    ]);
    // The error answer reported no usage; every reply did.
    expect(main.map((r) => r.usage !== undefined)).toEqual([true, true, true, true, false, true, true]);
  });

  it("records the usage each main reply reported, in the vendor's shape and normalized", async () => {
    await setScript(protocol, [{ text: "one" }, { text: "two" }]);
    const replies = [await send({ first: "q", turns: 0 }), await send({ first: "q", turns: 1 })];
    const main = (await requestLog(protocol)).filter((r) => r.kind === "main");
    expect(main).toHaveLength(2);
    main.forEach((entry, i) => {
      const sent = replies[i]!.usage;
      expect(entry.usage?.vendor).toEqual(sent);
      const input = protocol === "anthropic" ? sent.input_tokens : protocol === "openai" ? sent.input_tokens : sent.promptTokenCount;
      const output = protocol === "gemini" ? Number(sent.candidatesTokenCount) + Number(sent.thoughtsTokenCount ?? 0) : sent.output_tokens;
      expect(entry.usage?.inputTokens).toBe(input);
      expect(entry.usage?.outputTokens).toBe(output);
      expect(entry.usage!.inputTokens).toBeGreaterThan(0);
    });
  });
});

describe("fake Anthropic: streamed replies", () => {
  it("records the usage of the final message_delta for a stream", async () => {
    await setScript("anthropic", [{ text: "streamed" }]);
    const res = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", max_tokens: 100, stream: true, tools: [{ name: "t", input_schema: { type: "object" } }], messages: [{ role: "user", content: "hi" }] }),
    });
    const text = await res.text();
    const delta = text.split("\n\n").find((c) => c.startsWith("event: message_delta"))!;
    const usage = (JSON.parse(delta.split("\n")[1]!.slice(6)) as { usage: Record<string, unknown> }).usage;
    const [entry] = (await requestLog("anthropic")).filter((r) => r.kind === "main");
    expect(entry?.firstUserText).toBe("hi");
    expect(entry?.usage?.vendor).toEqual(usage);
    expect(entry?.usage?.outputTokens).toBe(usage.output_tokens);
  });
});

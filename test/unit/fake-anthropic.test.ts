import { describe, expect, it } from "vitest";
import type { RecordedRequest, Step } from "../fake-models/server.ts";
import { parseSse, useFakeModels } from "../support/fake-models-server.ts";
import type { SseEvent } from "../support/fake-models-server.ts";

const fake = useFakeModels("anthropic");
const { setScript } = fake;

interface Msg {
  role: "user" | "assistant";
  content: unknown;
}

/** A request shaped like a Claude Code main-conversation turn: tools and a real max_tokens. */
function mainBody(messages: Msg[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: "claude-sonnet-4-5",
    max_tokens: 32000,
    tools: [{ name: "Bash", input_schema: { type: "object" } }],
    messages,
    ...extra,
  };
}

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fake.url}/v1/messages?beta=true`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "secret-key", ...headers },
    body: JSON.stringify(body),
  });
}

const userTurn: Msg = { role: "user", content: "hi" };
const assistantTurn: Msg = { role: "assistant", content: [{ type: "text", text: "earlier" }] };

/** Rebuilds content blocks from the deltas, the way an SDK client does. */
function assemble(events: SseEvent[]): Array<Record<string, unknown>> {
  const blocks: Array<Record<string, unknown>> = [];
  const partialJson: string[] = [];
  for (const { event, data } of events) {
    const index = data.index as number;
    if (event === "content_block_start") {
      blocks[index] = { ...(data.content_block as Record<string, unknown>) };
      partialJson[index] = "";
    } else if (event === "content_block_delta") {
      const delta = data.delta as Record<string, string>;
      const block = blocks[index]!;
      if (delta.type === "text_delta") block.text = `${block.text as string}${delta.text}`;
      if (delta.type === "thinking_delta") block.thinking = `${block.thinking as string}${delta.thinking}`;
      if (delta.type === "signature_delta") block.signature = delta.signature;
      if (delta.type === "input_json_delta") {
        partialJson[index] = `${partialJson[index] ?? ""}${delta.partial_json ?? ""}`;
      }
    } else if (event === "content_block_stop" && blocks[index]?.type === "tool_use") {
      blocks[index]!.input = JSON.parse(partialJson[index]!);
    }
  }
  return blocks;
}

describe("fake Anthropic server", () => {
  it("answers health checks and unknown paths", async () => {
    await fake.expectHealthy();

    const missing = await fetch(`${fake.url}/v1/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ type: "error", error: { type: "not_found_error" } });
  });

  it("replies with a non-streaming message for a text step", async () => {
    await setScript([{ text: "Hello there." }]);
    const res = await post(mainBody([userTurn]));
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5",
      content: [{ type: "text", text: "Hello there." }],
      stop_reason: "end_turn",
    });
    const usage = body.usage as Record<string, number>;
    expect(usage.input_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens).toBeGreaterThan(0);
  });

  it("streams thinking, text and tool_use blocks as SSE", async () => {
    await setScript([
      {
        thinking: "Consider the shell.",
        text: "Running it now.",
        toolUse: [{ name: "Bash", input: { command: "echo hi", description: "Print hi" } }],
      },
    ]);
    const res = await post(mainBody([userTurn], { stream: true }));
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = parseSse(await res.text());

    const names = events.map((e) => e.event);
    expect(names[0]).toBe("message_start");
    expect(names).toContain("ping");
    expect(names.slice(-2)).toEqual(["message_delta", "message_stop"]);

    const blocks = assemble(events);
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatchObject({ type: "thinking", thinking: "Consider the shell." });
    expect(blocks[0]!.signature).toEqual(expect.any(String));
    expect(blocks[1]).toMatchObject({ type: "text", text: "Running it now." });
    expect(blocks[2]).toMatchObject({
      type: "tool_use",
      name: "Bash",
      input: { command: "echo hi", description: "Print hi" },
    });
    expect(blocks[2]!.id).toMatch(/^toolu_/);

    const delta = events.find((e) => e.event === "message_delta")!.data;
    expect(delta.delta).toMatchObject({ stop_reason: "tool_use" });
    expect((delta.usage as Record<string, number>).output_tokens).toBeGreaterThan(0);
    const start = events[0]!.data.message as Record<string, Record<string, number>>;
    expect(start.usage!.input_tokens).toBeGreaterThan(0);
  });

  it("picks the step by the number of assistant messages, so retries of a turn get the same step", async () => {
    await setScript([{ text: "first" }, { text: "second" }]);
    const turn0 = async (): Promise<unknown> =>
      ((await (await post(mainBody([userTurn]))).json()) as { content: unknown }).content;
    expect(await turn0()).toEqual([{ type: "text", text: "first" }]);
    expect(await turn0()).toEqual([{ type: "text", text: "first" }]);

    const turn1 = await post(mainBody([userTurn, assistantTurn, userTurn]));
    expect(((await turn1.json()) as { content: unknown }).content).toEqual([{ type: "text", text: "second" }]);

    const turn2 = await post(mainBody([userTurn, assistantTurn, userTurn, assistantTurn, userTurn]));
    const exhausted = (await turn2.json()) as { content: Array<{ text: string }> };
    expect(exhausted.content[0]!.text).toMatch(/no more steps/);
  });

  it("gives every tool_use a unique id, across turns and scripts", async () => {
    const bash = { name: "Bash", input: { command: "true" } };
    const step: Step = { toolUse: [bash, bash] };
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      await setScript([step, step]);
      for (const messages of [[userTurn], [userTurn, assistantTurn, userTurn], [userTurn]]) {
        const body = (await (await post(mainBody(messages))).json()) as { content: Array<{ id: string }> };
        ids.push(...body.content.map((b) => b.id));
      }
    }
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
  });

  it("answers error steps `times` attempts before the turn's reply", async () => {
    await setScript([
      { error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 2 },
      { text: "recovered" },
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(mainBody([userTurn]));
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("0");
      expect(await res.json()).toEqual({ type: "error", error: { type: "rate_limit_error", message: "slow down" } });
    }
    const ok = await post(mainBody([userTurn]));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { content: unknown }).content).toEqual([{ type: "text", text: "recovered" }]);
  });

  it("repeats an error step without `times` forever and can forbid retries", async () => {
    await setScript([
      { error: { status: 500, type: "api_error", message: "boom" }, shouldRetry: false },
      { text: "never" },
    ]);
    for (let attempt = 0; attempt < 5; attempt++) {
      const res = await post(mainBody([userTurn], { stream: true }));
      expect(res.status).toBe(500);
      expect(res.headers.get("x-should-retry")).toBe("false");
      expect(res.headers.get("retry-after")).toBeNull();
      expect(await res.json()).toEqual({ type: "error", error: { type: "api_error", message: "boom" } });
    }
  });

  it("answers side requests generically without consuming the script", async () => {
    await setScript([{ text: "scripted" }]);
    const quota = await post({
      model: "claude-haiku-4-5",
      max_tokens: 1,
      messages: [{ role: "user", content: "quota" }],
    });
    expect(((await quota.json()) as { content: unknown }).content).toEqual([{ type: "text", text: "OK" }]);

    const subagent = await post(mainBody([userTurn]), { "x-claude-code-agent-id": "a123" });
    expect(((await subagent.json()) as { content: unknown }).content).toEqual([{ type: "text", text: "OK" }]);

    const main = await post(mainBody([userTurn]));
    expect(((await main.json()) as { content: unknown }).content).toEqual([{ type: "text", text: "scripted" }]);

    const log = (await (await fetch(`${fake.url}/_requests${fake.query}`)).json()) as RecordedRequest[];
    expect(log.map((r) => r.kind)).toEqual(["side", "side", "main"]);
    expect(log[2]!.turn).toBe(0);
  });

  it("logs requests with secrets redacted, and /_script clears the log", async () => {
    await post(mainBody([userTurn]), { authorization: "Bearer secret-token", "x-custom": "kept" });
    const log = (await (await fetch(`${fake.url}/_requests${fake.query}`)).json()) as RecordedRequest[];
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", url: "/v1/messages?beta=true" });
    expect(entry!.headers["x-api-key"]).toBe("<redacted>");
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(entry!.headers["x-custom"]).toBe("kept");
    expect(entry!.body).toMatchObject({ model: "claude-sonnet-4-5", messages: [userTurn] });
    expect(JSON.stringify(log)).not.toMatch(/secret-(key|token)/);

    await setScript([]);
    expect(await (await fetch(`${fake.url}/_requests${fake.query}`)).json()).toEqual([]);
  });
});

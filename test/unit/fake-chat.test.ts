import { describe, expect, it } from "vitest";
import type { Step } from "../fake-models/server.ts";
import type { ChatUsage } from "../fake-models/chat.ts";
import { useFakeModels } from "../support/fake-models-server.ts";

const fake = useFakeModels("chat");
const { setScript, requestLog } = fake;

type Message = Record<string, unknown>;

const system: Message = { role: "system", content: "Be brief." };
const user: Message = { role: "user", content: "hi" };
const say = (text: string): Message => ({ role: "assistant", content: text });
const call = (id: string): Message => ({
  role: "assistant",
  content: null,
  tool_calls: [{ id, type: "function", function: { name: "exec", arguments: "{}" } }],
});
const output = (id: string): Message => ({ role: "tool", tool_call_id: id, content: "ok" });

/** A request shaped like an agent's turn: the whole conversation in `messages`, tools, not streaming unless overridden. */
function body(messages: Message[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: "deepseek-chat",
    messages,
    tools: [{ type: "function", function: { name: "exec", parameters: { type: "object" } } }],
    tool_choice: "auto",
    stream: false,
    ...extra,
  };
}

function post(payload: unknown, headers: Record<string, string> = {}, path = "/chat/completions"): Promise<Response> {
  return fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer secret-key", ...headers },
    body: JSON.stringify(payload),
  });
}

interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

interface Completion {
  id: string;
  object: string;
  model: string;
  choices: Array<{
    index: number;
    message: { role: string; content: string | null; reasoning_content?: string; tool_calls?: ToolCall[] };
    finish_reason: string;
  }>;
  usage: ChatUsage;
}

async function reply(payload: unknown, headers: Record<string, string> = {}): Promise<Completion> {
  const res = await post(payload, headers);
  expect(res.status).toBe(200);
  return (await res.json()) as Completion;
}

async function replyText(payload: unknown): Promise<string | null> {
  return (await reply(payload)).choices[0]!.message.content;
}

/** The `data:` payloads of a Chat Completions stream: the JSON chunks, and whether it ended with [DONE]. */
function parseChunks(text: string): { chunks: Array<Record<string, unknown>>; done: boolean } {
  const datas = text
    .split("\n\n")
    .filter((event) => event.trim().length > 0)
    .map((event) => {
      expect(event.startsWith("data: ")).toBe(true);
      return event.slice(6);
    });
  const done = datas.at(-1) === "[DONE]";
  const chunks = datas.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as Record<string, unknown>);
  return { chunks, done };
}

/** Rebuilds the message from the deltas, the way a streaming client does. */
function assemble(chunks: Array<Record<string, unknown>>): { role?: string; content: string; reasoning: string; calls: ToolCall[] } {
  const out = { role: undefined as string | undefined, content: "", reasoning: "", calls: [] as ToolCall[] };
  for (const chunk of chunks) {
    const choices = chunk.choices as Array<{ delta: Record<string, unknown> }>;
    const delta = choices[0]?.delta;
    if (!delta) continue;
    if (typeof delta.role === "string") out.role = delta.role;
    if (typeof delta.content === "string") out.content += delta.content;
    if (typeof delta.reasoning_content === "string") out.reasoning += delta.reasoning_content;
    for (const piece of (delta.tool_calls as Array<Record<string, unknown>> | undefined) ?? []) {
      const index = piece.index as number;
      const fn = piece.function as { name?: string; arguments?: string };
      const slot = (out.calls[index] ??= { id: "", type: "", function: { name: "", arguments: "" } });
      if (typeof piece.id === "string") slot.id = piece.id;
      if (typeof piece.type === "string") slot.type = piece.type;
      if (fn.name !== undefined) slot.function.name += fn.name;
      if (fn.arguments !== undefined) slot.function.arguments += fn.arguments;
    }
  }
  return out;
}

function expectConsistentUsage(usage: ChatUsage): void {
  expect(usage.prompt_tokens).toBeGreaterThan(0);
  expect(usage.completion_tokens).toBeGreaterThan(0);
  expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
  expect(usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
  expect(usage.prompt_cache_hit_tokens).toBe(usage.prompt_tokens_details.cached_tokens);
  expect(usage.prompt_cache_hit_tokens + usage.prompt_cache_miss_tokens).toBe(usage.prompt_tokens);
}

describe("fake Chat Completions server", () => {
  it("answers health checks and unknown chat paths with an OpenAI error", async () => {
    await fake.expectHealthy();

    const missing = await fetch(`${fake.url}/v1/chat/other`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: { message: "Invalid URL (POST /v1/chat/other)", type: "invalid_request_error", param: null, code: null },
    });
    const log = await requestLog();
    expect(log).toEqual([expect.objectContaining({ url: "/v1/chat/other", kind: "other" })]);
  });

  it("answers a non-streaming request with a chat.completion", async () => {
    await setScript([{ text: "Hello there." }]);
    const res = await reply(body([system, user]));
    expect(res).toMatchObject({ object: "chat.completion", model: "deepseek-chat" });
    expect(res.id).toMatch(/^chatcmpl/);
    expect(res.choices).toEqual([
      { index: 0, message: { role: "assistant", content: "Hello there." }, logprobs: null, finish_reason: "stop" },
    ]);
    expectConsistentUsage(res.usage);
    expect(res.usage.completion_tokens_details.reasoning_tokens).toBe(0);
  });

  it("answers tool calls and reasoning without streaming", async () => {
    await setScript([
      {
        thinking: "Consider the shell.",
        toolUse: [
          { name: "exec", input: { cmd: "echo hello" } },
          { name: "exec", input: { cmd: "echo second" } },
        ],
      },
    ]);
    const res = await reply(body([user]));
    const [choice] = res.choices;
    expect(choice!.finish_reason).toBe("tool_calls");
    expect(choice!.message.content).toBeNull();
    expect(choice!.message.reasoning_content).toBe("Consider the shell.");
    expect(choice!.message.tool_calls).toEqual([
      { id: expect.stringMatching(/^call_/), type: "function", function: { name: "exec", arguments: '{"cmd":"echo hello"}' } },
      { id: expect.stringMatching(/^call_/), type: "function", function: { name: "exec", arguments: '{"cmd":"echo second"}' } },
    ]);
    expect(choice!.message.tool_calls![0]!.id).not.toBe(choice!.message.tool_calls![1]!.id);
    expect(res.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(res.usage.completion_tokens).toBeGreaterThan(res.usage.completion_tokens_details.reasoning_tokens);
  });

  it("streams reasoning_content, content and tool_calls deltas, usage on the finish chunk, then [DONE]", async () => {
    await setScript([
      {
        thinking: "Consider the shell.",
        text: "Running it now.",
        toolUse: [
          { name: "exec", input: { cmd: "echo hello > hello.txt" } },
          { name: "exec", input: { cmd: "echo second" } },
        ],
      },
    ]);
    const res = await post(body([system, user], { stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const { chunks, done } = parseChunks(await res.text());
    expect(done).toBe(true);
    for (const chunk of chunks) expect(chunk).toMatchObject({ object: "chat.completion.chunk", model: "deepseek-chat" });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);

    const assembled = assemble(chunks);
    expect(assembled.role).toBe("assistant");
    expect(assembled.reasoning).toBe("Consider the shell.");
    expect(assembled.content).toBe("Running it now.");
    expect(assembled.calls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ["function", "exec", { cmd: "echo hello > hello.txt" }],
      ["function", "exec", { cmd: "echo second" }],
    ]);
    expect(assembled.calls[0]!.id).toMatch(/^call_/);
    expect(assembled.calls[0]!.id).not.toBe(assembled.calls[1]!.id);
    // The content and arguments come in several pieces.
    const contentDeltas = chunks.filter((c) => typeof (c.choices as Array<{ delta: { content?: unknown } }>)[0]?.delta.content === "string");
    expect(contentDeltas.length).toBeGreaterThan(2);

    // Without stream_options.include_usage, the usage rides on the finish chunk (as DeepSeek sends it).
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "tool_calls" }]);
    expectConsistentUsage(last.usage as ChatUsage);
    expect(chunks.slice(0, -1).every((c) => !("usage" in c))).toBe(true);

    const [entry] = await requestLog();
    expect(entry!.usage).toEqual({
      vendor: last.usage,
      inputTokens: (last.usage as ChatUsage).prompt_tokens,
      outputTokens: (last.usage as ChatUsage).completion_tokens,
    });
  });

  it("with stream_options.include_usage, sends usage null on every chunk and a last chunk with only the usage", async () => {
    await setScript([{ text: "Counted." }]);
    const res = await post(body([user], { stream: true, stream_options: { include_usage: true } }));
    const { chunks, done } = parseChunks(await res.text());
    expect(done).toBe(true);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expectConsistentUsage(last.usage as ChatUsage);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
    expect(chunks.at(-2)!.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    expect(assemble(chunks).content).toBe("Counted.");
  });

  it("reports the same usage for the same request and step, whatever ids it generated", async () => {
    const step: Step = { thinking: "Plan.", text: "Go.", toolUse: [{ name: "exec", input: { cmd: "ls" } }] };
    const usages: ChatUsage[] = [];
    for (let round = 0; round < 12; round++) {
      await setScript([step]);
      usages.push((await reply(body([user]))).usage);
    }
    for (const usage of usages) expect(usage).toEqual(usages[0]);
  });

  it("counts model turns as runs of assistant messages, so retries keep the turn", async () => {
    await setScript([{ text: "first" }, { text: "second" }, { text: "third" }]);
    expect(await replyText(body([system, user]))).toBe("first");
    expect(await replyText(body([system, user]))).toBe("first");

    const afterTurn0 = [system, user, call("c1"), output("c1")];
    expect(await replyText(body(afterTurn0))).toBe("second");
    // A client that splits one response into two assistant messages still has one turn there.
    const afterTurn1 = [...afterTurn0, say("thinking aloud"), call("c2"), output("c2")];
    expect(await replyText(body(afterTurn1))).toBe("third");

    const exhausted = await replyText(body([...afterTurn1, say("done"), user]));
    expect(exhausted).toMatch(/no more steps/);

    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.turn])).toEqual([
      ["main", 0],
      ["main", 0],
      ["main", 1],
      ["main", 2],
      ["main", 3],
    ]);
  });

  it("gives every tool call a unique id, across turns and scripts", async () => {
    const shell = { name: "exec", input: { cmd: "true" } };
    const step: Step = { toolUse: [shell, shell] };
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      await setScript([step, step]);
      for (const messages of [[user], [user, call("x"), output("x")], [user]]) {
        const res = await reply(body(messages));
        ids.push(...res.choices[0]!.message.tool_calls!.map((c) => c.id));
      }
    }
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
  });

  it("answers error steps `times` attempts before the turn's reply, with OpenAI error bodies", async () => {
    await setScript([
      { error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 2 },
      { text: "recovered" },
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(body([user], { stream: true }));
      expect(res.status).toBe(429);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.headers.get("retry-after")).toBe("0");
      expect(await res.json()).toEqual({
        error: { message: "slow down", type: "requests", param: null, code: "rate_limit_exceeded" },
      });
    }
    expect(await replyText(body([user]))).toBe("recovered");
    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.turn, r.usage === undefined])).toEqual([
      ["main", 0, true],
      ["main", 0, true],
      ["main", 0, false],
    ]);
  });

  it("repeats an error step without `times` forever and maps the type and code by status", async () => {
    await setScript([{ error: { status: 500, type: "api_error", message: "boom" }, shouldRetry: false }, { text: "never" }]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await post(body([user]));
      expect(res.status).toBe(500);
      expect(res.headers.get("x-should-retry")).toBe("false");
      expect(await res.json()).toEqual({
        error: { message: "boom", type: "server_error", param: null, code: "server_error" },
      });
    }

    await setScript([{ error: { status: 401, type: "authentication_error", message: "bad key" } }]);
    const unauthorized = await post(body([user]));
    expect(unauthorized.status).toBe(401);
    expect(await unauthorized.json()).toEqual({
      error: { message: "bad key", type: "invalid_request_error", param: null, code: "invalid_api_key" },
    });
  });

  it("answers side requests (no tools) generically, with usage, without consuming the script", async () => {
    await setScript([{ text: "scripted first" }]);
    const title = await reply(body([system, user], { tools: undefined }));
    expect(title.choices[0]!.message.content).toBe("OK");
    expect(await replyText(body([system, user]))).toBe("scripted first");

    const log = await requestLog();
    expect(log.map((r) => r.kind)).toEqual(["side", "main"]);
    expect(log[0]!.turn).toBeUndefined();
    expect(log[0]!.usage?.vendor).toEqual(title.usage);
  });

  it("on OpenAI's paths, a stream not asked for its usage reports none (as OpenAI and Azure do)", async () => {
    await setScript([{ text: "one" }, { text: "two" }]);
    for (const path of ["/v1/chat/completions", "/openai/v1/chat/completions"]) {
      const res = await post(body([user], { stream: true }), {}, path);
      const { chunks, done } = parseChunks(await res.text());
      expect(done).toBe(true);
      expect(chunks.some((c) => "usage" in c)).toBe(false);
    }
    const log = await requestLog();
    expect(log.map((r) => r.usage)).toEqual([undefined, undefined]);
  });

  it("serves /v1/chat/completions and Azure's /openai/v1/chat/completions too", async () => {
    await setScript([{ text: "one" }, { text: "two" }]);
    for (const [path, turn] of [
      ["/v1/chat/completions", [user]],
      ["/openai/v1/chat/completions", [user, say("one"), user]],
    ] as const) {
      const res = await post(body([...turn]), { "api-key": "secret-azure" }, path);
      expect(res.status).toBe(200);
    }
    const log = await requestLog();
    expect(log.map((r) => [r.url, r.turn])).toEqual([
      ["/v1/chat/completions", 0],
      ["/openai/v1/chat/completions", 1],
    ]);
    expect(log[1]!.headers["api-key"]).toBe("<redacted>");
  });

  it("matches forQuery scripts against the first user message (after the system message)", async () => {
    await setScript([{ text: "default" }, { text: "child", forQuery: "CHILD-TASK" }]);
    const child = { role: "user", content: [{ type: "text", text: "Do the CHILD-TASK now." }] };
    expect(await replyText(body([system, child]))).toBe("child");
    expect(await replyText(body([system, user]))).toBe("default");
    const log = await requestLog();
    expect(log[0]).toMatchObject({ forQuery: "CHILD-TASK", firstUserText: "Do the CHILD-TASK now.", turn: 0 });
    expect(log[1]!.forQuery).toBeUndefined();
  });

  it("logs requests with secrets redacted, and /_script clears the log", async () => {
    await post(body([user]), { "x-custom": "kept", "proxy-authorization": "Basic secret-proxy" });
    const log = await requestLog();
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", url: "/chat/completions", kind: "main", turn: 0 });
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(entry!.headers["proxy-authorization"]).toBe("<redacted>");
    expect(entry!.headers["x-custom"]).toBe("kept");
    expect(entry!.body).toMatchObject({ model: "deepseek-chat", messages: [user] });
    expect(JSON.stringify(log)).not.toMatch(/secret-(key|proxy)/);

    await setScript([]);
    expect(await requestLog()).toEqual([]);
  });

  it("rejects a body that is not JSON with a 400", async () => {
    const res = await fetch(`${fake.url}/chat/completions`, { method: "POST", body: "not json" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error" } });
  });
});

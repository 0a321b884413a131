import { request as httpRequest } from "node:http";
import { describe, expect, it } from "vitest";
import type { Step } from "../fake-models/server.ts";
import { parseSse, useFakeModels } from "../support/fake-models-server.ts";
import type { SseEvent } from "../support/fake-models-server.ts";

const fake = useFakeModels("openai");
const { setScript, requestLog } = fake;

type Item = Record<string, unknown>;

const developer: Item = { type: "message", role: "developer", content: [{ type: "input_text", text: "Be brief." }] };
const user: Item = { type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] };
const say = (text: string): Item => ({
  type: "message",
  role: "assistant",
  content: [{ type: "output_text", text }],
});
const call = (id: string): Item => ({ type: "function_call", name: "exec_command", arguments: "{}", call_id: id });
const output = (id: string): Item => ({ type: "function_call_output", call_id: id, output: "ok" });

/** Codex's per-request metadata header (the fields the fake looks at, plus a few it ignores). */
function codexMeta(extra: Record<string, unknown> = {}): Record<string, string> {
  const meta = {
    session_id: "thread-1",
    thread_id: "thread-1",
    agent_name: "/root",
    window_number: 0,
    request_kind: "turn",
    thread_source: "user",
    ...extra,
  };
  return { "x-codex-turn-metadata": JSON.stringify(meta) };
}

/** A request shaped like a Codex turn: the whole conversation in `input`, tools, streaming unless overridden. */
function body(input: Item[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: "gpt-5",
    input,
    tools: [{ type: "function", name: "exec_command", parameters: { type: "object" } }],
    tool_choice: "auto",
    parallel_tool_calls: true,
    store: false,
    stream: false,
    ...extra,
  };
}

function post(payload: unknown, headers: Record<string, string> = {}, path = "/v1/responses"): Promise<Response> {
  return fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer secret-key", ...headers },
    body: JSON.stringify(payload),
  });
}

interface ResponseObject {
  object: string;
  status: string;
  model: string;
  output: Item[];
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
}

async function reply(payload: unknown, headers: Record<string, string> = {}): Promise<ResponseObject> {
  const res = await post(payload, headers);
  expect(res.status).toBe(200);
  return (await res.json()) as ResponseObject;
}

/** The text of the first assistant message of a non-streaming reply. */
async function replyText(payload: unknown, headers: Record<string, string> = {}): Promise<string> {
  const { output: items } = await reply(payload, headers);
  const message = items.find((item) => item.type === "message") as { content: Array<{ text: string }> };
  return message.content[0]!.text;
}

/** Rebuilds output items from the deltas, the way a streaming client does. */
function assemble(events: SseEvent[]): Item[] {
  const items: Item[] = [];
  for (const { event, data } of events) {
    const index = data.output_index as number;
    if (event === "response.output_item.added") {
      items[index] = { ...(data.item as Item), text: "", args: "", summaryText: "" };
    } else if (event === "response.output_text.delta") {
      items[index]!.text = `${items[index]!.text as string}${data.delta as string}`;
    } else if (event === "response.function_call_arguments.delta") {
      items[index]!.args = `${items[index]!.args as string}${data.delta as string}`;
    } else if (event === "response.reasoning_summary_text.delta") {
      items[index]!.summaryText = `${items[index]!.summaryText as string}${data.delta as string}`;
    }
  }
  return items;
}

describe("fake OpenAI Responses server", () => {
  it("answers health checks and unknown paths with an OpenAI error", async () => {
    await fake.expectHealthy();

    const missing = await fetch(`${fake.url}/v1/embeddings`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: {
        message: "Invalid URL (POST /v1/embeddings)",
        type: "invalid_request_error",
        param: null,
        code: null,
      },
    });
  });

  it("answers a non-streaming request with a Response object", async () => {
    await setScript([{ text: "Hello there." }]);
    const res = await reply(body([developer, user]));
    expect(res).toMatchObject({ object: "response", status: "completed", model: "gpt-5" });
    expect(res.output).toEqual([
      expect.objectContaining({
        type: "message",
        role: "assistant",
        status: "completed",
        content: [expect.objectContaining({ type: "output_text", text: "Hello there." })],
      }),
    ]);
    expect(res.usage.input_tokens).toBeGreaterThan(0);
    expect(res.usage.input_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(res.usage.output_tokens).toBeGreaterThan(0);
    expect(res.usage.total_tokens).toBe(res.usage.input_tokens + res.usage.output_tokens);
    expect(res.usage.output_tokens_details.reasoning_tokens).toBe(0);
  });

  it("streams reasoning, text and function calls as Responses SSE events", async () => {
    await setScript([
      {
        thinking: "Consider the shell.",
        text: "Running it now.",
        toolUse: [
          { name: "exec_command", input: { cmd: "echo hello > hello.txt" } },
          { name: "exec_command", input: { cmd: "echo second" } },
        ],
      },
    ]);
    const res = await post(body([developer, user], { stream: true }));
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = parseSse(await res.text());

    const names = events.map((e) => e.event);
    expect(names.slice(0, 2)).toEqual(["response.created", "response.in_progress"]);
    expect(names.at(-1)).toBe("response.completed");
    for (const name of [
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.reasoning_summary_part.added",
      "response.reasoning_summary_text.delta",
    ]) {
      expect(names).toContain(name);
    }
    // Every event repeats its type in the data and carries an increasing sequence_number.
    events.forEach((e, i) => expect(e.data).toMatchObject({ type: e.event, sequence_number: i }));
    expect(names.filter((n) => n === "response.output_text.delta").length).toBeGreaterThan(1);

    const assembled = assemble(events);
    expect(assembled.map((item) => item.type)).toEqual(["reasoning", "message", "function_call", "function_call"]);
    expect(assembled[0]!.summaryText).toBe("Consider the shell.");
    expect(assembled[1]!.text).toBe("Running it now.");
    expect(JSON.parse(assembled[2]!.args as string)).toEqual({ cmd: "echo hello > hello.txt" });

    const done = events.filter((e) => e.event === "response.output_item.done").map((e) => e.data.item as Item);
    expect(done[0]).toMatchObject({
      type: "reasoning",
      summary: [{ type: "summary_text", text: "Consider the shell." }],
      encrypted_content: expect.any(String),
    });
    expect(done[2]).toMatchObject({
      type: "function_call",
      status: "completed",
      name: "exec_command",
      arguments: JSON.stringify({ cmd: "echo hello > hello.txt" }),
      call_id: expect.stringMatching(/^call_/),
    });
    expect(done[2]!.call_id).not.toBe(done[3]!.call_id);

    const completed = events.at(-1)!.data.response as ResponseObject;
    expect(completed.status).toBe("completed");
    expect(completed.output).toHaveLength(4);
    expect(completed.usage.input_tokens).toBeGreaterThan(0);
    expect(completed.usage.input_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(completed.usage.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(completed.usage.output_tokens).toBeGreaterThan(completed.usage.output_tokens_details.reasoning_tokens);
  });

  it("counts model turns in the input, so tool calls of one step and retries keep the turn", async () => {
    await setScript([{ text: "first" }, { text: "second" }, { text: "third" }]);
    expect(await replyText(body([developer, user]))).toBe("first");
    expect(await replyText(body([developer, user]))).toBe("first");

    // One model response = one run of output items, even with several calls before their outputs.
    const afterTurn0 = [developer, user, say("working"), call("c1"), call("c2"), output("c1"), output("c2")];
    expect(await replyText(body(afterTurn0))).toBe("second");

    const reasoning: Item = { type: "reasoning", summary: [], encrypted_content: "x" };
    const afterTurn1 = [...afterTurn0, reasoning, call("c3"), output("c3")];
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

  it("gives every function call a unique call_id, across turns and scripts", async () => {
    const shell = { name: "exec_command", input: { cmd: "true" } };
    const step: Step = { toolUse: [shell, shell] };
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      await setScript([step, step]);
      for (const input of [[user], [user, call("x"), output("x")], [user]]) {
        const res = await reply(body(input));
        ids.push(...res.output.map((item) => item.call_id as string));
      }
    }
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
  });

  it("sends flat MCP tool names as calls into the request's namespace tool", async () => {
    await setScript([
      {
        toolUse: [
          { name: "mcp__everything__echo", input: { message: "ping" } },
          { name: "mcp__everything__get-sum", input: { a: 1, b: 2 } },
          { name: "exec_command", input: { cmd: "true" } },
        ],
      },
    ]);
    const tools = [
      { type: "function", name: "exec_command", parameters: { type: "object" } },
      {
        type: "namespace",
        name: "mcp__everything",
        tools: [
          { type: "function", name: "echo" },
          { type: "function", name: "get_sum" },
        ],
      },
    ];
    const res = await reply(body([user], { tools }));
    expect(res.output).toMatchObject([
      { type: "function_call", namespace: "mcp__everything", name: "echo", arguments: '{"message":"ping"}' },
      { type: "function_call", namespace: "mcp__everything", name: "get_sum" },
      { type: "function_call", name: "exec_command" },
    ]);
    expect(res.output[2]).not.toHaveProperty("namespace");

    // Models whose MCP tools are deferred behind tool_search get no namespace tool up front.
    await setScript([{ toolUse: [{ name: "mcp__my_server__do-it", input: {} }] }]);
    const deferred = await reply(body([user]));
    expect(deferred.output).toMatchObject([{ type: "function_call", namespace: "mcp__my_server", name: "do-it" }]);
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
      expect(await res.json()).toEqual({
        error: { message: "slow down", type: "requests", param: null, code: "rate_limit_exceeded" },
      });
    }
    expect(await replyText(body([user]))).toBe("recovered");
  });

  it("repeats an error step without `times` forever and maps the type and code by status", async () => {
    await setScript([
      { error: { status: 500, type: "api_error", message: "boom" }, shouldRetry: false },
      { text: "never" },
    ]);
    for (let attempt = 0; attempt < 4; attempt++) {
      const res = await post(body([user], { stream: true }));
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

    // An OpenAI type given by the script is kept.
    await setScript([{ error: { status: 400, type: "invalid_request_error", message: "bad input" } }]);
    const bad = await post(body([user]));
    expect(await bad.json()).toEqual({
      error: { message: "bad input", type: "invalid_request_error", param: null, code: null },
    });
  });

  it("answers side requests (compaction, subagents) generically without consuming the script", async () => {
    await setScript([{ text: "scripted first" }, { text: "scripted second" }]);

    const compactionMeta = codexMeta({ request_kind: "compaction" });
    const compaction = await replyText(body([user, say("x")], { tools: [] }), compactionMeta);
    expect(compaction).toBe("OK");

    const subagent = await replyText(body([developer, user]), {
      ...codexMeta({ thread_id: "thread-2", thread_source: "subagent", subagent_kind: "thread_spawn" }),
      "x-openai-subagent": "collab_spawn",
      "x-codex-parent-thread-id": "thread-1",
    });
    expect(subagent).toBe("OK");

    expect(await replyText(body([developer, user]), codexMeta())).toBe("scripted first");

    const log = await requestLog();
    expect(log.map((r) => r.kind)).toEqual(["side", "side", "main"]);
    expect(log[0]!.turn).toBeUndefined();
    expect(log[2]!.turn).toBe(0);
  });

  it("keeps counting turns across a compaction, which empties the history of model turns", async () => {
    await setScript([{ text: "one" }, { text: "two" }, { text: "three" }]);
    const window0 = [developer, user, say("one"), call("c1"), output("c1")];
    // Codex summarises window 0 (1 model turn so far) and continues in window 1 with the summary only.
    await replyText(body(window0, { tools: [] }), codexMeta({ request_kind: "compaction", window_number: 0 }));
    await replyText(body(window0, { tools: [] }), codexMeta({ request_kind: "compaction", window_number: 0 }));
    const summary: Item = { type: "message", role: "user", content: [{ type: "input_text", text: "summary" }] };
    expect(await replyText(body([developer, user, summary]), codexMeta({ window_number: 1 }))).toBe("two");
    const window1 = [developer, user, summary, say("two"), call("c2"), output("c2")];
    expect(await replyText(body(window1), codexMeta({ window_number: 1 }))).toBe("three");

    // Another thread (a resumed or new session) is not shifted.
    expect(await replyText(body([developer, user]), codexMeta({ thread_id: "other", window_number: 1 }))).toBe(
      "one",
    );
    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.turn])).toEqual([
      ["side", undefined],
      ["side", undefined],
      ["main", 1],
      ["main", 2],
      ["main", 0],
    ]);
  });

  it("serves /responses without the /v1 prefix too", async () => {
    await setScript([{ text: "no prefix" }]);
    const res = await post(body([user]), {}, "/responses");
    expect(res.status).toBe(200);
    expect(((await res.json()) as ResponseObject).output[0]).toMatchObject({ type: "message" });
  });

  it("logs requests with secrets redacted, and /_script clears the log", async () => {
    await post(body([user]), { "x-custom": "kept", "proxy-authorization": "Basic secret-proxy" });
    const log = await requestLog();
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", url: "/v1/responses", kind: "main", turn: 0 });
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(entry!.headers["proxy-authorization"]).toBe("<redacted>");
    expect(entry!.headers["x-custom"]).toBe("kept");
    expect(entry!.body).toMatchObject({ model: "gpt-5", input: [user] });
    expect(JSON.stringify(log)).not.toMatch(/secret-(key|proxy)/);

    await setScript([]);
    expect(await requestLog()).toEqual([]);
  });

  it("refuses WebSocket upgrades and logs them as other requests", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${fake.url}/v1/responses`, {
        headers: { connection: "Upgrade", upgrade: "websocket", authorization: "Bearer secret-key" },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("upgrade", () => reject(new Error("unexpected upgrade")));
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(426);
    const log = await requestLog();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ method: "GET", url: "/v1/responses", kind: "other" });
    expect(log[0]!.headers.authorization).toBe("<redacted>");
  });
});

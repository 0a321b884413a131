import { describe, expect, it } from "vitest";
import { useFakeModels } from "../support/fake-models-server.ts";

const fake = useFakeModels("ollama");
const { setScript, requestLog } = fake;

type Message = Record<string, unknown>;

const system: Message = { role: "system", content: "Be brief." };
const user: Message = { role: "user", content: "hi" };
const say = (text: string): Message => ({ role: "assistant", content: text });
const call = (): Message => ({ role: "assistant", content: "", tool_calls: [{ function: { name: "exec", arguments: {} } }] });
const output = (): Message => ({ role: "tool", tool_name: "exec", content: "ok" });

/** A request shaped like an agent's turn: the whole conversation, tools; Ollama streams unless `stream: false`. */
function body(messages: Message[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: "llama3.2",
    messages,
    tools: [{ type: "function", function: { name: "exec", parameters: { type: "object" } } }],
    ...extra,
  };
}

function post(payload: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fake.url}/api/chat`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer secret-key", ...headers },
    body: JSON.stringify(payload),
  });
}

interface ToolCall {
  id: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

interface ChatResponse {
  model: string;
  created_at: string;
  message: { role: string; content: string; thinking?: string; tool_calls?: ToolCall[] };
  done: boolean;
  done_reason?: string;
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

async function reply(payload: Record<string, unknown>): Promise<ChatResponse> {
  const res = await post({ ...payload, stream: false });
  expect(res.status).toBe(200);
  return (await res.json()) as ChatResponse;
}

async function replyText(payload: Record<string, unknown>): Promise<string> {
  return (await reply(payload)).message.content;
}

function parseLines(text: string): ChatResponse[] {
  expect(text.endsWith("\n")).toBe(true);
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as ChatResponse);
}

const METRICS = ["total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"] as const;

function metricsOf(response: ChatResponse): Record<string, unknown> {
  return Object.fromEntries(METRICS.map((key) => [key, response[key]]));
}

describe("fake Ollama server", () => {
  it("answers /api/version, /api/tags (GET and HEAD) and unknown /api paths with Ollama's error body", async () => {
    await fake.expectHealthy();

    const version = await fetch(`${fake.url}/api/version`);
    expect(version.status).toBe(200);
    expect(version.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await version.json()).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });

    const tags = await fetch(`${fake.url}/api/tags`);
    const list = (await tags.json()) as { models: Array<Record<string, unknown>> };
    expect(list.models).toEqual([
      expect.objectContaining({ name: "llama3.2:latest", model: "llama3.2:latest", details: expect.objectContaining({ format: "gguf" }) }),
    ]);
    expect((await fetch(`${fake.url}/api/tags`, { method: "HEAD" })).status).toBe(200);

    const missing = await fetch(`${fake.url}/api/pull`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "POST /api/pull not found" });

    // Anthropic's connectivity probe stays Anthropic's.
    expect((await fetch(`${fake.url}/api/hello`)).status).toBe(200);
    const log = await requestLog();
    expect(log.map((r) => [r.method, r.url, r.kind])).toEqual([
      ["GET", "/api/version", "other"],
      ["GET", "/api/tags", "other"],
      ["HEAD", "/api/tags", "other"],
      ["POST", "/api/pull", "other"],
    ]);
  });

  it("streams NDJSON by default: thinking, content in pieces, tool calls whole, then a done line with the counts", async () => {
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
    const res = await post(body([system, user]));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = parseLines(await res.text());
    for (const line of lines) {
      expect(line).toMatchObject({ model: "llama3.2", message: { role: "assistant" } });
      expect(Number.isNaN(Date.parse(line.created_at))).toBe(false);
    }
    const last = lines.at(-1)!;
    expect(lines.slice(0, -1).every((l) => !l.done && l.done_reason === undefined && l.eval_count === undefined)).toBe(true);
    expect(last).toMatchObject({ done: true, done_reason: "stop", message: { role: "assistant", content: "" } });

    expect(lines.map((l) => l.message.thinking ?? "").join("")).toBe("Consider the shell.");
    expect(lines.map((l) => l.message.content).join("")).toBe("Running it now.");
    expect(lines.filter((l) => l.message.content.length > 0).length).toBeGreaterThan(1);
    // Thinking comes before the content.
    const lastThinking = lines.findLastIndex((l) => l.message.thinking !== undefined);
    const firstContent = lines.findIndex((l) => l.message.content.length > 0);
    expect(lastThinking).toBeLessThan(firstContent);

    const calls = lines.flatMap((l) => l.message.tool_calls ?? []);
    expect(calls).toEqual([
      { id: expect.stringMatching(/^call_[a-z0-9]{8}$/), function: { index: 0, name: "exec", arguments: { cmd: "echo hello > hello.txt" } } },
      { id: expect.stringMatching(/^call_[a-z0-9]{8}$/), function: { index: 1, name: "exec", arguments: { cmd: "echo second" } } },
    ]);

    for (const key of METRICS) expect(last[key]).toBeGreaterThan(0);
    expect(last.total_duration).toBeGreaterThan(last.eval_duration! + last.prompt_eval_duration!);
    const [entry] = await requestLog();
    expect(entry!.usage).toEqual({ vendor: metricsOf(last), inputTokens: last.prompt_eval_count, outputTokens: last.eval_count });
  });

  it("answers `stream: false` with one response holding the whole message", async () => {
    await setScript([{ thinking: "Hmm.", text: "Hello there.", toolUse: [{ name: "exec", input: { cmd: "ls" } }] }]);
    const res = await reply(body([user]));
    expect(res).toMatchObject({
      model: "llama3.2",
      done: true,
      done_reason: "stop",
      message: {
        role: "assistant",
        content: "Hello there.",
        thinking: "Hmm.",
        tool_calls: [{ id: expect.stringMatching(/^call_/), function: { index: 0, name: "exec", arguments: { cmd: "ls" } } }],
      },
    });
    expect(res.prompt_eval_count).toBeGreaterThan(0);
    expect(res.eval_count).toBeGreaterThan(0);

    // Plain text: no thinking or tool_calls keys at all.
    await setScript([{ text: "plain" }]);
    const plain = await reply(body([user]));
    expect(plain.message).toEqual({ role: "assistant", content: "plain" });
    const [entry] = await requestLog();
    expect(entry!.usage).toEqual({ vendor: metricsOf(plain), inputTokens: plain.prompt_eval_count, outputTokens: plain.eval_count });
  });

  it("reports the same counts and durations for the same request and step", async () => {
    const step = { thinking: "Plan.", text: "Go.", toolUse: [{ name: "exec", input: { cmd: "ls" } }] };
    const metrics: Array<Record<string, unknown>> = [];
    for (let round = 0; round < 3; round++) {
      await setScript([step]);
      metrics.push(metricsOf(await reply(body([user]))));
    }
    for (const m of metrics) expect(m).toEqual(metrics[0]);
  });

  it("counts model turns as runs of assistant messages, so retries keep the turn", async () => {
    await setScript([{ text: "first" }, { text: "second" }, { text: "third" }]);
    expect(await replyText(body([system, user]))).toBe("first");
    expect(await replyText(body([system, user]))).toBe("first");
    const afterTurn0 = [system, user, call(), output()];
    expect(await replyText(body(afterTurn0))).toBe("second");
    const afterTurn1 = [...afterTurn0, say("so"), call(), output()];
    expect(await replyText(body(afterTurn1))).toBe("third");
    expect(await replyText(body([...afterTurn1, say("done"), user]))).toMatch(/no more steps/);

    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.turn])).toEqual([
      ["main", 0],
      ["main", 0],
      ["main", 1],
      ["main", 2],
      ["main", 3],
    ]);
  });

  it("answers error steps `times` attempts before the turn's reply, with {error} bodies", async () => {
    await setScript([
      { error: { status: 500, type: "api_error", message: "model runner crashed" }, times: 2 },
      { text: "recovered" },
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(body([user]));
      expect(res.status).toBe(500);
      expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(await res.json()).toEqual({ error: "model runner crashed" });
    }
    expect(await replyText(body([user]))).toBe("recovered");

    await setScript([{ error: { status: 404, type: "not_found", message: 'model "nope" not found, try pulling it first' } }]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await post(body([user], { stream: false }));
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: 'model "nope" not found, try pulling it first' });
    }
  });

  it("answers side requests (no tools) generically, with usage, without consuming the script", async () => {
    await setScript([{ text: "scripted first" }]);
    const side = await reply(body([system, user], { tools: undefined }));
    expect(side.message.content).toBe("OK");
    expect(await replyText(body([system, user]))).toBe("scripted first");
    const log = await requestLog();
    expect(log.map((r) => r.kind)).toEqual(["side", "main"]);
    expect(log[0]!.usage?.inputTokens).toBe(side.prompt_eval_count);
  });

  it("matches forQuery scripts against the first user message", async () => {
    await setScript([{ text: "default" }, { text: "child", forQuery: "CHILD-TASK" }]);
    expect(await replyText(body([system, { role: "user", content: "Do the CHILD-TASK now." }]))).toBe("child");
    expect(await replyText(body([system, user]))).toBe("default");
    const log = await requestLog();
    expect(log[0]).toMatchObject({ forQuery: "CHILD-TASK", firstUserText: "Do the CHILD-TASK now." });
  });

  it("logs requests with secrets redacted, and /_script clears the log", async () => {
    await post(body([user], { stream: false }), { "x-custom": "kept", "proxy-authorization": "Basic secret-proxy" });
    const log = await requestLog();
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", url: "/api/chat", kind: "main", turn: 0 });
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(entry!.headers["proxy-authorization"]).toBe("<redacted>");
    expect(entry!.headers["x-custom"]).toBe("kept");
    expect(entry!.body).toMatchObject({ model: "llama3.2", messages: [user] });
    expect(JSON.stringify(log)).not.toMatch(/secret-(key|proxy)/);

    await setScript([]);
    expect(await requestLog()).toEqual([]);
  });
});

import { EventStreamCodec } from "@smithy/eventstream-codec";
import { describe, expect, it } from "vitest";
import { bedrockAuth } from "../../src/gateway/bedrock-signer.ts";
import { useFakeModels } from "../support/fake-models-server.ts";

const fake = useFakeModels("bedrock");
const { setScript, requestLog } = fake;

const MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

type Block =
  | { text: string }
  | { toolUse: { toolUseId: string; name: string; input: unknown } }
  | { reasoningContent: { reasoningText: { text: string; signature?: string } } };

interface ConverseResponse {
  output: { message: { role: string; content: Block[] } };
  stopReason: string;
  usage: {
    inputTokens: number;
    outputTokens: number;
    totalTokens: number;
    cacheReadInputTokens: number;
    cacheWriteInputTokens: number;
  };
  metrics: { latencyMs: number };
}

interface Message {
  role: "user" | "assistant";
  content: Array<Record<string, unknown>>;
}

const userTurn: Message = { role: "user", content: [{ text: "hi" }] };
const assistantTurn: Message = {
  role: "assistant",
  content: [{ toolUse: { toolUseId: "tooluse_1", name: "writeTextFile", input: {} } }],
};
const toolResult: Message = {
  role: "user",
  content: [{ toolResult: { toolUseId: "tooluse_1", content: [{ text: "ok" }] } }],
};

/** A Converse request shaped like @ai-sdk/amazon-bedrock's. */
function converseBody(messages: Message[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    system: [{ text: "You are a careful expert." }],
    messages,
    inferenceConfig: { maxTokens: 4096 },
    toolConfig: {
      tools: [{ toolSpec: { name: "writeTextFile", description: "Writes.", inputSchema: { json: { type: "object" } } } }],
    },
    ...extra,
  };
}

function post(
  body: unknown,
  options: { stream?: boolean; model?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  const model = encodeURIComponent(options.model ?? MODEL);
  const action = (options.stream ?? true) ? "converse-stream" : "converse";
  return fetch(`${fake.url}/model/${model}/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(options.headers ?? {}) },
    body: JSON.stringify(body),
  });
}

interface StreamEvent {
  event: string;
  headers: Record<string, string>;
  data: Record<string, unknown>;
}

const codec = new EventStreamCodec(
  (bytes: Uint8Array) => Buffer.from(bytes).toString("utf8"),
  (text: string) => Buffer.from(text, "utf8"),
);

/** Splits an AWS event-stream body into its messages; the codec checks both CRCs of each. */
function decodeStream(body: Buffer): StreamEvent[] {
  const events: StreamEvent[] = [];
  let rest = body;
  while (rest.length > 0) {
    const total = rest.readUInt32BE(0);
    const message = codec.decode(rest.subarray(0, total));
    rest = rest.subarray(total);
    const headers: Record<string, string> = {};
    for (const [name, header] of Object.entries(message.headers)) headers[name] = String(header.value);
    events.push({
      event: headers[":event-type"] ?? "",
      headers,
      data: JSON.parse(Buffer.from(message.body).toString("utf8")) as Record<string, unknown>,
    });
  }
  return events;
}

async function streamEvents(res: Response): Promise<StreamEvent[]> {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/vnd.amazon.eventstream");
  return decodeStream(Buffer.from(await res.arrayBuffer()));
}

/** Joins a stream the way the AI SDK does: per contentBlockIndex, deltas concatenate. */
function assemble(events: StreamEvent[]): Block[] {
  const blocks: Array<Record<string, unknown>> = [];
  for (const { event, data } of events) {
    const index = data.contentBlockIndex as number;
    if (event === "contentBlockStart") {
      const toolUse = (data.start as { toolUse: { toolUseId: string; name: string } }).toolUse;
      blocks[index] = { toolUse: { ...toolUse, input: "" } };
    } else if (event === "contentBlockDelta") {
      const delta = data.delta as Record<string, Record<string, string> | string>;
      if (typeof delta.text === "string") {
        const block = (blocks[index] ??= { text: "" }) as { text: string };
        block.text += delta.text;
      } else if (typeof delta.toolUse === "object") {
        (blocks[index] as { toolUse: { input: string } }).toolUse.input += delta.toolUse.input;
      } else if (typeof delta.reasoningContent === "object") {
        const block = (blocks[index] ??= { reasoningContent: { reasoningText: { text: "" } } }) as {
          reasoningContent: { reasoningText: { text: string; signature?: string } };
        };
        if (delta.reasoningContent.text !== undefined) block.reasoningContent.reasoningText.text += delta.reasoningContent.text;
        if (delta.reasoningContent.signature !== undefined) block.reasoningContent.reasoningText.signature = delta.reasoningContent.signature;
      }
    }
  }
  return blocks.map((b) =>
    "toolUse" in b
      ? { toolUse: { ...(b.toolUse as { toolUseId: string; name: string }), input: JSON.parse((b.toolUse as { input: string }).input) as unknown } }
      : (b as Block),
  );
}

describe("fake Bedrock server", () => {
  it("answers health checks, and other operations with Bedrock's error shape", async () => {
    await fake.expectHealthy();

    const missing = await fetch(`${fake.url}/model/${encodeURIComponent(MODEL)}/invoke`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-amzn-errortype")).toMatch(/^UnknownOperationException:/);
    expect(missing.headers.get("x-amzn-requestid")).toMatch(/^[0-9a-f-]{36}$/);
    expect(await missing.json()).toEqual({ message: expect.stringContaining("/invoke") });
  });

  it("replies to converse with one ConverseResponse: text, toolUse, reasoning, usage and metrics", async () => {
    await setScript([
      {
        thinking: "Plan the write.",
        text: "Writing it.",
        toolUse: [{ name: "writeTextFile", input: { path: "a.txt", text: "hi" } }],
      },
    ]);
    const res = await post(converseBody([userTurn]), { stream: false });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as ConverseResponse;
    expect(body.output.message.role).toBe("assistant");
    expect(body.output.message.content).toEqual([
      { reasoningContent: { reasoningText: { text: "Plan the write.", signature: expect.any(String) } } },
      { text: "Writing it." },
      { toolUse: { toolUseId: expect.stringMatching(/^tooluse_/), name: "writeTextFile", input: { path: "a.txt", text: "hi" } } },
    ]);
    expect(body.stopReason).toBe("tool_use");
    expect(body.metrics.latencyMs).toBeGreaterThan(0);
    const { usage } = body;
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage).toMatchObject({ cacheReadInputTokens: 0, cacheWriteInputTokens: 0 });
    expect(usage.totalTokens).toBe(usage.inputTokens + usage.outputTokens);

    const [entry] = await requestLog();
    expect(entry).toMatchObject({ kind: "main", turn: 0, model: MODEL, firstUserText: "hi" });
    expect(entry!.url).toBe(`/model/${encodeURIComponent(MODEL)}/converse`);
    expect(entry!.usage).toEqual({ vendor: usage, inputTokens: usage.inputTokens, outputTokens: usage.outputTokens });
  });

  it("streams converse-stream as AWS event-stream messages the codec accepts", async () => {
    await setScript([
      {
        thinking: "Plan the write.",
        text: "Writing it now.",
        toolUse: [{ name: "writeTextFile", input: { path: "a.txt", text: "hi" } }],
      },
    ]);
    const events = await streamEvents(await post(converseBody([userTurn])));
    for (const e of events) {
      expect(e.headers).toEqual({ ":event-type": e.event, ":content-type": "application/json", ":message-type": "event" });
      expect(e.data.p).toEqual(expect.any(String)); // Bedrock's padding
    }
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("messageStart");
    expect(events[0]!.data.role).toBe("assistant");
    expect(names.slice(-2)).toEqual(["messageStop", "metadata"]);
    expect(events.at(-2)!.data.stopReason).toBe("tool_use");
    // Only the tool block opens with contentBlockStart; every block ends with contentBlockStop.
    expect(events.filter((e) => e.event === "contentBlockStart").map((e) => e.data.contentBlockIndex)).toEqual([2]);
    expect(events.filter((e) => e.event === "contentBlockStop").map((e) => e.data.contentBlockIndex)).toEqual([0, 1, 2]);
    // Text and tool input arrive in several pieces.
    const deltas = events.filter((e) => e.event === "contentBlockDelta");
    expect(deltas.filter((e) => e.data.contentBlockIndex === 1).length).toBeGreaterThan(1);
    expect(deltas.filter((e) => e.data.contentBlockIndex === 2).length).toBeGreaterThan(1);

    expect(assemble(events)).toEqual([
      { reasoningContent: { reasoningText: { text: "Plan the write.", signature: expect.any(String) } } },
      { text: "Writing it now." },
      { toolUse: { toolUseId: expect.stringMatching(/^tooluse_/), name: "writeTextFile", input: { path: "a.txt", text: "hi" } } },
    ]);

    const metadata = events.at(-1)!.data as { usage: Record<string, number>; metrics: { latencyMs: number } };
    const [entry] = await requestLog();
    expect(entry!.usage!.vendor).toEqual(metadata.usage);
    expect(metadata.usage.outputTokens).toBeGreaterThan(0);
    expect(metadata.metrics.latencyMs).toBeGreaterThan(0);
  });

  it("picks the step by the number of assistant messages, so retries get the same step", async () => {
    await setScript([{ text: "first" }, { text: "second" }]);
    const texts = async (messages: Message[]): Promise<Block[]> => assemble(await streamEvents(await post(converseBody(messages))));
    expect(await texts([userTurn])).toEqual([{ text: "first" }]);
    expect(await texts([userTurn])).toEqual([{ text: "first" }]);
    expect(await texts([userTurn, assistantTurn, toolResult])).toEqual([{ text: "second" }]);
    const exhausted = await texts([userTurn, assistantTurn, toolResult, assistantTurn, toolResult]);
    expect((exhausted[0] as { text: string }).text).toMatch(/no more steps/);
    expect((await requestLog()).map((r) => [r.kind, r.turn])).toEqual([
      ["main", 0],
      ["main", 0],
      ["main", 1],
      ["main", 2],
    ]);
    const end = (await post(converseBody([userTurn]), { stream: false }).then((r) => r.json())) as ConverseResponse;
    expect(end.stopReason).toBe("end_turn");
  });

  it("answers forQuery scripts by the first user message", async () => {
    await setScript([{ text: "default" }, { text: "child", forQuery: "delegated task" }]);
    const child = await post(converseBody([{ role: "user", content: [{ text: "Do the delegated task." }] }]), { stream: false });
    expect(((await child.json()) as ConverseResponse).output.message.content).toEqual([{ text: "child" }]);
    const main = await post(converseBody([userTurn]), { stream: false });
    expect(((await main.json()) as ConverseResponse).output.message.content).toEqual([{ text: "default" }]);
    expect((await requestLog()).map((r) => r.forQuery)).toEqual(["delegated task", undefined]);
  });

  it("reports cache writes, then cache reads, for requests with a cachePoint", async () => {
    await setScript([{ text: "first" }, { text: "second" }]);
    const cached = { system: [{ text: "You are a careful expert." }, { cachePoint: { type: "default" } }] };
    const first = (await (await post(converseBody([userTurn], cached), { stream: false })).json()) as ConverseResponse;
    expect(first.usage.cacheWriteInputTokens).toBeGreaterThan(0);
    expect(first.usage.cacheReadInputTokens).toBe(0);
    const second = (await (await post(converseBody([userTurn, assistantTurn, toolResult], cached), { stream: false })).json()) as ConverseResponse;
    expect(second.usage.cacheReadInputTokens).toBeGreaterThan(0);
    expect(second.usage.cacheWriteInputTokens).toBe(0);
    const u = second.usage;
    expect(u.totalTokens).toBe(u.inputTokens + u.outputTokens + u.cacheReadInputTokens + u.cacheWriteInputTokens);
    const log = await requestLog();
    expect(log[1]!.usage!.inputTokens).toBe(u.inputTokens + u.cacheReadInputTokens);
    expect(log[0]!.usage!.inputTokens).toBe(first.usage.inputTokens + first.usage.cacheWriteInputTokens);
  });

  it("answers error steps `times` attempts with Bedrock's error before the turn's reply", async () => {
    await setScript([
      { error: { status: 429, type: "rate_limit_error", message: "Too many requests, please wait before trying again." }, times: 2 },
      { text: "recovered" },
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(converseBody([userTurn]));
      expect(res.status).toBe(429);
      expect(res.headers.get("x-amzn-errortype")).toBe("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/");
      expect(await res.json()).toEqual({ message: "Too many requests, please wait before trying again." });
    }
    expect(assemble(await streamEvents(await post(converseBody([userTurn]))))).toEqual([{ text: "recovered" }]);
    const log = await requestLog();
    expect(log.map((r) => r.usage === undefined)).toEqual([true, true, false]);

    // A Bedrock exception name is kept; other types follow the status.
    await setScript([
      { error: { status: 400, type: "ValidationException", message: "The model returned the following errors: bad" }, times: 1 },
      { error: { status: 500, type: "api_error", message: "boom" }, times: 1 },
      { text: "ok" },
    ]);
    const invalid = await post(converseBody([userTurn]), { stream: false });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get("x-amzn-errortype")).toMatch(/^ValidationException:/);
    const internal = await post(converseBody([userTurn]), { stream: false });
    expect(internal.status).toBe(500);
    expect(internal.headers.get("x-amzn-errortype")).toMatch(/^InternalServerException:/);
    expect(((await (await post(converseBody([userTurn]), { stream: false })).json()) as ConverseResponse).output.message.content).toEqual([{ text: "ok" }]);
  });

  it("logs a SigV4 Authorization with only its signature redacted, and the session token redacted", async () => {
    await setScript([{ text: "signed" }]);
    const body = JSON.stringify(converseBody([userTurn]));
    const url = new URL(`${fake.url}/model/${encodeURIComponent(MODEL)}/converse`);
    const auth = bedrockAuth("eu-central-1", {
      accessKeyId: "AKIAFAKEFAKEFAKE0001",
      secretAccessKey: "secret-access-key",
      sessionToken: "secret-session-token",
    });
    const signed = await auth.headersFor({ method: "POST", url, headers: { "content-type": "application/json" }, body: Buffer.from(body) });
    expect(signed.authorization).toMatch(/Signature=[0-9a-f]{64}$/);
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...signed }, body });
    expect(res.status).toBe(200);

    const [entry] = await requestLog();
    expect(entry!.auth).toBe("sigv4");
    expect(entry!.sigv4).toEqual({
      accessKeyId: "AKIAFAKEFAKEFAKE0001",
      date: signed["x-amz-date"]!.slice(0, 8),
      region: "eu-central-1",
      service: "bedrock",
      signedHeaders: expect.arrayContaining(["host", "x-amz-date", "x-amz-security-token"]),
    });
    expect(entry!.headers.authorization).toBe(signed.authorization!.replace(/Signature=[0-9a-f]+/, "Signature=<redacted>"));
    expect(entry!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE0001\/\d{8}\/eu-central-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=<redacted>$/,
    );
    expect(entry!.headers["x-amz-date"]).toBe(signed["x-amz-date"]);
    expect(entry!.headers["x-amz-security-token"]).toBe("<redacted>");
    expect(JSON.stringify(entry)).not.toContain(signed.authorization!.slice(-64));
    expect(JSON.stringify(entry)).not.toMatch(/secret-/);
  });

  it("logs a Bedrock API key (Bearer) fully redacted, and no auth as none", async () => {
    await setScript([{ text: "a" }, { text: "b" }]);
    await post(converseBody([userTurn]), { stream: false, headers: { authorization: "Bearer secret-bedrock-api-key" } });
    await post(converseBody([userTurn]), { stream: false });
    const log = await requestLog();
    expect(log.map((r) => r.auth)).toEqual(["bearer", "none"]);
    expect(log[0]!.headers.authorization).toBe("<redacted>");
    expect(log[0]!.sigv4).toBeUndefined();
    expect(JSON.stringify(log)).not.toContain("secret-bedrock-api-key");

    await setScript([]);
    expect(await requestLog()).toEqual([]);
  });

  it("rejects malformed JSON and a script that is not {steps: [...]}", async () => {
    const bad = await fetch(`${fake.url}/model/${encodeURIComponent(MODEL)}/converse`, { method: "POST", body: "{not json" });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("x-amzn-errortype")).toMatch(/^ValidationException:/);

    const res = await fetch(`${fake.url}/_script${fake.query}`, { method: "POST", body: JSON.stringify({ nope: 1 }) });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-amzn-errortype")).toMatch(/^ValidationException:/);
    expect(await res.json()).toEqual({ message: 'expected {"steps": [...]}' });
  });
});

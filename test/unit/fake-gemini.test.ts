import { describe, expect, it } from "vitest";
import { useFakeModels } from "../support/fake-models-server.ts";

const fake = useFakeModels("gemini");
const { setScript, requestLog } = fake;

interface Content {
  role: "user" | "model";
  parts: Array<Record<string, unknown>>;
}

interface Part {
  text?: string;
  thought?: boolean;
  functionCall?: { name: string; args: Record<string, unknown> };
}

interface GenerateContentResponse {
  candidates: Array<{ content: { role: string; parts: Part[] }; finishReason?: string; index: number }>;
  usageMetadata: {
    promptTokenCount: number;
    candidatesTokenCount: number;
    totalTokenCount: number;
    thoughtsTokenCount?: number;
    cachedContentTokenCount?: number;
  };
  modelVersion: string;
  responseId: string;
}

const userTurn: Content = { role: "user", parts: [{ text: "hi" }] };
const modelTurn: Content = { role: "model", parts: [{ functionCall: { name: "run_shell_command", args: {} } }] };
const toolResult: Content = {
  role: "user",
  parts: [{ functionResponse: { name: "run_shell_command", response: { output: "ok" } } }],
};

/** A request shaped like a Gemini CLI main-conversation turn: the agent's function declarations. */
function mainBody(contents: Content[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    contents,
    systemInstruction: { role: "user", parts: [{ text: "You are a non-interactive CLI agent." }] },
    tools: [
      {
        functionDeclarations: [
          { name: "run_shell_command", parametersJsonSchema: { type: "object" } },
          { name: "invoke_agent", parametersJsonSchema: { type: "object" } },
        ],
      },
    ],
    generationConfig: { temperature: 1, thinkingConfig: { includeThoughts: true, thinkingBudget: 8192 } },
    ...extra,
  };
}

function post(
  body: unknown,
  options: { model?: string; stream?: boolean; headers?: Record<string, string>; query?: string } = {},
): Promise<Response> {
  const model = options.model ?? "gemini-2.5-pro";
  const query = options.query ?? "";
  const path = (options.stream ?? true) ? `streamGenerateContent?alt=sse${query}` : `generateContent?${query}`;
  return fetch(`${fake.url}/v1beta/models/${model}:${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-goog-api-key": "secret-key", ...(options.headers ?? {}) },
    body: JSON.stringify(body),
  });
}

function parseSse(text: string): GenerateContentResponse[] {
  return text
    .split("\n\n")
    .filter((chunk) => chunk.trim().length > 0)
    .map((chunk) => {
      expect(chunk).toMatch(/^data: /);
      return JSON.parse(chunk.slice(6)) as GenerateContentResponse;
    });
}

/** Joins a stream the way the CLI does: consecutive text (or thought) pieces concatenate. */
function assemble(chunks: GenerateContentResponse[]): Part[] {
  const parts: Part[] = [];
  for (const chunk of chunks) {
    for (const part of chunk.candidates[0]!.content.parts) {
      const last = parts[parts.length - 1];
      if (part.text !== undefined && last?.text !== undefined && Boolean(last.thought) === Boolean(part.thought)) {
        last.text += part.text;
      } else {
        parts.push({ ...part });
      }
    }
  }
  return parts;
}

async function streamedParts(res: Response): Promise<Part[]> {
  return assemble(parseSse(await res.text()));
}

describe("fake Gemini server", () => {
  it("answers health checks and unknown paths with a Google error", async () => {
    await fake.expectHealthy();

    const missing = await fetch(`${fake.url}/v1beta/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 404, status: "NOT_FOUND" } });
  });

  it("replies with one plain JSON response to generateContent", async () => {
    await setScript([
      { text: "Hello there.", toolUse: [{ name: "run_shell_command", input: { command: "true" } }] },
    ]);
    const res = await post(mainBody([userTurn]), { stream: false, model: "gemini-2.5-flash" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as GenerateContentResponse;
    expect(body.candidates).toEqual([
      {
        content: {
          role: "model",
          parts: [{ text: "Hello there." }, { functionCall: { name: "run_shell_command", args: { command: "true" } } }],
        },
        finishReason: "STOP",
        index: 0,
      },
    ]);
    expect(body.modelVersion).toBe("gemini-2.5-flash");
    expect(body.responseId).toEqual(expect.any(String));
    const usage = body.usageMetadata;
    expect(usage.promptTokenCount).toBeGreaterThan(0);
    expect(usage.candidatesTokenCount).toBeGreaterThan(0);
    expect(usage.totalTokenCount).toBe(usage.promptTokenCount + usage.candidatesTokenCount);
    expect(usage.thoughtsTokenCount).toBeUndefined();
  });

  it("streams thought, text and functionCall parts as SSE chunks, for any model name", async () => {
    await setScript([
      {
        thinking: "**Planning**\n\nConsider the shell.",
        text: "Running it now.",
        toolUse: [{ name: "run_shell_command", input: { command: "echo hi", description: "Print hi" } }],
      },
    ]);
    const res = await post(mainBody([userTurn]), { model: "some-future-model-9" });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const chunks = parseSse(await res.text());
    expect(chunks.length).toBeGreaterThan(3);

    // Every chunk is a whole GenerateContentResponse; only the last one finishes.
    for (const chunk of chunks) {
      expect(chunk.modelVersion).toBe("some-future-model-9");
      expect(chunk.responseId).toBe(chunks[0]!.responseId);
      expect(chunk.candidates[0]!.content.role).toBe("model");
      expect(chunk.usageMetadata.promptTokenCount).toBeGreaterThan(0);
    }
    expect(chunks.slice(0, -1).every((c) => c.candidates[0]!.finishReason === undefined)).toBe(true);
    const last = chunks[chunks.length - 1]!;
    expect(last.candidates[0]!.finishReason).toBe("STOP");
    expect(last.usageMetadata.candidatesTokenCount).toBeGreaterThan(0);
    expect(last.usageMetadata.thoughtsTokenCount).toBeGreaterThan(0);

    // The text arrives in pieces; the thought goes out whole (the CLI reads its **subject** per chunk).
    const textChunks = chunks.filter((c) => c.candidates[0]!.content.parts.some((p) => p.text && !p.thought));
    expect(textChunks.length).toBeGreaterThan(1);

    expect(assemble(chunks)).toEqual([
      { thought: true, text: "**Planning**\n\nConsider the shell." },
      { text: "Running it now." },
      { functionCall: { name: "run_shell_command", args: { command: "echo hi", description: "Print hi" } } },
    ]);
  });

  it("picks the step by the number of model turns, so retries of a turn get the same step", async () => {
    await setScript([{ text: "first" }, { text: "second" }]);
    expect(await streamedParts(await post(mainBody([userTurn])))).toEqual([{ text: "first" }]);
    expect(await streamedParts(await post(mainBody([userTurn])))).toEqual([{ text: "first" }]);
    expect(await streamedParts(await post(mainBody([userTurn, modelTurn, toolResult])))).toEqual([
      { text: "second" },
    ]);
    const exhausted = await streamedParts(await post(mainBody([userTurn, modelTurn, toolResult, modelTurn, userTurn])));
    expect(exhausted[0]!.text).toMatch(/no more steps/);

    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.turn])).toEqual([
      ["main", 0],
      ["main", 0],
      ["main", 1],
      ["main", 2],
    ]);
  });

  it("reports cached tokens from the second turn on", async () => {
    await setScript([{ text: "first" }, { text: "second" }]);
    const first = parseSse(await (await post(mainBody([userTurn]))).text());
    expect(first[first.length - 1]!.usageMetadata.cachedContentTokenCount).toBeUndefined();
    const second = parseSse(await (await post(mainBody([userTurn, modelTurn, toolResult]))).text());
    expect(second[second.length - 1]!.usageMetadata.cachedContentTokenCount).toBeGreaterThan(0);
  });

  it("answers error steps `times` attempts with the Google error JSON before the turn's reply", async () => {
    await setScript([
      { error: { status: 500, type: "api_error", message: "boom" }, times: 2 },
      { text: "recovered" },
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(mainBody([userTurn]));
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: { code: 500, message: "boom", status: "INTERNAL" } });
    }
    const ok = await post(mainBody([userTurn]));
    expect(ok.status).toBe(200);
    expect(await streamedParts(ok)).toEqual([{ text: "recovered" }]);
  });

  it("repeats an error step without `times` forever and keeps or derives the Google status name", async () => {
    await setScript([
      { error: { status: 401, type: "UNAUTHENTICATED", message: "API key not valid." } },
      { text: "never" },
    ]);
    for (let attempt = 0; attempt < 4; attempt++) {
      const res = await post(mainBody([userTurn]));
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: { code: 401, message: "API key not valid.", status: "UNAUTHENTICATED" },
      });
    }

    await setScript([
      { error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 1 },
      { text: "ok" },
    ]);
    const limited = await post(mainBody([userTurn]));
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({
      error: { code: 429, message: "slow down", status: "RESOURCE_EXHAUSTED" },
    });
    expect(await streamedParts(await post(mainBody([userTurn])))).toEqual([{ text: "ok" }]);
  });

  it("answers side requests generically without consuming the script", async () => {
    await setScript([{ text: "scripted" }]);

    // Next-speaker check: JSON with a schema, sent with the whole conversation (model turns included).
    const nextSpeaker = await post(
      {
        contents: [userTurn, modelTurn, toolResult, { role: "model", parts: [{ text: "done" }] }, userTurn],
        generationConfig: {
          responseMimeType: "application/json",
          responseJsonSchema: {
            type: "object",
            properties: {
              reasoning: { type: "string" },
              next_speaker: { type: "string", enum: ["model", "user"] },
            },
            required: ["reasoning", "next_speaker"],
          },
        },
      },
      { model: "gemini-3-flash-preview", stream: false },
    );
    const ns = (await nextSpeaker.json()) as GenerateContentResponse;
    const nsValue = JSON.parse(ns.candidates[0]!.content.parts[0]!.text!) as Record<string, unknown>;
    expect(nsValue).toEqual({ reasoning: expect.any(String), next_speaker: "user" });

    // Router: OpenAPI-style upper-case types; the score must be within 1..100.
    const router = await post(
      {
        contents: [userTurn],
        systemInstruction: { parts: [{ text: "You are a specialized Task Routing AI." }] },
        generationConfig: {
          responseMimeType: "application/json",
          responseJsonSchema: {
            type: "OBJECT",
            properties: { complexity_reasoning: { type: "STRING" }, complexity_score: { type: "INTEGER" } },
          },
        },
      },
      { model: "gemini-3.5-flash-lite", stream: false },
    );
    const routed = (await router.json()) as GenerateContentResponse;
    expect(JSON.parse(routed.candidates[0]!.content.parts[0]!.text!)).toEqual({
      complexity_reasoning: expect.any(String),
      complexity_score: 1,
    });

    // Loop detection says "no loop"; the edit corrector gets "" so the CLI keeps its own string.
    const loop = await post(
      {
        contents: [userTurn],
        generationConfig: {
          responseMimeType: "application/json",
          responseJsonSchema: {
            type: "object",
            properties: {
              unproductive_state_analysis: { type: "string" },
              unproductive_state_confidence: { type: "number" },
              corrected_string_escaping: { type: "string" },
            },
          },
        },
      },
      { stream: false },
    );
    const loopValue = JSON.parse(
      ((await loop.json()) as GenerateContentResponse).candidates[0]!.content.parts[0]!.text!,
    ) as Record<string, unknown>;
    expect(loopValue).toMatchObject({ unproductive_state_confidence: 0, corrected_string_escaping: "" });

    // Session summary: plain text on a flash-lite model.
    const summary = await post({ contents: [userTurn] }, { model: "gemini-2.5-flash-lite", stream: false });
    expect(((await summary.json()) as GenerateContentResponse).candidates[0]!.content.parts).toEqual([{ text: "OK" }]);

    // Subagent: streams with tools, but declares complete_task; it gets one complete_task call.
    const subagent = await post(
      mainBody([{ role: "user", parts: [{ text: "Investigate." }] }], {
        tools: [
          {
            functionDeclarations: [
              { name: "read_file", parametersJsonSchema: { type: "object" } },
              {
                name: "complete_task",
                parametersJsonSchema: {
                  type: "object",
                  properties: {
                    report: {
                      type: "object",
                      properties: { SummaryOfFindings: { type: "string" }, RelevantLocations: { type: "array" } },
                    },
                    wait_for_previous: { type: "boolean" },
                  },
                },
              },
            ],
          },
        ],
      }),
    );
    const subParts = await streamedParts(subagent);
    expect(subParts).toEqual([
      {
        functionCall: {
          name: "complete_task",
          args: { report: { SummaryOfFindings: expect.any(String), RelevantLocations: [] }, wait_for_previous: false },
        },
      },
    ]);

    const main = await post(mainBody([userTurn]));
    expect(await streamedParts(main)).toEqual([{ text: "scripted" }]);

    const log = await requestLog();
    expect(log.map((r) => r.kind)).toEqual(["side", "side", "side", "side", "side", "main"]);
    expect(log.map((r) => r.model)).toEqual([
      "gemini-3-flash-preview",
      "gemini-3.5-flash-lite",
      "gemini-2.5-pro",
      "gemini-2.5-flash-lite",
      "gemini-2.5-pro",
      "gemini-2.5-pro",
    ]);
    expect(log[5]!.turn).toBe(0);
    expect(log[0]!.turn).toBeUndefined();
  });

  it("answers countTokens", async () => {
    const res = await fetch(`${fake.url}/v1beta/models/gemini-2.5-pro:countTokens`, {
      method: "POST",
      body: JSON.stringify({ contents: [userTurn] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { totalTokens: number }).totalTokens).toBeGreaterThan(0);
  });

  it("logs requests with secrets redacted, and /_script clears the log", async () => {
    await post(mainBody([userTurn]), {
      headers: { authorization: "Bearer secret-token", "x-custom": "kept" },
      query: "&key=secret-query-key",
    });
    const log = await requestLog();
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", kind: "main", turn: 0, model: "gemini-2.5-pro" });
    expect(entry!.url).toBe("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=<redacted>");
    expect(entry!.headers["x-goog-api-key"]).toBe("<redacted>");
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(entry!.headers["x-custom"]).toBe("kept");
    expect(entry!.body).toMatchObject({ contents: [userTurn] });
    expect(JSON.stringify(log)).not.toMatch(/secret-(key|token|query-key)/);

    await setScript([]);
    expect(await requestLog()).toEqual([]);
  });

  it("rejects a script that is not {steps: [...]}", async () => {
    const res = await fetch(`${fake.url}/_script${fake.query}`, { method: "POST", body: JSON.stringify({ nope: 1 }) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 400, status: "INVALID_ARGUMENT" } });
  });
});

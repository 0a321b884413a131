// Shared setup of the fake model server unit tests: one in-process server (test/fake-models/server.ts) for the
// file, the control endpoints of one protocol (its script is emptied before each test), and SSE parsing.
import { afterAll, beforeAll, beforeEach, expect } from "vitest";
import { startFakeModels } from "../fake-models/server.ts";
import type { FakeModelsHandle, ProtocolName, RecordedRequest, Step } from "../fake-models/server.ts";

export interface FakeModelsUnderTest {
  /** The server's base URL (valid once beforeAll has run). */
  readonly url: string;
  /** `?protocol=<name>`, for the control endpoints. */
  readonly query: string;
  setScript(steps: Step[]): Promise<void>;
  requestLog(): Promise<RecordedRequest[]>;
  /** Asserts that GET /health answers 200 "ok". */
  expectHealthy(): Promise<void>;
}

export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Splits an `event: <name>\ndata: {...}` stream (Anthropic, OpenAI Responses) into its events. */
export function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((chunk) => chunk.trim().length > 0)
    .map((chunk) => {
      const lines = chunk.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "";
      const data = lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "{}";
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

/** Replaces one protocol's script on the in-process fake server at `url`. */
export async function postScript(url: string, protocol: ProtocolName, steps: Step[]): Promise<void> {
  const res = await fetch(`${url}/_script?protocol=${protocol}`, { method: "POST", body: JSON.stringify({ steps }) });
  expect(res.status).toBe(200);
}

/** One protocol's request log on the in-process fake server at `url`. */
export async function fetchRequestLog(url: string, protocol: ProtocolName): Promise<RecordedRequest[]> {
  return (await (await fetch(`${url}/_requests?protocol=${protocol}`)).json()) as RecordedRequest[];
}

export function useFakeModels(protocol: ProtocolName): FakeModelsUnderTest {
  let handle: FakeModelsHandle | undefined;
  beforeAll(async () => {
    handle = await startFakeModels({ port: 0 });
  });
  afterAll(async () => {
    await handle?.close();
  });
  const fake: FakeModelsUnderTest = {
    get url() {
      if (!handle) throw new Error("the fake model server is not started yet");
      return handle.url;
    },
    query: `?protocol=${protocol}`,
    setScript: (steps) => postScript(fake.url, protocol, steps),
    requestLog: () => fetchRequestLog(fake.url, protocol),
    async expectHealthy() {
      const health = await fetch(`${fake.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.text()).toBe("ok");
    },
  };
  beforeEach(async () => {
    await fake.setScript([]);
  });
  return fake;
}

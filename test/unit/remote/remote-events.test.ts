// Following a run's events over SSE against a scripted in-process server: a dropped connection is opened again with
// Last-Event-ID and every event comes once; attempts are bounded; a 4xx is not retried; `end` while the run is still
// going is followed again; a snapshot stops when the stream goes quiet. And the events themselves are hostile
// input: checkRemoteEvent holds them to the event schema and to their job.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerFailedError, ServerRefusedError } from "../../../src/errors.js";
import { checkRemoteEvent, cursorAtEnd, followRunEvents, type FollowOptions } from "../../../src/remote/remote-events.js";
import { ServerClient } from "../../../src/remote/server-client.js";

const JOB = "job1";
const RUN = "run1";

function event(n: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: "retry", id: `ev${n}`, timestamp: 1000 + n, jobId: JOB, runId: RUN, expertKey: "writer", stepNumber: 1, reason: `attempt ${n}`, ...extra };
}

function sse(n: number): string {
  return `id: v1:${RUN}.${n}\nevent: retry\ndata: ${JSON.stringify(event(n))}\n\n`;
}

type Connection = (request: IncomingMessage, response: ServerResponse) => void;

describe("followRunEvents", () => {
  let server: Server;
  let url: string;
  let connections: Connection[] = [];
  const requests: Array<{ lastEventId: string | undefined; authorization: string | undefined }> = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      requests.push({ lastEventId: request.headers["last-event-id"] as string | undefined, authorization: request.headers.authorization });
      const next = connections.shift();
      if (!next) {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "internal", message: "no script" } }));
        return;
      }
      next(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () => new ServerClient({ base: url, token: "pst_t_token" });
  const stream = (response: ServerResponse) => response.writeHead(200, { "content-type": "text/event-stream" });
  const fast: FollowOptions = { retryDelayMs: () => 10 };

  async function collect(options: FollowOptions = {}): Promise<Array<{ id: string | undefined; data: Record<string, unknown> }>> {
    const got: Array<{ id: string | undefined; data: Record<string, unknown> }> = [];
    for await (const message of followRunEvents(client(), JOB, { ...fast, ...options })) got.push({ id: message.id, data: JSON.parse(message.data) as Record<string, unknown> });
    return got;
  }

  it("opens a dropped stream again with Last-Event-ID: every event once, in order", async () => {
    requests.length = 0;
    connections = [
      (_request, response) => {
        stream(response);
        response.write(": connected\n\n");
        response.write(sse(1) + sse(2));
        // A cut mid-event: the third event's half must not be taken for an event.
        response.write(`id: v1:${RUN}.3\nevent: retry\ndata: {"type":"ret`);
        setTimeout(() => response.destroy(), 20);
      },
      (_request, response) => {
        stream(response);
        response.end(sse(3) + "event: end\ndata: {}\n\n");
      },
    ];
    const got = await collect({ onReconnect: () => {} });
    expect(got.map((m) => m.data.id)).toEqual(["ev1", "ev2", "ev3"]);
    expect(requests.map((r) => r.lastEventId)).toEqual([undefined, `v1:${RUN}.2`]);
    expect(requests.every((r) => r.authorization === "Bearer pst_t_token")).toBe(true);
  });

  it("gives up after a bounded number of attempts without an event, saying how to pick the run up", async () => {
    requests.length = 0;
    const drop: Connection = (_request, response) => {
      stream(response);
      response.write(": connected\n\n");
      setTimeout(() => response.destroy(), 5);
    };
    connections = [drop, drop, drop, drop];
    const error = await collect({ maxAttempts: 3 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServerFailedError);
    expect((error as Error).message).toMatch(/lost job job1's events from .* 3 times in a row .*perstack log --server .* --job job1/);
    expect(requests).toHaveLength(3);
    connections = [];
  });

  it("counts attempts from the last event: a stream that keeps giving events is followed however often it drops", async () => {
    requests.length = 0;
    connections = [1, 2, 3, 4].map((n) => (_request: IncomingMessage, response: ServerResponse) => {
      stream(response);
      response.write(sse(n));
      setTimeout(() => response.destroy(), 5);
    });
    connections.push((_request, response) => {
      stream(response);
      response.end("event: end\ndata: {}\n\n");
    });
    const got = await collect({ maxAttempts: 2 });
    expect(got.map((m) => m.data.id)).toEqual(["ev1", "ev2", "ev3", "ev4"]);
    expect(requests.map((r) => r.lastEventId)).toEqual([undefined, `v1:${RUN}.1`, `v1:${RUN}.2`, `v1:${RUN}.3`, `v1:${RUN}.4`]);
  });

  it("does not retry a 4xx: the server's word is final", async () => {
    requests.length = 0;
    connections = [
      (_request, response) => {
        response.writeHead(400, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "bad_request", message: "Last-Event-ID: not a cursor of this server" } }));
      },
    ];
    await expect(collect({ after: "bogus" })).rejects.toBeInstanceOf(ServerRefusedError);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.lastEventId).toBe("bogus");
  });

  it("takes silence past the keep-alives as a drop", async () => {
    requests.length = 0;
    connections = [
      (_request, response) => {
        stream(response);
        response.write(sse(1));
      },
      (_request, response) => {
        stream(response);
        response.end(sse(2) + "event: end\ndata: {}\n\n");
      },
    ];
    const got = await collect({ idleMs: 100 });
    expect(got.map((m) => m.data.id)).toEqual(["ev1", "ev2"]);
    expect(requests[1]!.lastEventId).toBe(`v1:${RUN}.1`);
  });

  it("follows again after `end` while the run is still going (a continuation not yet begun), from where it ended", async () => {
    requests.length = 0;
    let asked = 0;
    connections = [
      (_request, response) => {
        stream(response);
        response.end(sse(1) + "event: end\ndata: {}\n\n");
      },
      (_request, response) => {
        stream(response);
        response.end(sse(2) + "event: end\ndata: {}\n\n");
      },
    ];
    const got = await collect({ stillGoing: async () => ++asked === 1 });
    expect(got.map((m) => m.data.id)).toEqual(["ev1", "ev2"]);
    expect(requests.map((r) => r.lastEventId)).toEqual([undefined, `v1:${RUN}.1`]);
  });

  it("stops a snapshot once the stream goes quiet; cursorAtEnd gives the last id", async () => {
    connections = [
      (_request, response) => {
        stream(response);
        response.write(sse(1) + sse(2));
        // stays open, as for a running job
      },
    ];
    const started = Date.now();
    const got = await collect({ snapshotIdleMs: 200 });
    expect(got.map((m) => m.data.id)).toEqual(["ev1", "ev2"]);
    expect(Date.now() - started).toBeLessThan(5_000);
    connections = [
      (_request, response) => {
        stream(response);
        response.end(sse(1) + sse(2) + sse(3) + "event: end\ndata: {}\n\n");
      },
    ];
    expect(await cursorAtEnd(client(), JOB)).toBe(`v1:${RUN}.3`);
  });
});

describe("checkRemoteEvent", () => {
  it("takes an event of the job that matches the schema, with continueToNextStep's recorded nextCheckpoint made whole", () => {
    const checked = checkRemoteEvent(JSON.stringify(event(1)), JOB);
    expect(checked).toMatchObject({ ok: true, event: { type: "retry", id: "ev1" } });
    const checkpoint = { id: "cp1", jobId: JOB, runId: RUN, status: "proceeding", stepNumber: 1, expert: { key: "writer", name: "writer", version: "1.0.0" }, usage: { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 }, messagesRef: { checkpointId: "cp1", count: 2 } };
    const step = { type: "continueToNextStep", id: "ev2", timestamp: 1, jobId: JOB, runId: RUN, expertKey: "writer", stepNumber: 1, checkpoint, nextCheckpoint: { checkpointWith: { id: "cp2", stepNumber: 2 } } };
    const whole = checkRemoteEvent(JSON.stringify(step), JOB);
    expect(whole.ok).toBe(true);
    if (whole.ok) {
      expect(whole.event).toMatchObject({ nextCheckpoint: { id: "cp2", stepNumber: 2, messagesRef: { checkpointId: "cp1" } } });
      // What is printed or written is the record as the server sent it.
      expect(whole.record.nextCheckpoint).toEqual({ checkpointWith: { id: "cp2", stepNumber: 2 } });
    }
    const planted = checkRemoteEvent(JSON.stringify({ ...step, nextCheckpoint: { checkpointWith: { __proto__: 1, injected: true } } }), JOB);
    expect(planted).toMatchObject({ ok: false, reason: expect.stringMatching(/not a field of the event's checkpoint/) });
  });

  it("refuses what is not an event of the job", () => {
    const cases: Array<[string, RegExp]> = [
      ["not json", /not JSON/],
      ["[1,2]", /not an object/],
      [JSON.stringify(event(1, { jobId: "other" })), /names job "other", not job1/],
      [JSON.stringify(event(1, { runId: "../../etc" })), /does not match the event schema \(runId/],
      [JSON.stringify(event(1, { id: "a/b" })), /does not match the event schema \(id/],
      [JSON.stringify({ ...event(1), type: "rm -rf" }), /does not match the event schema/],
      [JSON.stringify({ type: "startGeneration", id: "e", timestamp: 1, jobId: JOB, runId: RUN, expertKey: "w", stepNumber: 1, messagesRef: { checkpointId: "c", count: 1 }, messages: [] }), /does not match the event schema/],
      [JSON.stringify({ type: "completeRun", id: "e", timestamp: 1, jobId: JOB, runId: RUN, expertKey: "w", stepNumber: 1, text: "done" }), /does not match the event schema \(checkpoint/],
      [JSON.stringify({ type: "proxyAccess", id: "e", timestamp: 1, jobId: JOB, runId: RUN, action: "maybe", domain: "x", port: 443 }), /does not match the event schema \(action/],
    ];
    for (const [data, reason] of cases) {
      const checked = checkRemoteEvent(data, JOB);
      expect(checked.ok, data).toBe(false);
      if (!checked.ok) expect(checked.reason, data).toMatch(reason);
    }
  });
});

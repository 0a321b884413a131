// GET /v1/runs/{jobId}/events: the run's events as Server-Sent Events, past then live, until the run ends. Each
// event's id is a cursor of what the client has seen (event-feed.ts); a client that reconnects with Last-Event-ID
// gets exactly the events after it. While the run is queued the stream stays open with keep-alives. The same route
// serves `perstack serve` (runs from its queue) and `perstack ui` (local jobs, always begun): `phase` says which.
import type { FastifyReply, FastifyRequest } from "fastify";
import { formatSse, JobEventFeed, parseCursor, sseKeepAlive, type FeedCursor } from "./event-feed.js";

const KEEP_ALIVE_MS = 15_000;
const WAIT_POLL_MS = 250;

/** Where the job is: not begun yet (queued, or its job.json not written), begun, or never to begin (cancelled). */
export type JobPhase = "waiting" | "begun" | "never";

export interface RunEventsSource {
  perstackDir: string;
  jobId: string;
  phase(): JobPhase;
}

export async function streamRunEvents(request: FastifyRequest, reply: FastifyReply, source: RunEventsSource): Promise<void> {
  // A bad Last-Event-ID is the client's 400, answered before the stream begins.
  const lastEventId = request.headers["last-event-id"];
  const after: FeedCursor | undefined = lastEventId === undefined ? undefined : parseCursor(lastEventId);
  const closed = new AbortController();
  const newFeed = () => new JobEventFeed(source.perstackDir, source.jobId, { ...(after ? { after } : {}), signal: closed.signal });
  // Once the run has begun, a cursor of another job (a run it does not have) is refused before the stream too.
  let feed: JobEventFeed | undefined;
  if (source.phase() === "begun") {
    feed = newFeed();
    await feed.open();
  }
  reply.hijack();
  const out = reply.raw;
  // The response's close is the client going away (the request's may come as soon as its body is read).
  out.on("close", () => closed.abort());
  out.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
  out.write(sseKeepAlive("connected"));
  const keepAlive = setInterval(() => out.write(sseKeepAlive()), KEEP_ALIVE_MS);
  try {
    let phase = feed ? "begun" : source.phase();
    while (phase === "waiting" && !closed.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
      phase = source.phase();
    }
    if (phase === "begun" && !closed.signal.aborted) {
      feed ??= newFeed();
      for await (const item of feed) {
        if (!out.write(formatSse(item))) await drained(out, closed.signal);
      }
    }
    // The run is over: a client that would reconnect by itself (EventSource) knows to stop.
    if (!closed.signal.aborted) out.write("event: end\ndata: {}\n\n");
  } catch (error) {
    if (!closed.signal.aborted) out.write(`event: error\ndata: ${JSON.stringify({ message: (error as Error).message })}\n\n`);
  } finally {
    clearInterval(keepAlive);
    out.end();
  }
}

function drained(out: NodeJS.WritableStream, closed: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off("drain", done);
      closed.removeEventListener("abort", done);
      resolve();
    };
    out.once("drain", done);
    closed.addEventListener("abort", done, { once: true });
  });
}

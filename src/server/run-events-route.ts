// GET /v1/runs/{jobId}/events: the run's events as Server-Sent Events, past then live, until the run ends. Each
// event's id is a cursor of what the client has seen (event-feed.ts); a client that reconnects with Last-Event-ID
// gets exactly the events after it. While the run is queued the stream stays open with keep-alives.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import { formatSse, JobEventFeed, parseCursor, sseKeepAlive, type FeedCursor } from "./event-feed.js";
import type { QueuedRun, RunQueue } from "./run-queue.js";

const KEEP_ALIVE_MS = 15_000;
const QUEUE_POLL_MS = 250;

export async function streamRunEvents(request: FastifyRequest, reply: FastifyReply, context: { queue: RunQueue; perstackDir: string; run: QueuedRun }): Promise<void> {
  // A bad Last-Event-ID is the client's 400, answered before the stream begins.
  const lastEventId = request.headers["last-event-id"];
  const after: FeedCursor | undefined = lastEventId === undefined ? undefined : parseCursor(lastEventId);
  const closed = new AbortController();
  // Once the run has begun, a cursor of another job (a run it does not have) is refused before the stream too.
  let feed: JobEventFeed | undefined;
  if (context.run.status !== "queued" && context.run.status !== "cancelled" && begun(context)) {
    feed = new JobEventFeed(context.perstackDir, context.run.jobId, { ...(after ? { after } : {}), signal: closed.signal });
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
    let run: QueuedRun | undefined = context.run;
    // Queued, or just started and its job not written yet: there is nothing to read until it is.
    while (run && (run.status === "queued" || (run.status === "running" && !begun({ ...context, run }))) && !closed.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, QUEUE_POLL_MS));
      run = context.queue.get(run.tenant, run.jobId);
    }
    if (run && run.status !== "cancelled" && !closed.signal.aborted) {
      feed ??= new JobEventFeed(context.perstackDir, run.jobId, { ...(after ? { after } : {}), signal: closed.signal });
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

/** Whether the run's job has its record yet (a run is marked started a moment before its job.json is written). */
function begun(context: { perstackDir: string; run: QueuedRun }): boolean {
  return existsSync(join(context.perstackDir, "jobs", context.run.jobId, "job.json"));
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

// Follows GET /v1/runs/{jobId}/events. EventSource cannot send the bearer token, so this reads the stream with
// fetch and parses it with eventsource-parser. Each event's id is a cursor of everything seen so far: when the
// connection drops (a proxy timeout, a laptop sleeping), it reconnects with Last-Event-ID and gets exactly the
// events after it. `event: end` means the job stopped running: the stream is over, not dropped.
import { createParser } from "eventsource-parser";
import { apiResponse, ApiError } from "./api.js";

export interface FollowHandlers {
  /** One event as the server recorded it (untrusted: read it with event-fields.ts). */
  onEvent(event: Record<string, unknown>): void;
  /** The cursor after the events given so far: pass it back to resume after them. */
  onCursor(cursor: string): void;
  onState(state: FollowState): void;
}

export type FollowState = { phase: "connecting" | "live" | "ended" } | { phase: "retrying"; message: string; inMs: number } | { phase: "failed"; message: string };

const MAX_BACKOFF_MS = 15_000;

/** Resolves once the job's stream has ended, failed for good, or `signal` was aborted. */
export async function followRunEvents(jobId: string, handlers: FollowHandlers, options: { after?: string; signal: AbortSignal }): Promise<void> {
  let cursor = options.after;
  let backoff = 500;
  while (!options.signal.aborted) {
    handlers.onState({ phase: "connecting" });
    let ended = false;
    let streamError: string | undefined;
    try {
      const response = await apiResponse(`runs/${encodeURIComponent(jobId)}/events`, { signal: options.signal, ...(cursor !== undefined ? { lastEventId: cursor } : {}) });
      const body = response.body;
      if (!body) throw new ApiError(0, "no_body", "the server sent no event stream");
      handlers.onState({ phase: "live" });
      const parser = createParser({
        onEvent(message) {
          if (message.event === "end") {
            ended = true;
            return;
          }
          if (message.event === "error") {
            streamError = messageOf(message.data);
            return;
          }
          let event: unknown;
          try {
            event = JSON.parse(message.data);
          } catch {
            return;
          }
          if (message.id !== undefined) cursor = message.id;
          if (typeof event === "object" && event !== null && !Array.isArray(event)) handlers.onEvent(event as Record<string, unknown>);
          if (message.id !== undefined) handlers.onCursor(message.id);
          backoff = 500;
        },
      });
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (error) {
      if (options.signal.aborted) return;
      // A refusal (bad token, no such run, a cursor the server does not accept) will not get better by retrying.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) {
        handlers.onState({ phase: "failed", message: error.message });
        return;
      }
      streamError = error instanceof Error ? error.message : String(error);
    }
    if (options.signal.aborted) return;
    if (ended) {
      handlers.onState({ phase: "ended" });
      return;
    }
    handlers.onState({ phase: "retrying", message: streamError ?? "the event stream was cut", inMs: backoff });
    await sleep(backoff, options.signal);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}

function messageOf(data: string): string {
  try {
    const parsed = JSON.parse(data) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // Not JSON: the text itself is the best there is.
  }
  return data.slice(0, 500);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

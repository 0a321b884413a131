// A run's events from perstack serve's GET /v1/runs/{jobId}/events (Server-Sent Events, src/server/event-feed.ts):
// `id:` is a cursor of what has been given, `event:` the type, `data:` the event as events.jsonl records it, then
// `event: end` once the run is over. The wire format is parsed by eventsource-parser.
//
// A connection that drops (a proxy timing out, the server restarting, silence past the keep-alives) is opened again
// with Last-Event-ID, so every event comes exactly once; after a bounded number of attempts in a row without an event
// the follow gives up with a ServerFailedError saying how to pick the run up again. A 4xx is the caller's mistake and
// is never retried.
//
// The events are hostile input: the agent shaped them, and the server or anything between may be wrong.
// checkRemoteEvent holds each one to the event schema the collector holds the agent's output to, and to the job it
// must belong to, before anything prints it.
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ServerFailedError, ServerRefusedError } from "../errors.js";
import { emittedEvent } from "../model/event-messages.js";
import { perstackEventSchema } from "../model/event-schema.js";
import type { PerstackEvent } from "../model/perstack.js";
import type { ServerClient } from "./server-client.js";

export interface RemoteEventMessage {
  /** The cursor after this event (its SSE id), when the server sent one. */
  id: string | undefined;
  /** The SSE event type (the event's own type, for events the server could name). */
  type: string | undefined;
  data: string;
}

export interface FollowOptions {
  /** Resume after this cursor (an earlier event's id); none: from the job's first event. */
  after?: string;
  signal?: AbortSignal;
  /** Connection attempts in a row that bring no event before giving up. Default 6. */
  maxAttempts?: number;
  /** The wait before attempt n (n >= 2); default 0.5 s doubling up to 8 s. */
  retryDelayMs?: (attempt: number) => number;
  /** Silence (not even a keep-alive) after which the connection counts as dropped. Default 45 s (keep-alives: 15 s). */
  idleMs?: number;
  /**
   * Once the server has said `end`: whether the run is still queued or going after all, so the stream is opened
   * again from where it ended (a continuation the server has not started writing yet ends its stream at once).
   */
  stillGoing?: () => Promise<boolean>;
  /** Stop, as if the stream had ended, once no event came for this long: a snapshot of a running job. */
  snapshotIdleMs?: number;
  /** A connection dropped and is opened again (attempt counts from 2). */
  onReconnect?: (attempt: number, reason: string) => void;
}

/** The largest SSE event buffered: the server skips event lines over 64 MiB (event-feed.ts). */
const MAX_EVENT_CHARS = 80 * 1024 * 1024;
const DEFAULT_ATTEMPTS = 6;
const DEFAULT_IDLE_MS = 45_000;
const STILL_GOING_POLL_MS = 500;

const defaultDelay = (attempt: number) => Math.min(8_000, 500 * 2 ** Math.max(0, attempt - 2));

/** Follows job `jobId`'s events until the server says the run is over (or `signal` aborts: the iteration ends). */
export async function* followRunEvents(client: ServerClient, jobId: string, options: FollowOptions = {}): AsyncGenerator<RemoteEventMessage> {
  let cursor = options.after;
  let failures = 0;
  const maxAttempts = options.maxAttempts ?? DEFAULT_ATTEMPTS;
  const delay = options.retryDelayMs ?? defaultDelay;
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) return;
    const connection = new AbortController();
    const stop = () => connection.abort();
    options.signal?.addEventListener("abort", stop, { once: true });
    let reason: string;
    let ended = false;
    try {
      let response: Response;
      try {
        response = await client.openEvents(jobId, cursor, connection.signal);
      } catch (error) {
        if (options.signal?.aborted) return;
        if (error instanceof ServerRefusedError) throw error;
        throw new Dropped((error as Error).message);
      }
      const queue: EventSourceMessage[] = [];
      let serverError: string | undefined;
      let tooLarge = false;
      const parser = createParser({
        onEvent: (message) => {
          if (message.event === "end") ended = true;
          else if (message.event === "error") serverError = errorText(message.data);
          else if (!ended) queue.push(message);
        },
        onError: (error) => {
          if (error.type === "max-buffer-size-exceeded") tooLarge = true;
        },
        maxBufferSize: MAX_EVENT_CHARS,
      });
      const decoder = new TextDecoder();
      const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
      if (!reader) throw new Dropped("the answer has no body");
      let lastEventAt = Date.now();
      try {
        for (;;) {
          const chunk = await readWithin(reader, options.idleMs ?? DEFAULT_IDLE_MS, options.snapshotIdleMs === undefined ? undefined : Math.max(0, lastEventAt + options.snapshotIdleMs - Date.now()));
          if (chunk === "snapshot") return;
          if (chunk === "idle") throw new Dropped(`no data for ${Math.round((options.idleMs ?? DEFAULT_IDLE_MS) / 1000)} s`);
          if (chunk.done) break;
          parser.feed(decoder.decode(chunk.value, { stream: true }));
          if (tooLarge) throw new ServerFailedError(`the server at ${client.base} sent an event of job ${jobId} larger than ${MAX_EVENT_CHARS} characters; it was not read`);
          for (const message of queue.splice(0)) {
            if (message.id !== undefined) cursor = message.id;
            failures = 0;
            lastEventAt = Date.now();
            yield { id: message.id, type: message.event, data: message.data };
            if (options.signal?.aborted) return;
          }
          if (ended) break;
        }
      } finally {
        void reader.cancel().catch(() => {});
      }
      if (ended) {
        if (options.stillGoing && (await options.stillGoing())) {
          failures = 0;
          await sleep(STILL_GOING_POLL_MS, options.signal);
          continue;
        }
        return;
      }
      reason = serverError !== undefined ? `the server said: ${serverError}` : "the connection closed before the run ended";
    } catch (error) {
      if (options.signal?.aborted) return;
      if (!(error instanceof Dropped)) {
        // A read cut by the network surfaces as a TypeError from the body stream: a drop like any other.
        if (error instanceof ServerRefusedError || error instanceof ServerFailedError || !(error instanceof TypeError)) throw error;
        reason = error.message;
      } else {
        reason = error.message;
      }
    } finally {
      options.signal?.removeEventListener("abort", stop);
      connection.abort();
    }
    failures += 1;
    if (failures >= maxAttempts) {
      throw new ServerFailedError(
        `lost job ${jobId}'s events from ${client.base} ${failures} times in a row (last: ${reason}); the run goes on there: follow it with perstack log --server ${client.base} --job ${jobId}, or see perstack jobs --server ${client.base}`,
      );
    }
    options.onReconnect?.(attempt + 1, reason);
    await sleep(delay(failures + 1), options.signal);
  }
}

/** The id of the last event of everything the job has recorded so far: where following its next invocation starts. */
export async function cursorAtEnd(client: ServerClient, jobId: string, signal?: AbortSignal): Promise<string | undefined> {
  let cursor: string | undefined;
  for await (const message of followRunEvents(client, jobId, { ...(signal ? { signal } : {}) })) if (message.id !== undefined) cursor = message.id;
  return cursor;
}

export type CheckedEvent = { ok: true; event: PerstackEvent; record: Record<string, unknown> } | { ok: false; reason: string };

/**
 * An event's data as the server sent it, held to the event schema and to its job. `record` is the event as
 * events.jsonl holds it (continueToNextStep's nextCheckpoint by its changes, tool calls by what they add to their
 * message); `event` is the checked event, as the collector emitted it.
 */
export function checkRemoteEvent(data: string, jobId: string): CheckedEvent {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { ok: false, reason: "its data is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, reason: "its data is not an object" };
  const record = value as Record<string, unknown>;
  let whole: Record<string, unknown>;
  try {
    whole = emittedEvent(record);
  } catch (error) {
    return { ok: false, reason: `${typeName(record)}: ${(error as Error).message}` };
  }
  const parsed = perstackEventSchema.safeParse(whole);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    return { ok: false, reason: `${typeName(record)} does not match the event schema (${where}${issue?.message ?? "invalid"})` };
  }
  const event = parsed.data;
  if (event.jobId !== jobId) return { ok: false, reason: `${typeName(record)} names job ${JSON.stringify(event.jobId).slice(0, 80)}, not ${jobId}` };
  return { ok: true, event, record };
}

function typeName(record: Record<string, unknown>): string {
  return typeof record.type === "string" ? `event "${record.type.slice(0, 60)}"` : "an event without a type";
}

function errorText(data: string): string {
  try {
    const message = (JSON.parse(data) as { message?: unknown }).message;
    if (typeof message === "string") return message.slice(0, 500);
  } catch {
    // not the server's shape
  }
  return data.slice(0, 500);
}

/** A connection that ended before the run did, and why: the follow opens another. */
class Dropped extends Error {}

type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>> | "idle" | "snapshot";

/** The next chunk, or "idle" after `idleMs` of silence, or "snapshot" once `snapshotMs` has passed. */
async function readWithin(reader: ReadableStreamDefaultReader<Uint8Array>, idleMs: number, snapshotMs: number | undefined): Promise<ReadResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"idle" | "snapshot">((resolve) => {
    const snapshotFirst = snapshotMs !== undefined && snapshotMs < idleMs;
    timer = setTimeout(() => resolve(snapshotFirst ? "snapshot" : "idle"), snapshotFirst ? snapshotMs : idleMs);
  });
  try {
    return await Promise.race([reader.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

// The client half of perstack serve's API (src/server/api.ts) for `--server`: one fetch per route, the tenant's bearer
// token on each, the answers checked against what the API documents before anything reads them (a server, or what
// sits between it and us, is not trusted to send what it should), and every failure one of the project's errors:
// - the server cannot be reached: ServerUnreachableError (exit 1), one line naming the server and why;
// - a 4xx: ServerRefusedError (exit 2, bad input) with the server's own message (`{error: {code, message}}`);
// - a 5xx, a 429, a redirect, or an answer this client cannot read: ServerFailedError (exit 1).
// Redirects are not followed: the token must never go to a URL the user did not name.
import { openAsBlob } from "node:fs";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { z } from "zod";
import { ServerFailedError, ServerRefusedError, ServerUnreachableError } from "../errors.js";
import { safeIdSchema } from "../model/id-schema.js";
import { packagePath } from "../package-root.js";
import type { ServerTarget } from "./server-target.js";

const VERSION = (JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version: string }).version;

/** How long an answer of a plain request may take; uploads, downloads and event streams have their own bounds. */
const REQUEST_TIMEOUT_MS = 60_000;
const TRANSFER_TIMEOUT_MS = 30 * 60_000;
/** The most of an error body read: the message is one line for the user. */
const MAX_ERROR_MESSAGE = 2_000;

const numberish = z.number().optional();

/** A run as GET /v1/runs/{jobId} describes it (runSchema in src/server/api-schemas.ts). */
export const runViewSchema = z.looseObject({
  jobId: safeIdSchema,
  /** queued, running, cancelled, or job.json's status once the run has ended. */
  status: z.string(),
  position: z.number().int().optional(),
  submittedAt: z.number(),
  startedAt: numberish,
  finishedAt: numberish,
  expert: z.string().optional(),
  runtime: z.string().optional(),
  totalSteps: z.number().int().min(0).optional(),
  usage: z
    .looseObject({ inputTokens: numberish, outputTokens: numberish, reasoningTokens: numberish, totalTokens: numberish, cachedInputTokens: numberish })
    .optional(),
  latestCheckpointId: safeIdSchema.optional(),
  reason: z.string().optional(),
  costUsd: numberish,
});
export type RunView = z.infer<typeof runViewSchema>;

const submittedSchema = z.looseObject({ jobId: safeIdSchema, status: z.string(), position: z.number().int() });
export type Submitted = z.infer<typeof submittedSchema>;
const runListSchema = z.looseObject({ runs: z.array(runViewSchema), next: z.string().regex(/^[0-9]{1,15}$/).optional() });
const cancelSchema = z.looseObject({ jobId: safeIdSchema, status: z.string() });
const submissionCancelSchema = z.looseObject({ status: z.string(), jobId: safeIdSchema.optional() });
const comparisonRunSchema = z.looseObject({ runtime: z.string(), jobId: safeIdSchema, status: z.string() });
const comparisonSubmittedSchema = z.looseObject({ id: safeIdSchema, runs: z.array(comparisonRunSchema) });
const comparisonViewSchema = z.looseObject({
  id: safeIdSchema,
  status: z.enum(["running", "done"]),
  runs: z.array(comparisonRunSchema),
  comparison: z.record(z.string(), z.unknown()).optional(),
});
export type ComparisonView = z.infer<typeof comparisonViewSchema>;
const errorBodySchema = z.looseObject({ error: z.looseObject({ code: z.string(), message: z.string() }) });

/** Statuses of a run that has not ended. */
export const GOING_STATUSES: ReadonlySet<string> = new Set(["queued", "running"]);

export interface RunSubmission {
  config: string;
  expert: string;
  query: string;
  runtime?: string;
  model?: string;
  limits?: { maxDurationMs?: number; maxOutputBytes?: number; memoryBytes?: number };
  budgets?: { maxCostUsd?: number; maxTokens?: number };
}

export interface ComparisonSubmission {
  config: string;
  expert: string;
  query: string;
  runtimes: string[];
  model?: string;
  /** The workspace as a base64 tar.gz. */
  workspace?: string;
}

interface SendOptions {
  body?: FormData | string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Bound on the request and its answer (its headers only when `streaming`); default REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** The answer is a stream read as long as it lasts (SSE): the timeout stops once its headers are in. */
  streaming?: boolean;
}

export class ServerClient {
  constructor(
    private readonly target: ServerTarget,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** The server's URL, as messages and answer commands name it. */
  get base(): string {
    return this.target.base;
  }

  /** POST /v1/runs as a multipart form: the fields, and the workspace tar.gz at `workspaceFile` as its file part. */
  /** `key`: the submission's Idempotency-Key, by which it can be cancelled before its answer comes (cancelSubmission). */
  async submitRun(submission: RunSubmission, workspaceFile: string | undefined, signal?: AbortSignal, key?: string): Promise<Submitted> {
    const form = new FormData();
    const { limits, budgets, ...text } = submission;
    for (const [name, value] of Object.entries(text)) if (value !== undefined) form.append(name, value);
    if (limits && Object.keys(limits).length > 0) form.append("limits", JSON.stringify(limits));
    if (budgets && Object.keys(budgets).length > 0) form.append("budgets", JSON.stringify(budgets));
    // A file-backed blob: the archive is streamed from disk, never held in memory whole.
    if (workspaceFile !== undefined) form.append("workspace", await openAsBlob(workspaceFile, { type: "application/gzip" }), "workspace.tar.gz");
    return this.json("POST", "/v1/runs", submittedSchema, { body: form, timeoutMs: TRANSFER_TIMEOUT_MS, ...(signal ? { signal } : {}), ...keyHeader(key) });
  }

  getRun(jobId: string, signal?: AbortSignal): Promise<RunView> {
    return this.json("GET", `/v1/runs/${encodeURIComponent(jobId)}`, runViewSchema, signal ? { signal } : {});
  }

  /** One page of the tenant's runs, newest first (one row per submission: a continued job has several). */
  listRuns(options: { limit?: number; before?: string } = {}): Promise<{ runs: RunView[]; next?: string | undefined }> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 200), ...(options.before !== undefined ? { before: options.before } : {}) });
    return this.json("GET", `/v1/runs?${query}`, runListSchema);
  }

  /** cancelled (it was queued), stopping (it was going) or ended. */
  async cancelRun(jobId: string): Promise<string> {
    return (await this.json("POST", `/v1/runs/${encodeURIComponent(jobId)}/cancel`, cancelSchema)).status;
  }

  continueRun(jobId: string, body: { query?: string; interactiveAnswer?: string; checkpointId?: string }, signal?: AbortSignal, key?: string): Promise<Submitted> {
    return this.json("POST", `/v1/runs/${encodeURIComponent(jobId)}/continue`, submittedSchema, { ...jsonBody(body, signal), ...keyHeader(key) });
  }

  /** Cancels the submission sent with Idempotency-Key `key`: the run it made (its jobId and status), or that it ever runs. */
  cancelSubmission(key: string): Promise<{ status: string; jobId?: string | undefined }> {
    return this.json("POST", `/v1/submissions/${encodeURIComponent(key)}/cancel`, submissionCancelSchema);
  }

  /** A checkpoint whole, as the server read it back; the caller checks it (it is the agent's as much as the server's). */
  getCheckpoint(jobId: string, checkpointId: string): Promise<unknown> {
    return this.json("GET", `/v1/runs/${encodeURIComponent(jobId)}/checkpoints/${encodeURIComponent(checkpointId)}`, z.unknown());
  }

  /** GET /v1/runs/{jobId}/events: the open response, its body the SSE stream. */
  openEvents(jobId: string, lastEventId: string | undefined, signal: AbortSignal): Promise<Response> {
    return this.send("GET", `/v1/runs/${encodeURIComponent(jobId)}/events`, {
      headers: { accept: "text/event-stream", ...(lastEventId !== undefined ? { "last-event-id": lastEventId } : {}) },
      signal,
      // Headers come at once, even for a queued run; the stream itself is watched for silence by its reader.
      streaming: true,
    });
  }

  /** GET /v1/runs/{jobId}/workspace: the run's workspace as a tar.gz stream. */
  async downloadWorkspace(jobId: string, signal?: AbortSignal): Promise<Readable> {
    const response = await this.send("GET", `/v1/runs/${encodeURIComponent(jobId)}/workspace`, { headers: { accept: "application/gzip" }, timeoutMs: TRANSFER_TIMEOUT_MS, ...(signal ? { signal } : {}) });
    if (!response.body) throw new ServerFailedError(`the server at ${this.base} sent job ${jobId}'s workspace without a body`);
    return Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
  }

  submitComparison(submission: ComparisonSubmission, signal?: AbortSignal): Promise<z.infer<typeof comparisonSubmittedSchema>> {
    return this.json("POST", "/v1/comparisons", comparisonSubmittedSchema, { ...jsonBody(submission, signal), timeoutMs: TRANSFER_TIMEOUT_MS });
  }

  getComparison(id: string, signal?: AbortSignal): Promise<ComparisonView> {
    return this.json("GET", `/v1/comparisons/${encodeURIComponent(id)}`, comparisonViewSchema, signal ? { signal } : {});
  }

  /** report.html as the server renders it. */
  async getComparisonReport(id: string): Promise<string> {
    const response = await this.send("GET", `/v1/comparisons/${encodeURIComponent(id)}/report`, { headers: { accept: "text/html" } });
    return response.text();
  }

  /** A request whose JSON answer must match `schema`. */
  async json<S extends z.ZodType>(method: string, path: string, schema: S, options: SendOptions = {}): Promise<z.infer<S>> {
    const response = await this.send(method, path, { ...options, headers: { accept: "application/json", ...options.headers } });
    let body: unknown;
    try {
      body = await response.json();
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if ((error as Error).name === "AbortError") throw new ServerUnreachableError(`the server at ${this.base} did not finish answering ${method} ${pathOnly(path)} in time; try again`);
      throw new ServerFailedError(`the server at ${this.base} answered ${method} ${pathOnly(path)} with a body that is not JSON; is ${this.base} a perstack serve?`);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
      throw new ServerFailedError(`the server at ${this.base} answered ${method} ${pathOnly(path)} with a body this perstack cannot read (${where}${issue?.message ?? "invalid"}); update perstack, or check ${this.base}`);
    }
    return parsed.data as z.infer<S>;
  }

  /** A request; an answer that is not a 2xx is thrown as the error it maps to. */
  async send(method: string, path: string, options: SendOptions = {}): Promise<Response> {
    const what = `${method} ${pathOnly(path)}`;
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.target.token}`,
          "user-agent": `perstack-sandbox/${VERSION}`,
          ...(typeof options.body === "string" ? { "content-type": "application/json" } : {}),
          ...options.headers,
        },
        redirect: "manual",
        ...(options.body !== undefined ? { body: options.body } : {}),
        signal,
      });
    } catch (error) {
      clearTimeout(timer);
      if (options.signal?.aborted) throw error;
      if (timeout.signal.aborted) throw new ServerUnreachableError(`the server at ${this.base} did not answer ${what} within ${Math.round(timeoutMs / 1000)} s; check that it is up, or try again`);
      throw new ServerUnreachableError(`cannot reach the server at ${this.base}: ${networkReason(error)}; check --server (or PERSTACK_SERVER) and that perstack serve runs there`);
    }
    // A stream is read for as long as it lasts (its reader watches for silence); any other answer stays bounded
    // while its body is read, and the timer must not keep the process alive.
    if (options.streaming || !response.ok) clearTimeout(timer);
    else timer.unref();
    if (response.ok) return response;
    throw await this.failure(response, what);
  }

  private async failure(response: Response, what: string): Promise<Error> {
    const status = response.status;
    if (status >= 300 && status < 400) {
      void response.body?.cancel();
      const location = response.headers.get("location");
      return new ServerFailedError(`the server at ${this.base} redirected ${what} ${location ? `to ${clip(location, 200)} ` : ""}(${status}); give the URL it redirects to as --server`);
    }
    let text = "";
    try {
      text = await response.text();
    } catch {
      // no body to read: the status says enough
    }
    let code = "";
    let message = "";
    try {
      const parsed = errorBodySchema.safeParse(JSON.parse(text));
      if (parsed.success) {
        code = parsed.data.error.code;
        message = clip(parsed.data.error.message.replace(/\s+/g, " ").trim(), MAX_ERROR_MESSAGE);
      }
    } catch {
      // not the API's error shape (a proxy's page): named by its status only
    }
    const said = message !== "" ? message : `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ""}`;
    if (status === 401) return new ServerRefusedError(`the server at ${this.base} refused the token: ${said}; check PERSTACK_TOKEN (or --token)`, status, code || "unauthorized");
    if (status === 429) {
      const retry = response.headers.get("retry-after");
      return new ServerFailedError(`the server at ${this.base} is not taking more now: ${said}${retry && /^\d{1,6}$/.test(retry) ? ` (try again in ${retry} s)` : ""}`);
    }
    if (status >= 400 && status < 500) return new ServerRefusedError(`the server at ${this.base} refused ${what}: ${said}`, status, code || "bad_request");
    return new ServerFailedError(`the server at ${this.base} failed ${what}: ${said}; see the server's log, or try again`);
  }
}

function keyHeader(key: string | undefined): Pick<SendOptions, "headers"> {
  return key === undefined ? {} : { headers: { "idempotency-key": key } };
}

function jsonBody(value: unknown, signal: AbortSignal | undefined): SendOptions {
  return { body: JSON.stringify(value), ...(signal ? { signal } : {}) };
}

/** The path without its query, for messages. */
function pathOnly(path: string): string {
  const at = path.indexOf("?");
  return at === -1 ? path : path.slice(0, at);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const CERTIFICATE_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;

/** Why a connection failed, in words: undici wraps the system's error as `cause`. */
export function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause ?? error;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? "";
  if (code === "ECONNREFUSED") return "connection refused (ECONNREFUSED)";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `no such host (${code})`;
  if (code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT") return `the connection timed out (${code})`;
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return `the connection was reset (${code})`;
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return `no route to the host (${code})`;
  if (CERTIFICATE_CODES.test(code)) return `its TLS certificate is not trusted here (${code}); if it is signed by your own CA, point NODE_EXTRA_CA_CERTS at that CA's PEM file`;
  if (code === "EPROTO" || code === "ERR_SSL_WRONG_VERSION_NUMBER") return `the TLS handshake failed (${code}): is it an http:// server?`;
  const message = cause instanceof Error ? cause.message : String(cause);
  return code ? `${clip(message, 200)} (${code})` : clip(message, 200);
}

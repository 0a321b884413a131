// Every call the console makes: to its own origin's /v1, with the tenant's bearer token. The token lives in
// sessionStorage only (gone with the tab, never sent by the browser on its own as a cookie would be). URLs are
// relative to the page, so a console served under a path prefix calls the API under the same prefix.
import type { CheckpointSummary, Comparison, ComparisonSummary, RunList, RunRecord, Session } from "./api-types.js";

const TOKEN_KEY = "perstack.token";

export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * `perstack ui` prints a URL with `#token=<t>`: the fragment never reaches a server or a Referer. It is taken from
 * the address bar at once, so it stays out of history and of screenshots.
 */
export function takeTokenFromFragment(): string | undefined {
  const hash = window.location.hash;
  if (!hash.startsWith("#token=")) return undefined;
  const token = new URLSearchParams(hash.slice(1)).get("token") ?? "";
  window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/runs`);
  return token === "" ? undefined : token;
}

/** An API error, with the server's message (already in words a user can act on). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let onUnauthorized: (message: string) => void = () => {};

/** What to do when the token stops being accepted (rotated, removed): the app signs out and says why. */
export function whenUnauthorized(handler: (message: string) => void): void {
  onUnauthorized = handler;
}

export function authHeaders(token = storedToken()): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

interface RequestOptions {
  method?: "GET" | "POST";
  body?: unknown;
  signal?: AbortSignal;
  /** Sign-in checks a token that is not stored yet. */
  token?: string;
  /** An event stream resumed after this cursor. */
  lastEventId?: string;
}

/** A /v1 call's response, once it is known to be a success; an ApiError otherwise. */
export async function apiResponse(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders(options.token ?? storedToken()) };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  let response: Response;
  try {
    response = await fetch(`v1/${path}`, {
      method: options.method ?? "GET",
      headers,
      cache: "no-store",
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new ApiError(0, "unreachable", "the server cannot be reached; is perstack still running?");
  }
  if (response.ok) return response;
  const error = await errorOf(response);
  if (error.status === 401 && options.token === undefined) onUnauthorized(error.message);
  throw error;
}

export async function errorOf(response: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const error = typeof body === "object" && body !== null ? (body as { error?: { code?: unknown; message?: unknown } }).error : undefined;
  const message = typeof error?.message === "string" ? error.message : `the server answered ${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, typeof error?.code === "string" ? error.code : "http", message);
}

async function json<T>(path: string, options?: RequestOptions): Promise<T> {
  return (await (await apiResponse(path, options)).json()) as T;
}

const id = (value: string) => encodeURIComponent(value);

export const api = {
  session: (token?: string) => json<Session>("session", token === undefined ? {} : { token }),
  runs: (query: { status?: string; limit?: number; before?: string }) => {
    const params = new URLSearchParams();
    if (query.status) params.set("status", query.status);
    if (query.limit) params.set("limit", String(query.limit));
    if (query.before) params.set("before", query.before);
    return json<RunList>(`runs?${params}`);
  },
  run: (jobId: string) => json<RunRecord>(`runs/${id(jobId)}`),
  submitRun: (body: Record<string, unknown>) => json<{ jobId: string; position: number }>("runs", { method: "POST", body }),
  cancel: (jobId: string) => json<{ status: string }>(`runs/${id(jobId)}/cancel`, { method: "POST" }),
  continueRun: (jobId: string, body: { query?: string; interactiveAnswer?: string; checkpointId?: string }) =>
    json<{ jobId: string; position: number }>(`runs/${id(jobId)}/continue`, { method: "POST", body }),
  checkpoints: (jobId: string) => json<{ checkpoints: CheckpointSummary[] }>(`runs/${id(jobId)}/checkpoints`),
  checkpoint: (jobId: string, checkpointId: string) => json<Record<string, unknown>>(`runs/${id(jobId)}/checkpoints/${id(checkpointId)}`),
  diff: async (jobId: string) => (await apiResponse(`runs/${id(jobId)}/diff`)).text(),
  workspace: async (jobId: string) => (await apiResponse(`runs/${id(jobId)}/workspace`)).blob(),
  comparisons: () => json<{ comparisons: ComparisonSummary[] }>("comparisons"),
  comparison: (comparisonId: string) => json<Comparison>(`comparisons/${id(comparisonId)}`),
  submitComparison: (body: Record<string, unknown>) => json<{ id: string }>("comparisons", { method: "POST", body }),
  report: async (comparisonId: string) => (await apiResponse(`comparisons/${id(comparisonId)}/report`)).text(),
  /** A short-lived link a frame can open without the token; only a path of this origin's /reports/ is taken. */
  reportLink: async (comparisonId: string) => {
    const link = await json<{ url: string }>(`comparisons/${id(comparisonId)}/report-link`);
    if (!/^\/reports\/[^/?#]+\/[^/?#]+\?[^#]*$/.test(link.url)) throw new Error("the server gave a report link that is not one of its own");
    return link;
  },
};

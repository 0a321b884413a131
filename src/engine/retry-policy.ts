// Which generation failures are worth another attempt, and how long to wait. Pure.
import { APICallError } from "ai";
import { BUDGET_EXCEEDED_PREFIX } from "../gateway/budget.js";
import type { CheckpointError } from "../model/perstack.js";

export interface ClassifiedError extends CheckpointError {
  /** Seconds the server asked us to wait (Retry-After), when it said. */
  retryAfterMs?: number;
}

const RETRYABLE_STATUS = (status: number) => status === 408 || status === 409 || status === 429 || status >= 500;
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT"]);

export function classifyGenerationError(error: unknown): ClassifiedError {
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    // The provider gateway refused the call because the run's budget is spent: the run ends for that reason, the same
    // whether the engine or the host (told by the gateway's own record) stops it first.
    if (status === 402 && apiMessage(error).startsWith(BUDGET_EXCEEDED_PREFIX)) {
      return { name: "BudgetExceeded", message: apiMessage(error).slice(BUDGET_EXCEEDED_PREFIX.length), statusCode: status, isRetryable: false };
    }
    const retryAfter = retryAfterMs(error.responseHeaders);
    return {
      name: "APICallError",
      message: status ? `${status}: ${apiMessage(error)}` : apiMessage(error),
      ...(status !== undefined ? { statusCode: status } : {}),
      isRetryable: status !== undefined ? RETRYABLE_STATUS(status) : error.isRetryable,
      ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
    };
  }
  const err = error instanceof Error ? error : new Error(String(error));
  if (err.name === "TimeoutError" || err.name === "GenerationTimeout") {
    return { name: "GenerationTimeout", message: err.message, isRetryable: true };
  }
  const code = (err as { code?: string }).code ?? (err.cause as { code?: string } | undefined)?.code;
  if ((code && NETWORK_CODES.has(code)) || err.message === "fetch failed") {
    return { name: "NetworkError", message: `${err.message}${code ? ` (${code})` : ""}`, isRetryable: true };
  }
  return { name: err.name || "Error", message: err.message, isRetryable: false };
}

/** Exponential backoff from 1 s, doubling, at most 30 s; a server's Retry-After wins up to 60 s. */
export function backoffMs(attempt: number, retryAfter?: number): number {
  if (retryAfter !== undefined) return Math.min(retryAfter, 60_000);
  return Math.min(1_000 * 2 ** (attempt - 1), 30_000);
}

function retryAfterMs(headers: Record<string, string> | undefined): number | undefined {
  const value = headers?.["retry-after-ms"] ?? undefined;
  if (value !== undefined && Number.isFinite(Number(value))) return Number(value);
  const seconds = headers?.["retry-after"];
  if (seconds === undefined) return undefined;
  if (Number.isFinite(Number(seconds))) return Number(seconds) * 1000;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The provider's own error message when its body has one, else the SDK's. */
function apiMessage(error: APICallError): string {
  try {
    const body = JSON.parse(error.responseBody ?? "") as { error?: { message?: string } | string; message?: string };
    const message = typeof body.error === "string" ? body.error : (body.error?.message ?? body.message);
    if (message) return message;
  } catch {
    // not JSON: fall through
  }
  return error.message;
}

// The small vocabulary every protocol reader shares: reading a token count out of an untrusted body, and
// turning one protocol's counts into a MeteredUsage. Bodies come from an upstream (or a fake, or something in
// between), so a count is only believed when it is a finite, non-negative, safe integer.
import type { MeteredUsage } from "../types.js";

/** What a meter hands back at the end of a response. */
export type MeterResult = { usage: MeteredUsage; model?: string };

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A token count, or undefined for anything that is not a finite non-negative integer. */
export function tokenCount(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** The count at `record[key]`, reading through one nested record when `key` is `[outer, inner]`. */
export function countAt(record: Record<string, unknown>, key: string | readonly [string, string]): number | undefined {
  if (typeof key === "string") return tokenCount(record[key]);
  const inner = record[key[0]];
  return isRecord(inner) ? tokenCount(inner[key[1]]) : undefined;
}

/** A model name as the response gave it: a short, printable string, else undefined. */
export function modelName(value: unknown): string | undefined {
  // The name ends up in events.jsonl and in price lookups; a hostile body must not smuggle control characters
  // or megabytes into either.
  if (typeof value !== "string" || value.length === 0 || value.length > 200) return undefined;
  return /^[\x20-\x7e]+$/.test(value) ? value : undefined;
}

/**
 * Builds the usage record. `inputTokens` must already include cached and cache-write tokens (MeteredUsage's
 * convention); totalTokens is input + output, the same sum on every protocol, so budgets and comparisons
 * across runtimes count alike (vendors' own totals differ in what they include).
 */
export function meteredUsage(counts: Partial<Omit<MeteredUsage, "totalTokens">>): MeteredUsage {
  const inputTokens = counts.inputTokens ?? 0;
  const outputTokens = counts.outputTokens ?? 0;
  return {
    inputTokens,
    outputTokens,
    reasoningTokens: counts.reasoningTokens ?? 0,
    cachedInputTokens: counts.cachedInputTokens ?? 0,
    cacheWriteTokens: counts.cacheWriteTokens ?? 0,
    totalTokens: inputTokens + outputTokens,
  };
}

/** The sum of counts, treating missing ones as 0 (undefined only when all are missing). */
export function sumCounts(...counts: Array<number | undefined>): number | undefined {
  if (counts.every((c) => c === undefined)) return undefined;
  return counts.reduce<number>((sum, c) => sum + (c ?? 0), 0);
}

/**
 * Reads one protocol's usage out of the JSON values a response carries: a whole JSON body, each SSE event's
 * data, each NDJSON line, each element of a streamed JSON array, each event-stream message. Never throws.
 */
export interface UsageReader {
  /** `event` is the SSE event name or the event-stream `:event-type`, when the framing has one. */
  observe(value: unknown, event?: string): void;
  result(): MeterResult | undefined;
}

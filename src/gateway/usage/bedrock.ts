// Usage of Amazon Bedrock's runtime API.
//
// Converse (JSON): `usage {inputTokens, outputTokens, totalTokens, cacheReadInputTokens, cacheWriteInputTokens}`.
// ConverseStream (AWS event-stream, see event-stream.ts): the `metadata` event's payload carries the same
// `usage`. Bedrock's inputTokens leaves out cache reads and writes (as Anthropic's input_tokens does), so
// MeteredUsage's inputTokens is their sum.
// InvokeModel / InvokeModelWithResponseStream carry the model's own format; for Claude that is Anthropic's
// Messages body, or its stream events base64-encoded in each `chunk` event's `bytes`, read by anthropic.ts. The
// stream's last chunk also has `amazon-bedrock-invocationMetrics {inputTokenCount, outputTokenCount}`, used only
// when the body carried no usage of its own.
// Converse responses name no model; the gateway falls back to the model in the request path.
import type { MeteredUsage } from "../types.js";
import { anthropicUsageReader } from "./anthropic.js";
import { MAX_BUFFERED_BYTES } from "./byte-limit.js";
import type { MeterResult, UsageReader } from "./token-counts.js";
import { countAt, isRecord, meteredUsage, sumCounts } from "./token-counts.js";

function converseUsage(usage: Record<string, unknown>): MeteredUsage | undefined {
  const input = countAt(usage, "inputTokens");
  const output = countAt(usage, "outputTokens");
  if (input === undefined && output === undefined) return undefined;
  const cacheRead = countAt(usage, "cacheReadInputTokens");
  const cacheWrite = countAt(usage, "cacheWriteInputTokens");
  return meteredUsage({
    inputTokens: sumCounts(input, cacheRead, cacheWrite),
    outputTokens: output,
    cachedInputTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
  });
}

function invocationMetricsUsage(metrics: Record<string, unknown>): MeteredUsage | undefined {
  const input = countAt(metrics, "inputTokenCount");
  const output = countAt(metrics, "outputTokenCount");
  if (input === undefined && output === undefined) return undefined;
  const cacheRead = countAt(metrics, "cacheReadInputTokenCount");
  const cacheWrite = countAt(metrics, "cacheWriteInputTokenCount");
  return meteredUsage({
    inputTokens: sumCounts(input, cacheRead, cacheWrite),
    outputTokens: output,
    cachedInputTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
  });
}

/** The JSON inside an InvokeModelWithResponseStream `chunk` event, or undefined. */
function chunkBytes(value: Record<string, unknown>): unknown {
  const bytes = value.bytes;
  // base64 is 4/3 the size of what it encodes: the same byte limit as every other buffered value.
  if (typeof bytes !== "string" || bytes.length > (MAX_BUFFERED_BYTES / 3) * 4) return undefined;
  try {
    return JSON.parse(Buffer.from(bytes, "base64").toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

export function bedrockUsageReader(): UsageReader {
  let converse: MeteredUsage | undefined;
  let metrics: MeteredUsage | undefined;
  const anthropic = anthropicUsageReader();

  const observeModelBody = (value: unknown): void => {
    if (!isRecord(value)) return;
    const invocation = value["amazon-bedrock-invocationMetrics"];
    if (isRecord(invocation)) metrics = invocationMetricsUsage(invocation) ?? metrics;
    anthropic.observe(value);
  };

  return {
    observe(value, event) {
      if (!isRecord(value)) return;
      if (event === "chunk") {
        observeModelBody(chunkBytes(value));
        return;
      }
      // A Converse body, or a ConverseStream `metadata` event's payload.
      if (isRecord(value.usage) && (event === undefined || event === "metadata")) {
        const usage = converseUsage(value.usage);
        if (usage) {
          converse = usage;
          return;
        }
      }
      if (event === undefined) observeModelBody(value);
    },
    result(): MeterResult | undefined {
      if (converse) return { usage: converse };
      const fromModel = anthropic.result();
      if (fromModel) return fromModel;
      return metrics ? { usage: metrics } : undefined;
    },
  };
}

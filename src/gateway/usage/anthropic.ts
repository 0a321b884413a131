// Usage of the Anthropic Messages API (also Claude on Vertex rawPredict and on Bedrock InvokeModel, which carry
// the same bodies).
//
// JSON: the Message's `usage {input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens}`.
// SSE: `message_start.message.usage` opens with the input and cache counts, then each `message_delta.usage`
// carries cumulative counts: output_tokens always, and newer APIs repeat the input and cache counts too (they
// grow with server tools). So each field keeps its latest value seen, never a sum.
//
// Anthropic's input_tokens excludes cached and cache-write tokens; MeteredUsage's inputTokens includes them.
import type { MeterResult, UsageReader } from "./token-counts.js";
import { countAt, isRecord, meteredUsage, modelName, sumCounts } from "./token-counts.js";

type CountField = "input_tokens" | "output_tokens" | "cache_creation_input_tokens" | "cache_read_input_tokens";
const FIELDS: readonly CountField[] = ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"];

export function anthropicUsageReader(): UsageReader {
  const latest: Partial<Record<CountField, number>> = {};
  let seen = false;
  let model: string | undefined;

  const takeUsage = (usage: unknown): void => {
    if (!isRecord(usage)) return;
    for (const field of FIELDS) {
      const count = countAt(usage, field);
      if (count === undefined) continue;
      latest[field] = count;
      seen = true;
    }
  };

  return {
    observe(value) {
      if (!isRecord(value)) return;
      if (value.type === "message_start" && isRecord(value.message)) {
        model = modelName(value.message.model) ?? model;
        takeUsage(value.message.usage);
        return;
      }
      if (value.type === "message_delta") {
        takeUsage(value.usage);
        return;
      }
      // A whole Message (non-streaming); stream events other than the two above carry no usage.
      if (value.type === "message" || (value.type === undefined && isRecord(value.usage))) {
        model = modelName(value.model) ?? model;
        takeUsage(value.usage);
      }
    },
    result(): MeterResult | undefined {
      if (!seen) return undefined;
      const usage = meteredUsage({
        inputTokens: sumCounts(latest.input_tokens, latest.cache_creation_input_tokens, latest.cache_read_input_tokens),
        outputTokens: latest.output_tokens,
        cachedInputTokens: latest.cache_read_input_tokens,
        cacheWriteTokens: latest.cache_creation_input_tokens,
      });
      return model === undefined ? { usage } : { usage, model };
    },
  };
}

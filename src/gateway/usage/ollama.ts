// Usage of Ollama's native API (/api/chat, /api/generate): one JSON object, or NDJSON whose last object has
// `done: true` and the counts `prompt_eval_count` (input) and `eval_count` (output). Ollama leaves
// prompt_eval_count out when the whole prompt came from its cache, so a missing count is 0. Ollama reports no
// cached or reasoning counts. Its /v1 endpoints speak OpenAI's format and are read by openai.ts.
import type { MeteredUsage } from "../types.js";
import type { MeterResult, UsageReader } from "./token-counts.js";
import { countAt, isRecord, meteredUsage, modelName } from "./token-counts.js";

export function ollamaUsageReader(): UsageReader {
  let usage: MeteredUsage | undefined;
  let model: string | undefined;
  return {
    observe(value) {
      if (!isRecord(value)) return;
      model = modelName(value.model) ?? model;
      if (value.done !== true) return;
      const input = countAt(value, "prompt_eval_count");
      const output = countAt(value, "eval_count");
      if (input === undefined && output === undefined) return;
      usage = meteredUsage({ inputTokens: input, outputTokens: output });
    },
    result(): MeterResult | undefined {
      if (!usage) return undefined;
      return model === undefined ? { usage } : { usage, model };
    },
  };
}

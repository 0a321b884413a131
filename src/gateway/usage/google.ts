// Usage of the Gemini API and Vertex AI's Gemini models (the same GenerateContentResponse).
//
// `usageMetadata {promptTokenCount, cachedContentTokenCount, candidatesTokenCount, thoughtsTokenCount,
// toolUsePromptTokenCount}` on the response (generateContent), or on the chunks of streamGenerateContent (SSE
// with ?alt=sse, else a streamed JSON array), where each chunk repeats the counts so far: the last one wins.
//
// promptTokenCount already includes the cached content; thoughts are billed as output but reported apart from
// the candidates, so output = candidates + thoughts; tool-use prompt tokens (results of built-in tools) are
// prompt the model read, billed as input, and reported apart from promptTokenCount.
import type { MeteredUsage } from "../types.js";
import type { MeterResult, UsageReader } from "./token-counts.js";
import { countAt, isRecord, meteredUsage, modelName, sumCounts } from "./token-counts.js";

export function geminiUsage(metadata: Record<string, unknown>): MeteredUsage | undefined {
  const prompt = countAt(metadata, "promptTokenCount");
  const candidates = countAt(metadata, "candidatesTokenCount");
  const thoughts = countAt(metadata, "thoughtsTokenCount");
  if (prompt === undefined && candidates === undefined && thoughts === undefined) return undefined;
  return meteredUsage({
    inputTokens: sumCounts(prompt, countAt(metadata, "toolUsePromptTokenCount")),
    outputTokens: sumCounts(candidates, thoughts),
    reasoningTokens: thoughts,
    cachedInputTokens: countAt(metadata, "cachedContentTokenCount"),
  });
}

export function googleUsageReader(): UsageReader {
  let usage: MeteredUsage | undefined;
  let model: string | undefined;
  return {
    observe(value) {
      if (!isRecord(value)) return;
      model = modelName(value.modelVersion) ?? model;
      if (isRecord(value.usageMetadata)) usage = geminiUsage(value.usageMetadata) ?? usage;
    },
    result(): MeterResult | undefined {
      if (!usage) return undefined;
      return model === undefined ? { usage } : { usage, model };
    },
  };
}

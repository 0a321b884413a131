// Usage of OpenAI's Responses and Chat Completions APIs, and of the services that speak them (Azure OpenAI,
// DeepSeek, Ollama's /v1, Vertex's OpenAI-compatible endpoint).
//
// Responses: `usage {input_tokens, input_tokens_details.cached_tokens, output_tokens,
// output_tokens_details.reasoning_tokens}` on the Response object (JSON), or on the `response` of the terminal
// stream event (`response.completed`, also `response.incomplete` / `response.failed`).
// Chat Completions: `usage {prompt_tokens, prompt_tokens_details.cached_tokens, completion_tokens,
// completion_tokens_details.reasoning_tokens}` on the completion, or on the one stream chunk that carries it
// (`stream_options.include_usage`); the other chunks say `usage: null`. DeepSeek reports its cache hits as
// `prompt_cache_hit_tokens` instead.
//
// Both count cached tokens inside the input and reasoning tokens inside the output, as MeteredUsage does. The
// last usage object seen wins.
import type { MeteredUsage } from "../types.js";
import type { MeterResult, UsageReader } from "./token-counts.js";
import { countAt, isRecord, meteredUsage, modelName } from "./token-counts.js";

/** The usage of either API's usage object, or undefined if it is neither. */
export function openAIUsage(usage: Record<string, unknown>): MeteredUsage | undefined {
  const responsesInput = countAt(usage, "input_tokens");
  const responsesOutput = countAt(usage, "output_tokens");
  if (responsesInput !== undefined || responsesOutput !== undefined) {
    return meteredUsage({
      inputTokens: responsesInput,
      outputTokens: responsesOutput,
      cachedInputTokens: countAt(usage, ["input_tokens_details", "cached_tokens"]),
      reasoningTokens: countAt(usage, ["output_tokens_details", "reasoning_tokens"]),
    });
  }
  const chatInput = countAt(usage, "prompt_tokens");
  const chatOutput = countAt(usage, "completion_tokens");
  if (chatInput !== undefined || chatOutput !== undefined) {
    return meteredUsage({
      inputTokens: chatInput,
      outputTokens: chatOutput,
      cachedInputTokens:
        countAt(usage, ["prompt_tokens_details", "cached_tokens"]) ?? countAt(usage, "prompt_cache_hit_tokens"),
      reasoningTokens: countAt(usage, ["completion_tokens_details", "reasoning_tokens"]),
    });
  }
  return undefined;
}

export function openAIUsageReader(): UsageReader {
  let usage: MeteredUsage | undefined;
  let model: string | undefined;

  const take = (holder: Record<string, unknown>): void => {
    model = modelName(holder.model) ?? model;
    if (isRecord(holder.usage)) usage = openAIUsage(holder.usage) ?? usage;
  };

  return {
    observe(value) {
      if (!isRecord(value)) return;
      // Responses stream events wrap the Response object; bodies and Chat chunks carry usage at the top.
      if (isRecord(value.response)) take(value.response);
      else take(value);
    },
    result(): MeterResult | undefined {
      if (!usage) return undefined;
      return model === undefined ? { usage } : { usage, model };
    },
  };
}

// One generation of a step: stream the model's answer, turning reasoning and text deltas into Perstack's
// streaming events as they arrive, and retry retryable failures (429, 5xx, timeouts, dropped connections) with
// backoff, announcing each retry. Returns the assistant message's parts, its tool calls and its usage.
import { streamText, type LanguageModel, type LanguageModelUsage, type ToolSet } from "ai";
import type { ProviderName } from "../config/schema.js";
import { emptyUsage, type TextPart, type ThinkingPart, type ToolCallPart, type Usage } from "../model/perstack.js";
import type { RunEventBody } from "./event-sink.js";
import type { ModelPrompt } from "./model-messages.js";
import { backoffMs, classifyGenerationError, type ClassifiedError } from "./retry-policy.js";

export interface GenerationRequest {
  model: LanguageModel;
  providerName: ProviderName;
  prompt: ModelPrompt;
  tools: ToolSet;
  /** "none" for the final answer after attemptCompletion: tools stay defined (the history uses them). */
  toolChoice: "auto" | "none";
  timeoutMs: number;
  maxRetries: number;
  reasoningBudget?: string | number;
  /** Emits a run event at the current step. */
  emit: (body: RunEventBody) => void;
  /** Waits between attempts; replaced in tests. */
  sleep?: (ms: number) => Promise<void>;
}

export interface GeneratedCall {
  toolCallId: string;
  toolName: string;
  args: unknown;
}

export interface Generation {
  parts: Array<TextPart | ThinkingPart | ToolCallPart>;
  text: string;
  toolCalls: GeneratedCall[];
  usage: Usage;
}

export type GenerationOutcome = { ok: true; generation: Generation } | { ok: false; error: ClassifiedError };

export async function generateWithRetry(request: GenerationRequest): Promise<GenerationOutcome> {
  const sleep = request.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return { ok: true, generation: await generateOnce(request) };
    } catch (error) {
      const classified = classifyGenerationError(error);
      if (!classified.isRetryable || attempt > request.maxRetries) {
        const tries = attempt > 1 ? ` (after ${attempt} attempts)` : "";
        return { ok: false, error: { ...withoutRetryAfter(classified), message: `${classified.message}${tries}` } };
      }
      const wait = backoffMs(attempt, classified.retryAfterMs);
      request.emit({
        type: "retry",
        reason: `${classified.name}: ${classified.message}; retrying in ${(wait / 1000).toFixed(1)} s (retry ${attempt} of ${request.maxRetries})`,
      });
      await sleep(wait);
    }
  }
}

function withoutRetryAfter(error: ClassifiedError): ClassifiedError {
  const { retryAfterMs: _, ...rest } = error;
  return rest;
}

async function generateOnce(request: GenerationRequest): Promise<Generation> {
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const result = streamText({
    model: request.model,
    ...(request.prompt.instructions ? { instructions: request.prompt.instructions } : {}),
    messages: request.prompt.messages,
    tools: request.tools,
    toolChoice: request.toolChoice,
    // Retries are ours: each one becomes a `retry` event and obeys perstack.toml's maxRetries.
    maxRetries: 0,
    abortSignal: timeout,
    // Failures arrive as error parts and are handled below; the SDK's default would also log them to stderr.
    onError: () => undefined,
    ...reasoningOptions(request.providerName, request.reasoningBudget),
  });

  const parts: Array<TextPart | ThinkingPart | ToolCallPart> = [];
  const toolCalls: GeneratedCall[] = [];
  let usage: LanguageModelUsage | undefined;
  let text = "";
  let textStarted = false;
  const reasoning = new Map<string, { text: string; signature?: string }>();
  let failure: unknown;

  try {
    for await (const part of result.fullStream) {
      switch (part.type) {
        case "reasoning-start":
        case "reasoning-delta":
        case "reasoning-end": {
          let block = reasoning.get(part.id);
          if (!block) {
            block = { text: "" };
            reasoning.set(part.id, block);
            request.emit({ type: "startStreamingReasoning" });
          }
          if (part.type === "reasoning-delta" && part.text) {
            block.text += part.text;
            request.emit({ type: "streamReasoning", delta: part.text });
          }
          const signature = (part.providerMetadata?.anthropic as { signature?: string } | undefined)?.signature;
          if (signature) block.signature = signature;
          if (part.type === "reasoning-end") {
            request.emit({ type: "completeStreamingReasoning", text: block.text });
            parts.push({ type: "thinkingPart", thinking: block.text, ...(block.signature ? { signature: block.signature } : {}) });
          }
          break;
        }
        case "text-delta":
          if (!part.text) break;
          if (!textStarted) {
            textStarted = true;
            request.emit({ type: "startStreamingRunResult" });
          }
          text += part.text;
          request.emit({ type: "streamRunResult", delta: part.text });
          break;
        case "tool-call":
          toolCalls.push({ toolCallId: part.toolCallId, toolName: part.toolName, args: part.input ?? {} });
          break;
        case "finish-step":
          usage = part.usage;
          break;
        case "error":
          failure ??= part.error;
          break;
        case "abort":
          failure ??= timeout.aborted ? timeoutError(request.timeoutMs) : new Error("the generation was aborted");
          break;
        default:
          break;
      }
    }
  } catch (error) {
    failure ??= timeout.aborted ? timeoutError(request.timeoutMs) : error;
  }
  if (failure === undefined && timeout.aborted) failure = timeoutError(request.timeoutMs);
  if (failure !== undefined) throw failure;

  if (textStarted) request.emit({ type: "completeStreamingRunResult", text });
  if (text) parts.push({ type: "textPart", text });
  for (const call of toolCalls) parts.push({ type: "toolCallPart", toolCallId: call.toolCallId, toolName: call.toolName, args: call.args });
  return { parts, text, toolCalls, usage: toUsage(usage) };
}

function timeoutError(ms: number): Error {
  const error = new Error(`no complete answer within timeout (${ms} ms)`);
  error.name = "GenerationTimeout";
  return error;
}

export function toUsage(usage: LanguageModelUsage | undefined): Usage {
  if (!usage) return emptyUsage();
  const input = usage.inputTokens ?? 0;
  const output = usage.outputTokens ?? 0;
  return {
    inputTokens: input,
    outputTokens: output,
    reasoningTokens: usage.outputTokenDetails?.reasoningTokens ?? 0,
    totalTokens: usage.totalTokens ?? input + output,
    cachedInputTokens: usage.inputTokenDetails?.cacheReadTokens ?? 0,
  };
}

const LEVEL_TOKENS: Record<string, number> = { minimal: 1024, low: 4096, medium: 10_000, high: 31_999 };

/** perstack.toml's reasoningBudget in each provider's terms: a token budget, or an effort level. */
export function reasoningOptions(provider: ProviderName, budget: string | number | undefined): { providerOptions?: Record<string, Record<string, never>> } {
  if (budget === undefined || budget === "none" || budget === 0) return {};
  const tokens = typeof budget === "number" ? budget : (LEVEL_TOKENS[budget] ?? 4096);
  const level = typeof budget === "string" ? budget : tokens <= 1024 ? "minimal" : tokens <= 4096 ? "low" : tokens <= 10_000 ? "medium" : "high";
  const options: Record<string, unknown> = {};
  switch (provider) {
    case "anthropic":
    case "amazon-bedrock":
      options[provider === "anthropic" ? "anthropic" : "bedrock"] =
        provider === "anthropic"
          ? { thinking: { type: "enabled", budgetTokens: tokens } }
          : { reasoningConfig: { type: "enabled", budgetTokens: tokens } };
      break;
    case "openai":
    case "azure-openai":
      options.openai = { reasoningEffort: level, reasoningSummary: "auto" };
      break;
    case "google":
    case "google-vertex":
      options.google = { thinkingConfig: { thinkingBudget: tokens, includeThoughts: true } };
      break;
    default:
      return {};
  }
  return { providerOptions: options as Record<string, Record<string, never>> };
}

// Claude Code (`claude -p`) as a runtime. Flags and stream shapes: shared/reference/runtime-clis.md.
import type { ProviderConfig } from "../config/schema.js";
import type { CheckpointError, PerstackEvent, ToolResult, Usage } from "../model/perstack.js";
import type { MessageLog } from "./message-log.js";
import { RunRecorder, type AssistantPart, type RecorderContext } from "./run-recorder.js";
import { composeSystemPrompt } from "./system-prompt.js";
import type { RuntimeAdapter, RuntimeInvocation, StreamParser } from "./types.js";
import { arr, isObject, stderrSummary, str, streamObject, type Json } from "./stream-json.js";

export const CLAUDE_CODE_VERSION = "2.1.330";

/** Built-in tools (Bash, Write, ...) have no skill; they are reported under the runtime's name. */
const BUILTIN_SKILL = "claude-code";

export const claudeCode: RuntimeAdapter = {
  name: "claude-code",
  cliPackage: "@anthropic-ai/claude-code",
  cliVersion: CLAUDE_CODE_VERSION,
  providers: ["anthropic"],
  defaultProvider: "anthropic",
  defaultModel: "claude-sonnet-4-5",
  modelVendors: ["anthropic"],
  baseUrlEnv: () => "ANTHROPIC_BASE_URL",
  dockerfilePartial: "claude-code.hbs",
  keyEnv: () => [{ name: "ANTHROPIC_API_KEY", from: ["ANTHROPIC_API_KEY"] }],
  homeFiles: () => [],
  apiHosts: () => ["api.anthropic.com"],
  configEnv(provider): Record<string, string> {
    const headers = Object.entries(provider.setting?.headers ?? {});
    if (headers.length === 0) return {};
    return { ANTHROPIC_CUSTOM_HEADERS: headers.map(([name, value]) => `${name}: ${value}`).join("\n") };
  },
  fixedEnv(invocation) {
    const env: Record<string, string> = {
      // Leaves the model API as the only host the CLI contacts (no telemetry, error reporting or updates).
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_AUTOUPDATER: "1",
      DISABLE_TELEMETRY: "1",
      DISABLE_ERROR_REPORTING: "1",
      API_TIMEOUT_MS: String(invocation.timeout),
      CLAUDE_CODE_MAX_RETRIES: String(invocation.maxRetries),
      // How long an MCP server may take to start (ms); the default is short for a busy machine.
      MCP_TIMEOUT: "120000",
    };
    const thinking = thinkingTokens(invocation.reasoningBudget);
    if (thinking !== undefined) env.MAX_THINKING_TOKENS = String(thinking);
    if (invocation.baseUrl) env.ANTHROPIC_BASE_URL = invocation.baseUrl.replace(/\/+$/, "");
    return env;
  },
  command(invocation) {
    const argv = [
      "claude",
      "--print",
      "--output-format",
      "stream-json",
      "--verbose",
      // The container is the sandbox; the CLI's own permission prompts would block a headless run.
      "--permission-mode",
      "bypassPermissions",
      "--model",
      invocation.model,
      "--max-turns",
      String(invocation.maxSteps),
      "--append-system-prompt",
      composeSystemPrompt({
        instruction: invocation.expert.instruction,
        delegates: invocation.delegates,
        skills: invocation.skills,
      }),
    ];
    if (invocation.skills.length > 0) {
      argv.push("--mcp-config", JSON.stringify(mcpConfig(invocation)), "--strict-mcp-config");
      const omitted = invocation.skills.flatMap((s) => (s.omit ?? []).map((tool) => `mcp__${s.name}__${tool}`));
      if (omitted.length > 0) argv.push("--disallowedTools", ...omitted);
    }
    // "--" keeps a query that starts with "-" from being read as a flag.
    argv.push("--", invocation.query);
    return argv;
  },
  createParser: (context) => new ClaudeStreamParser(context),
};

/** reasoningBudget as Claude Code's thinking budget: a number is taken as tokens, a level as a fixed budget. */
export function thinkingTokens(budget: string | number | undefined): number | undefined {
  if (budget === undefined) return undefined;
  if (typeof budget === "number") return budget;
  return { none: 0, minimal: 1024, low: 4096, medium: 10_000, high: 31_999 }[budget];
}

/** Claude Code expands ${NAME} in MCP config env values, so the file carries names only. */
function mcpConfig(invocation: RuntimeInvocation) {
  const servers: Record<string, unknown> = {};
  for (const skill of invocation.skills) {
    if (skill.url) {
      servers[skill.name] = { type: "sse", url: skill.url };
      continue;
    }
    servers[skill.name] = {
      type: "stdio",
      command: skill.command,
      args: skill.args,
      env: Object.fromEntries(skill.envNames.map((name) => [name, `\${${name}}`])),
    };
  }
  return { mcpServers: servers };
}

export function providerSupported(provider: ProviderConfig): boolean {
  return (claudeCode.providers as readonly string[]).includes(provider.providerName);
}

interface ClaudeUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

/** Anthropic reports cached and cache-writing prompt tokens apart from input_tokens; Perstack counts them all. */
export function claudeUsage(usage: ClaudeUsage | undefined): Usage | undefined {
  if (!usage) return undefined;
  const cached = usage.cache_read_input_tokens ?? 0;
  const input = (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + cached;
  const output = usage.output_tokens ?? 0;
  return {
    inputTokens: input,
    outputTokens: output,
    reasoningTokens: 0,
    totalTokens: input + output,
    cachedInputTokens: cached,
  };
}

/** `mcp__<server>__<tool>` names MCP tools; everything else is a built-in tool. */
export function splitToolName(name: string): { skillName: string; toolName: string } {
  const match = /^mcp__(.+?)__(.+)$/.exec(name);
  return match ? { skillName: match[1]!, toolName: match[2]! } : { skillName: BUILTIN_SKILL, toolName: name };
}

export class ClaudeStreamParser implements StreamParser {
  private readonly recorder: RunRecorder;
  /**
   * The latest `result` line. With a background subagent the CLI wakes up again after its first result and
   * prints a second one, so a result only counts once the process has exited.
   */
  private pendingResult: Json | undefined;

  constructor(context: RecorderContext) {
    this.recorder = new RunRecorder(context);
  }

  /** The run's conversation, for the collector to write checkpoint files from. */
  history(runId: string): MessageLog | undefined {
    return this.recorder.historyOf(runId);
  }

  get runRecorder(): RunRecorder {
    return this.recorder;
  }

  line(text: string): PerstackEvent[] {
    const value = streamObject(text);
    if (!value) return [];
    switch (value.type) {
      case "system":
        return this.system(value);
      case "assistant":
        return this.assistant(value);
      case "user":
        return this.user(value);
      case "result":
        this.pendingResult = value;
        return [];
      default:
        return [];
    }
  }

  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[] {
    if (this.recorder.isFinished) return [];
    if (this.pendingResult) return this.result(this.pendingResult);
    if (exit.exitCode === 0) return this.recorder.complete(undefined);
    const detail = stderrSummary(exit.stderrTail);
    return this.recorder.fail({
      name: "RuntimeExited",
      message: `claude exited with code ${exit.exitCode}${detail ? `: ${detail}` : " before reporting a result"}`,
      isRetryable: false,
    });
  }

  private system(value: Json): PerstackEvent[] {
    if (value.subtype === "init") {
      const events = this.recorder.start({
        model: str(value.model),
        sessionId: str(value.session_id),
        runtimeVersion: str(value.claude_code_version),
      });
      return events;
    }
    if (value.subtype === "api_retry") {
      const status = value.error_status === undefined ? "" : ` (HTTP ${String(value.error_status)})`;
      return this.recorder.retry(
        `API retry ${String(value.attempt ?? "?")}/${String(value.max_retries ?? "?")}${status}: ${str(value.error) ?? "request failed"}`,
      );
    }
    return [];
  }

  private assistant(value: Json): PerstackEvent[] {
    const message = isObject(value.message) ? value.message : undefined;
    if (!message) return [];
    // Sub-agent (Task) traffic belongs to another conversation, and "<synthetic>" messages are the CLI's own
    // rendering of an API error that the result line reports properly; both stay in raw.log only.
    if (value.parent_tool_use_id || message.model === "<synthetic>") return [];
    const parts: AssistantPart[] = [];
    for (const block of arr(message.content)) {
      if (!isObject(block)) continue;
      if (block.type === "text" && typeof block.text === "string") parts.push({ type: "textPart", text: block.text });
      else if (block.type === "thinking" && typeof block.thinking === "string") {
        parts.push({
          type: "thinkingPart",
          thinking: block.thinking,
          ...(typeof block.signature === "string" ? { signature: block.signature } : {}),
        });
      } else if (block.type === "tool_use" && typeof block.id === "string" && typeof block.name === "string") {
        const { skillName, toolName } = splitToolName(block.name);
        parts.push({ type: "toolCallPart", toolCallId: block.id, toolName, skillName, args: block.input ?? {} });
      }
    }
    const id = str(message.id) ?? "unknown";
    return this.recorder.assistant(id, parts, claudeUsage(isObject(message.usage) ? message.usage : undefined));
  }

  private user(value: Json): PerstackEvent[] {
    if (value.parent_tool_use_id) return [];
    const message = isObject(value.message) ? value.message : undefined;
    const results: ToolResult[] = [];
    for (const block of arr(message?.content)) {
      if (!isObject(block) || block.type !== "tool_result" || typeof block.tool_use_id !== "string") continue;
      results.push({
        id: block.tool_use_id,
        skillName: "",
        toolName: "",
        result: resultContents(block.content),
        ...(block.is_error === true ? { isError: true } : {}),
      });
    }
    return results.length > 0 ? this.recorder.toolResults(results) : [];
  }

  private result(value: Json): PerstackEvent[] {
    const usage = claudeUsage(isObject(value.usage) ? value.usage : undefined);
    const metadata = {
      ...(typeof value.total_cost_usd === "number" ? { totalCostUsd: value.total_cost_usd } : {}),
      ...(typeof value.duration_ms === "number" ? { durationMs: value.duration_ms } : {}),
      ...(typeof value.num_turns === "number" ? { numTurns: value.num_turns } : {}),
    };
    if (value.subtype === "error_max_turns") return this.recorder.stopByMaxSteps(usage, metadata);
    const failed = value.is_error === true || (typeof value.subtype === "string" && value.subtype !== "success");
    if (!failed) return this.recorder.complete(str(value.result), usage, metadata);
    const errors = arr(value.errors).filter((e): e is string => typeof e === "string");
    const status = typeof value.api_error_status === "number" ? value.api_error_status : undefined;
    const error: CheckpointError = {
      name: typeof value.subtype === "string" && value.subtype !== "success" ? value.subtype : "APIError",
      message: str(value.result) ?? (errors.join("; ") || "the run failed"),
      ...(status !== undefined ? { statusCode: status } : {}),
      isRetryable: status === 429 || (status !== undefined && status >= 500),
    };
    return this.recorder.fail(error, usage, metadata);
  }
}

function resultContents(content: unknown): Array<{ type: "textPart"; text: string }> {
  if (typeof content === "string") return [{ type: "textPart", text: content }];
  return arr(content).flatMap((item) =>
    isObject(item) && item.type === "text" && typeof item.text === "string"
      ? [{ type: "textPart" as const, text: item.text }]
      : isObject(item)
        ? [{ type: "textPart" as const, text: JSON.stringify(item) }]
        : [],
  );
}

// Codex CLI (`codex exec --json`) as a runtime. Flags and stream shapes: shared/reference/runtime-clis.md.
import type { PerstackEvent, ToolResult, Usage } from "../model/perstack.js";
import { emptyUsage } from "../model/perstack.js";
import type { MessageLog } from "./message-log.js";
import { GenerationIds, RunRecorder, type AssistantPart, type RecorderContext } from "./run-recorder.js";
import { composeSystemPrompt } from "./system-prompt.js";
import type { RuntimeAdapter, RuntimeInvocation, StreamParser } from "./types.js";
import { isObject, stderrSummary, str, streamObject, type Json } from "./stream-json.js";

export const CODEX_VERSION = "0.169.0";

const BUILTIN_SKILL = "codex";
/** The provider id in config.toml; a custom provider gets plain POST /v1/responses (no WebSocket attempts). */
const PROVIDER_ID = "perstack";

export const codex: RuntimeAdapter = {
  name: "codex",
  cliPackage: "@openai/codex",
  cliVersion: CODEX_VERSION,
  providers: ["openai"],
  defaultProvider: "openai",
  defaultModel: "gpt-5",
  modelVendors: ["openai"],
  baseUrlEnv: () => "OPENAI_BASE_URL",
  dockerfilePartial: "codex.hbs",
  keyEnv: () => [{ name: "OPENAI_API_KEY", from: ["OPENAI_API_KEY"] }],
  apiHosts: () => ["api.openai.com"],
  configEnv: () => ({}),
  fixedEnv: () => ({ CODEX_HOME: "/home/agent/.codex" }),
  homeFiles(invocation) {
    return [{ path: ".codex/config.toml", content: codexConfig(invocation) }];
  },
  command(invocation) {
    return [
      "codex",
      "exec",
      "--json",
      "--skip-git-repo-check",
      // The container is the sandbox; codex's own sandbox cannot work inside it.
      "--dangerously-bypass-approvals-and-sandbox",
      "--model",
      invocation.model,
      "--disable",
      "plugins",
      "-c",
      `developer_instructions=${tomlString(composeSystemPrompt({ instruction: invocation.expert.instruction, delegates: invocation.delegates, skills: invocation.skills }))}`,
      "--",
      invocation.query,
    ];
  },
  warnings(invocation) {
    return invocation.skills.filter((s) => s.pick).map((s) => `skill "${s.name}": codex cannot restrict a server to picked tools; all its tools are offered`);
  },
  createParser: (context) => new CodexStreamParser(context),
};

/** A TOML basic string: JSON's escapes are valid TOML escapes for everything JSON.stringify emits. */
export function tomlString(value: string): string {
  return JSON.stringify(value);
}

function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

function codexConfig(invocation: RuntimeInvocation): string {
  const base = (invocation.baseUrl ?? "https://api.openai.com/v1").replace(/\/+$/, "");
  const baseUrl = /\/v\d+$/.test(base) ? base : `${base}/v1`;
  const lines = [
    "# Written by perstack for this run.",
    `model_provider = ${tomlString(PROVIDER_ID)}`,
    "",
    "[analytics]",
    "enabled = false",
    "",
    `[model_providers.${PROVIDER_ID}]`,
    `name = ${tomlString(PROVIDER_ID)}`,
    `base_url = ${tomlString(baseUrl)}`,
    'env_key = "OPENAI_API_KEY"',
    'wire_api = "responses"',
    `request_max_retries = ${invocation.maxRetries}`,
    `stream_max_retries = ${invocation.maxRetries}`,
  ];
  for (const skill of invocation.skills) {
    lines.push("", `[mcp_servers.${tomlKey(skill.name)}]`);
    if (skill.url) {
      lines.push(`url = ${tomlString(skill.url)}`);
    } else {
      lines.push(`command = ${tomlString(skill.command)}`, `args = [${skill.args.map(tomlString).join(", ")}]`);
      // Passed through from codex's own environment by name; values never enter this file.
      if (skill.envNames.length > 0) lines.push(`env_vars = [${skill.envNames.map(tomlString).join(", ")}]`);
    }
    if (skill.omit) lines.push(`disabled_tools = [${skill.omit.map(tomlString).join(", ")}]`);
    if (skill.pick) lines.push(`enabled_tools = [${skill.pick.map(tomlString).join(", ")}]`);
    // Codex gives a server 10 s to start, then silently runs without its tools; on a busy machine a node server
    // can take longer. Wait longer, and fail the run rather than drop a skill the expert relies on.
    lines.push(`startup_timeout_sec = ${MCP_STARTUP_TIMEOUT_SEC}`, "required = true");
  }
  return `${lines.join("\n")}\n`;
}

const MCP_STARTUP_TIMEOUT_SEC = 120;

export class CodexStreamParser implements StreamParser {
  private readonly recorder: RunRecorder;
  private readonly generations = new GenerationIds("codex");
  private lastMessage: string | undefined;
  /** turn.completed usage is a running total for the thread; per-turn figures are the differences. */
  private previousTotal: Usage = emptyUsage();
  private usage: Usage = emptyUsage();
  private failure: string | undefined;
  private readonly started = new Set<string>();

  constructor(context: RecorderContext) {
    this.recorder = new RunRecorder(context);
  }

  /** The run's conversation, for the collector to write checkpoint files from. */
  history(runId: string): MessageLog | undefined {
    return this.recorder.historyOf(runId);
  }

  line(text: string): PerstackEvent[] {
    const value = streamObject(text);
    if (!value) return [];
    switch (value.type) {
      case "thread.started":
        return this.recorder.start({ sessionId: str(value.thread_id) });
      case "item.started":
      case "item.completed":
        return isObject(value.item) ? this.item(value.type, value.item) : [];
      case "turn.completed":
        this.turnUsage(isObject(value.usage) ? value.usage : undefined);
        return [];
      case "turn.failed":
        this.failure = str(isObject(value.error) ? value.error.message : undefined) ?? "turn failed";
        return [];
      case "error":
        return this.recorder.retry(str(value.message) ?? "error");
      default:
        return [];
    }
  }

  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[] {
    if (this.recorder.isFinished) return [];
    if (exit.exitCode === 0 && !this.failure) return this.recorder.complete(this.lastMessage, this.usage);
    const detail = this.failure ?? (stderrSummary(exit.stderrTail) || "no result");
    return this.recorder.fail(
      { name: "CodexError", message: `codex exited with code ${exit.exitCode}: ${detail}`, ...statusOf(detail), isRetryable: false },
      this.usage,
    );
  }

  private turnUsage(usage: Json | undefined): void {
    if (!usage) return;
    const num = (v: unknown) => (typeof v === "number" ? v : 0);
    const total: Usage = {
      inputTokens: num(usage.input_tokens),
      outputTokens: num(usage.output_tokens),
      reasoningTokens: num(usage.reasoning_output_tokens),
      cachedInputTokens: num(usage.cached_input_tokens),
      totalTokens: num(usage.input_tokens) + num(usage.output_tokens),
    };
    const delta: Usage = {
      inputTokens: total.inputTokens - this.previousTotal.inputTokens,
      outputTokens: total.outputTokens - this.previousTotal.outputTokens,
      reasoningTokens: total.reasoningTokens - this.previousTotal.reasoningTokens,
      cachedInputTokens: total.cachedInputTokens - this.previousTotal.cachedInputTokens,
      totalTokens: total.totalTokens - this.previousTotal.totalTokens,
    };
    this.previousTotal = total;
    this.usage = {
      inputTokens: this.usage.inputTokens + delta.inputTokens,
      outputTokens: this.usage.outputTokens + delta.outputTokens,
      reasoningTokens: this.usage.reasoningTokens + delta.reasoningTokens,
      cachedInputTokens: this.usage.cachedInputTokens + delta.cachedInputTokens,
      totalTokens: this.usage.totalTokens + delta.totalTokens,
    };
  }

  private item(kind: string, item: Json): PerstackEvent[] {
    const id = str(item.id) ?? "";
    const type = str(item.type);
    if (type === "agent_message" && kind === "item.completed" && typeof item.text === "string") {
      this.lastMessage = item.text;
      return this.recorder.assistant(this.generations.current(), [{ type: "textPart", text: item.text }]);
    }
    if (type === "reasoning" && kind === "item.completed" && typeof item.text === "string") {
      return this.recorder.assistant(this.generations.current(), [{ type: "thinkingPart", thinking: item.text }]);
    }
    const call = toolCallOf(type, item);
    if (!call) return [];
    const events: PerstackEvent[] = [];
    if (!this.started.has(id)) {
      this.started.add(id);
      const part: AssistantPart = { type: "toolCallPart", toolCallId: id, ...call };
      events.push(...this.recorder.assistant(this.generations.current(), [part]));
    }
    if (kind === "item.completed") {
      this.generations.toolsAnswered();
      const result: ToolResult = { id, skillName: call.skillName, toolName: call.toolName, ...toolResultOf(type, item) };
      events.push(...this.recorder.toolResults([result]));
    }
    return events;
  }
}

function toolCallOf(type: string | undefined, item: Json): { skillName: string; toolName: string; args: unknown } | undefined {
  switch (type) {
    case "command_execution":
      return { skillName: BUILTIN_SKILL, toolName: "command_execution", args: { command: item.command } };
    case "mcp_tool_call":
      return { skillName: str(item.server) ?? "mcp", toolName: str(item.tool) ?? "unknown", args: item.arguments ?? {} };
    case "file_change":
      return { skillName: BUILTIN_SKILL, toolName: "file_change", args: { changes: item.changes } };
    case "web_search":
      return { skillName: BUILTIN_SKILL, toolName: "web_search", args: { query: item.query } };
    default:
      return undefined;
  }
}

function toolResultOf(type: string | undefined, item: Json): Pick<ToolResult, "result" | "isError"> {
  if (type === "command_execution") {
    const exitCode = typeof item.exit_code === "number" ? item.exit_code : undefined;
    const output = str(item.aggregated_output) ?? "";
    return { result: [{ type: "textPart", text: output }], ...(exitCode !== undefined && exitCode !== 0 ? { isError: true } : {}) };
  }
  if (type === "mcp_tool_call") {
    const error = isObject(item.error) ? str(item.error.message) : str(item.error);
    const content = isObject(item.result) && Array.isArray(item.result.content) ? item.result.content : [];
    const texts = content.map((c) => (isObject(c) && typeof c.text === "string" ? c.text : JSON.stringify(c)));
    return error ? { result: [{ type: "textPart", text: error }], isError: true } : { result: texts.map((text) => ({ type: "textPart" as const, text })) };
  }
  if (type === "file_change") {
    return { result: [{ type: "textPart", text: str(item.status) ?? "applied" }], ...(item.status === "failed" ? { isError: true } : {}) };
  }
  return { result: [{ type: "textPart", text: JSON.stringify(item) }] };
}

function statusOf(message: string): { statusCode?: number } {
  const match = /\b(4\d\d|5\d\d)\b/.exec(message);
  return match ? { statusCode: Number(match[1]) } : {};
}

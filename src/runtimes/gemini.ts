// Gemini CLI (`gemini -p`) as a runtime. Flags and stream shapes: shared/reference/runtime-clis.md.
import type { PerstackEvent, ToolResult, Usage } from "../model/perstack.js";
import type { MessageLog } from "./message-log.js";
import { GenerationIds, RunRecorder, type AssistantPart, type RecorderContext } from "./run-recorder.js";
import { composeSystemPrompt } from "./system-prompt.js";
import type { RuntimeAdapter, RuntimeInvocation, StreamParser } from "./types.js";
import { isObject, stderrSummary, str, streamObject, type Json } from "./stream-json.js";

export const GEMINI_CLI_VERSION = "0.61.0";

const BUILTIN_SKILL = "gemini";

export const gemini: RuntimeAdapter = {
  name: "gemini",
  cliPackage: "@google/gemini-cli",
  cliVersion: GEMINI_CLI_VERSION,
  providers: ["google"],
  defaultProvider: "google",
  defaultModel: "gemini-2.5-pro",
  modelVendors: ["google"],
  baseUrlEnv: () => "GOOGLE_GEMINI_BASE_URL",
  dockerfilePartial: "gemini.hbs",
  // The CLI reads GEMINI_API_KEY; Perstack's google provider documents GOOGLE_GENERATIVE_AI_API_KEY.
  keyEnv: () => [{ name: "GEMINI_API_KEY", from: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"] }],
  apiHosts: () => ["generativelanguage.googleapis.com"],
  configEnv(provider): Record<string, string> {
    const headers = Object.entries(provider.setting?.headers ?? {});
    if (headers.length === 0) return {};
    return { GEMINI_CLI_CUSTOM_HEADERS: headers.map(([name, value]) => `${name}: ${value}`).join(", ") };
  },
  fixedEnv(invocation) {
    const env: Record<string, string> = {
      // Belt and braces with --skip-trust: an untrusted folder silently downgrades --yolo.
      GEMINI_CLI_TRUST_WORKSPACE: "true",
    };
    if (invocation.baseUrl) env.GOOGLE_GEMINI_BASE_URL = invocation.baseUrl.replace(/\/+$/, "");
    return env;
  },
  homeFiles(invocation) {
    return [
      { path: ".gemini/settings.json", content: `${JSON.stringify(geminiSettings(invocation), null, 2)}\n` },
      // The instruction goes into the user-level context file rather than GEMINI_SYSTEM_MD: GEMINI_SYSTEM_MD
      // would replace the CLI's own system prompt (its tool guidance included), whereas GEMINI.md adds to it,
      // as --append-system-prompt does for claude-code, and nothing is written into the user's workspace.
      {
        path: ".gemini/GEMINI.md",
        content: `${composeSystemPrompt({ instruction: invocation.expert.instruction, delegates: invocation.delegates, skills: invocation.skills })}\n`,
      },
    ];
  },
  command(invocation) {
    // --prompt=<query> rather than "-p <query>": a query starting with "-" must not be read as a flag.
    return ["gemini", `--prompt=${invocation.query}`, "--output-format", "stream-json", "--yolo", "--skip-trust", "--model", invocation.model];
  },
  createParser: (context) => new GeminiStreamParser(context),
};

function geminiSettings(invocation: RuntimeInvocation) {
  const mcpServers: Record<string, unknown> = {};
  for (const skill of invocation.skills) {
    const filters = {
      ...(skill.pick ? { includeTools: skill.pick } : {}),
      ...(skill.omit ? { excludeTools: skill.omit } : {}),
    };
    mcpServers[skill.name] = skill.url
      ? { url: skill.url, trust: true, ...filters }
      : {
          command: skill.command,
          args: skill.args,
          // gemini expands $NAME in settings, so the file carries names only.
          env: Object.fromEntries(skill.envNames.map((name) => [name, `$${name}`])),
          trust: true,
          ...filters,
        };
  }
  return {
    // Needed for GEMINI_API_KEY with a custom GOOGLE_GEMINI_BASE_URL (otherwise exit 41).
    security: { auth: { selectedType: "gemini-api-key" }, folderTrust: { enabled: false } },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    // maxAttempts is the CLI's only retry limit (no variable), counted in attempts and capped at 10.
    general: { enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: Math.min(10, invocation.maxRetries + 1) },
    model: { maxSessionTurns: invocation.maxSteps },
    mcpServers,
  };
}

export class GeminiStreamParser implements StreamParser {
  private readonly recorder: RunRecorder;
  private readonly generations = new GenerationIds("gemini");
  /** Assistant text arrives as deltas; they are joined into one part per generation. */
  private text = "";
  private finalText: string | undefined;
  private result: Json | undefined;
  private lastError: string | undefined;
  private readonly toolNames = new Map<string, string>();

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
      case "init":
        return this.recorder.start({ model: str(value.model), sessionId: str(value.session_id) });
      case "message":
        if (value.role === "assistant" && typeof value.content === "string") {
          this.text += value.content;
        }
        return [];
      case "tool_use":
        return this.toolUse(value);
      case "tool_result":
        return this.toolResult(value);
      case "error":
        if (value.severity === "error" || value.severity === undefined) this.lastError = str(value.message);
        else return this.recorder.retry(str(value.message) ?? "warning");
        return [];
      case "result":
        this.result = value;
        return this.flushText();
      default:
        return [];
    }
  }

  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[] {
    if (this.recorder.isFinished) return [];
    const events = this.flushText();
    const result = this.result;
    const usage = geminiUsage(isObject(result?.stats) ? result.stats : undefined);
    if (result?.status === "success" && exit.exitCode === 0) {
      return [...events, ...this.recorder.complete(this.finalText, usage)];
    }
    const resultError = isObject(result?.error) ? result.error : undefined;
    const message =
      str(resultError?.message) ?? this.lastError ?? (stderrSummary(exit.stderrTail) || "no result");
    return [
      ...events,
      ...this.recorder.fail(
        {
          name: str(resultError?.type) ?? (exit.exitCode === 53 ? "TurnLimitReached" : "GeminiError"),
          message: `gemini exited with code ${exit.exitCode}: ${message}`,
          ...(statusFromExit(exit.exitCode) ? { statusCode: statusFromExit(exit.exitCode)! } : {}),
          isRetryable: false,
        },
        usage,
      ),
    ];
  }

  private flushText(): PerstackEvent[] {
    if (!this.text) return [];
    const text = this.text;
    this.text = "";
    this.finalText = text;
    return this.recorder.assistant(this.generations.current(), [{ type: "textPart", text }]);
  }

  private toolUse(value: Json): PerstackEvent[] {
    const id = str(value.tool_id);
    const name = str(value.tool_name);
    if (!id || !name) return [];
    const parts: AssistantPart[] = [];
    if (this.text) {
      parts.push({ type: "textPart", text: this.text });
      this.text = "";
    }
    const { skillName, toolName } = splitGeminiToolName(name);
    this.toolNames.set(id, toolName);
    parts.push({ type: "toolCallPart", toolCallId: id, toolName, skillName, args: value.parameters ?? {} });
    return this.recorder.assistant(this.generations.current(), parts);
  }

  private toolResult(value: Json): PerstackEvent[] {
    const id = str(value.tool_id);
    if (!id) return [];
    this.generations.toolsAnswered();
    const error = isObject(value.error) ? value.error : undefined;
    const output = typeof value.output === "string" ? value.output : value.output === undefined ? "" : JSON.stringify(value.output);
    const result: ToolResult = {
      id,
      skillName: "",
      toolName: this.toolNames.get(id) ?? "",
      result: [{ type: "textPart", text: error ? (str(error.message) ?? output) : output }],
      ...(value.status === "error" ? { isError: true } : {}),
    };
    return this.recorder.toolResults([result]);
  }
}

/** MCP tools may reach the stream as `<server>__<tool>`; everything else is a built-in tool. */
export function splitGeminiToolName(name: string): { skillName: string; toolName: string } {
  const match = /^mcp_(.+?)_(.+)$/.exec(name) ?? /^(.+?)__(.+)$/.exec(name);
  return match ? { skillName: match[1]!, toolName: match[2]! } : { skillName: BUILTIN_SKILL, toolName: name };
}

export function geminiUsage(stats: Json | undefined): Usage | undefined {
  if (!stats) return undefined;
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  const input = num(stats.input_tokens) || num(stats.input);
  const output = num(stats.output_tokens);
  const cached = num(stats.cached);
  const total = num(stats.total_tokens) || input + output;
  return { inputTokens: input, outputTokens: output, reasoningTokens: 0, totalTokens: total, cachedInputTokens: cached };
}

/** The CLI exits with the HTTP status mod 256 on API errors; map the common ones back. */
function statusFromExit(code: number): number | undefined {
  const known = [400, 401, 403, 404, 429, 500, 502, 503, 504];
  return known.find((status) => status % 256 === code);
}

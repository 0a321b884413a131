// Cursor CLI (`cursor-agent -p`) as a runtime. Its installer downloads from cursor.com, which this project's
// machines cannot reach, so the adapter is verified against the published stream format with a stand-in
// executable (test/cursor-standin); see shared/reference/runtime-clis.md.
import type { CheckpointError, PerstackEvent, ToolResult, Usage } from "../model/perstack.js";
import { PROVIDER_NAMES } from "../config/schema.js";
import type { MessageLog } from "./message-log.js";
import { GenerationIds, RunRecorder, type AssistantPart, type RecorderContext } from "./run-recorder.js";
import { composeSystemPrompt } from "./system-prompt.js";
import type { RuntimeAdapter, RuntimeInvocation, StreamParser } from "./types.js";
import { isObject, stderrSummary, str, streamObject, type Json } from "./stream-json.js";

/** The installer serves the current release; there is no version pin to give it. */
export const CURSOR_AGENT_VERSION = "installer-latest";
export const CURSOR_INSTALLER_URL = "https://cursor.com/install";

const BUILTIN_SKILL = "cursor";

export const cursor: RuntimeAdapter = {
  name: "cursor",
  cliPackage: "cursor-agent",
  cliVersion: CURSOR_AGENT_VERSION,
  // Cursor reaches every model through its own service with CURSOR_API_KEY; perstack's provider does not apply.
  providers: PROVIDER_NAMES,
  defaultProvider: "anthropic",
  defaultModel: "auto",
  modelVendors: ["anthropic", "google", "openai"],
  ownService: true,
  dockerfilePartial: "cursor.hbs",
  dockerfileValues: { cursorInstallerUrl: CURSOR_INSTALLER_URL },
  keyEnv: () => [{ name: "CURSOR_API_KEY", from: ["CURSOR_API_KEY"] }],
  // api2.cursor.sh and its api*.cursor.sh variants; the allowlist has no mid-label wildcards.
  apiHosts: () => ["*.cursor.sh"],
  configEnv: () => ({}),
  fixedEnv: () => ({}),
  homeFiles(invocation) {
    return [{ path: ".cursor/mcp.json", content: `${JSON.stringify(cursorMcpConfig(invocation), null, 2)}\n` }];
  },
  warnings(invocation) {
    const warnings: string[] = [];
    if (invocation.provider.setting?.baseUrl || invocation.provider.setting?.headers) {
      warnings.push("provider.setting: cursor reaches models through Cursor's service; baseUrl and headers do not apply");
    }
    for (const skill of invocation.skills) {
      if (skill.pick || skill.omit) warnings.push(`skill "${skill.name}": cursor cannot filter a server's tools; pick/omit are not applied`);
    }
    return warnings;
  },
  command(invocation) {
    return [
      "cursor-agent",
      "-p",
      "--output-format",
      "stream-json",
      "--force",
      "--trust",
      "--approve-mcps",
      "--model",
      invocation.model,
      "--workspace",
      "/workspace",
      cursorPrompt(invocation),
    ];
  },
  createParser: (context) => new CursorStreamParser(context),
};

/**
 * The instruction travels in the prompt. Cursor's other channels (AGENTS.md, .cursor/rules) live in the workspace,
 * and writing them would change the user's project; no user-level rules file is documented for the CLI.
 */
export function cursorPrompt(invocation: RuntimeInvocation): string {
  const system = composeSystemPrompt({ instruction: invocation.expert.instruction, delegates: invocation.delegates, skills: invocation.skills });
  return `<instructions>\n${system}\n</instructions>\n\n${invocation.query}`;
}

function cursorMcpConfig(invocation: RuntimeInvocation) {
  const mcpServers: Record<string, unknown> = {};
  for (const skill of invocation.skills) {
    mcpServers[skill.name] = skill.url
      ? { url: skill.url }
      : {
          command: skill.command,
          args: skill.args,
          // Cursor interpolates ${env:NAME} in mcp.json: names only in the file.
          env: Object.fromEntries(skill.envNames.map((name) => [name, `\${env:${name}}`])),
        };
  }
  return { mcpServers };
}

export class CursorStreamParser implements StreamParser {
  private readonly recorder: RunRecorder;
  private readonly generations = new GenerationIds("cursor");
  private thinking = "";
  private result: Json | undefined;
  private lastText: string | undefined;

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
      case "system":
        return value.subtype === "init" ? this.recorder.start({ model: str(value.model), sessionId: str(value.session_id) }) : [];
      case "thinking":
        if (value.subtype === "delta" && typeof value.text === "string") this.thinking += value.text;
        if (value.subtype === "completed") return this.flushThinking();
        return [];
      case "assistant":
        return this.assistant(value);
      case "tool_call":
        return this.toolCall(value);
      case "result":
        this.result = value;
        return [];
      default:
        return [];
    }
  }

  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[] {
    if (this.recorder.isFinished) return [];
    const events = this.flushThinking();
    const result = this.result;
    const usage = cursorUsage(isObject(result?.usage) ? result.usage : undefined);
    if (result && result.is_error !== true && exit.exitCode === 0) {
      return [...events, ...this.recorder.complete(str(result.result) ?? this.lastText, usage)];
    }
    // On failure the stream may end without a result line: the exit code and stderr say what happened.
    const detail = str(result?.result) ?? (stderrSummary(exit.stderrTail) || "no result");
    const error: CheckpointError = { name: "CursorError", message: `cursor-agent exited with code ${exit.exitCode}: ${detail}`, isRetryable: false };
    return [...events, ...this.recorder.fail(error, usage)];
  }

  private flushThinking(): PerstackEvent[] {
    if (!this.thinking) return [];
    const thinking = this.thinking;
    this.thinking = "";
    return this.recorder.assistant(this.generations.current(), [{ type: "thinkingPart", thinking }]);
  }

  private assistant(value: Json): PerstackEvent[] {
    // With --stream-partial-output, lines carrying timestamp_ms are deltas and a final line without it repeats
    // the whole text; only whole messages are recorded.
    if (typeof value.timestamp_ms === "number") return [];
    const message = isObject(value.message) ? value.message : undefined;
    const text = (Array.isArray(message?.content) ? message.content : [])
      .map((c) => (isObject(c) && c.type === "text" && typeof c.text === "string" ? c.text : ""))
      .join("");
    if (!text) return [];
    this.lastText = text;
    return [...this.flushThinking(), ...this.recorder.assistant(this.generations.current(), [{ type: "textPart", text }])];
  }

  private toolCall(value: Json): PerstackEvent[] {
    const id = str(value.call_id);
    const call = isObject(value.tool_call) ? value.tool_call : undefined;
    if (!id || !call) return [];
    const kind = Object.keys(call).find((k) => k.endsWith("ToolCall") || k === "function");
    if (!kind) return [];
    const body = isObject(call[kind]) ? (call[kind] as Json) : {};
    const { skillName, toolName, args } = describeCall(kind, body);
    if (value.subtype === "started") {
      const part: AssistantPart = { type: "toolCallPart", toolCallId: id, skillName, toolName, args };
      return [...this.flushThinking(), ...this.recorder.assistant(this.generations.current(), [part])];
    }
    if (value.subtype === "completed") {
      this.generations.toolsAnswered();
      const outcome = isObject(body.result) ? body.result : undefined;
      const success = outcome && isObject(outcome.success) ? outcome.success : undefined;
      const failure = outcome && "error" in outcome ? outcome.error : undefined;
      const result: ToolResult = {
        id,
        skillName,
        toolName,
        result: [{ type: "textPart", text: failure !== undefined ? stringify(failure) : successText(success ?? outcome ?? {}) }],
        ...(failure !== undefined ? { isError: true } : {}),
      };
      return this.recorder.toolResults([result]);
    }
    return [];
  }
}

function describeCall(kind: string, body: Json): { skillName: string; toolName: string; args: unknown } {
  if (kind === "function") {
    // MCP tools arrive as function calls named `<server>-<tool>` or `<server>__<tool>`.
    const name = str(body.name) ?? "unknown";
    let args: unknown = body.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = JSON.parse(args);
      } catch {
        // keep the raw string
      }
    }
    const match = /^(.+?)(?:__|-)(.+)$/.exec(name);
    return match ? { skillName: match[1]!, toolName: match[2]!, args } : { skillName: "mcp", toolName: name, args };
  }
  if (kind === "mcpToolCall") {
    return { skillName: str(body.providerIdentifier) ?? str((body.args as Json | undefined)?.providerIdentifier) ?? "mcp", toolName: str(body.toolName) ?? str((body.args as Json | undefined)?.toolName) ?? "unknown", args: (body.args as Json | undefined)?.args ?? body.args ?? {} };
  }
  return { skillName: BUILTIN_SKILL, toolName: kind, args: body.args ?? {} };
}

export function cursorUsage(usage: Json | undefined): Usage | undefined {
  if (!usage) return undefined;
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  const cached = num(usage.cacheReadTokens);
  const input = num(usage.inputTokens) + cached + num(usage.cacheWriteTokens);
  const output = num(usage.outputTokens);
  return { inputTokens: input, outputTokens: output, reasoningTokens: 0, totalTokens: input + output, cachedInputTokens: cached };
}

/** MCP results carry their text as `content`; built-in tools report a structured success object. */
function successText(success: Json): string {
  return typeof success.content === "string" ? success.content : JSON.stringify(success);
}

function stringify(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// The readable view of a run printed by default: one short line per meaningful event. --json prints the events
// themselves instead.
import { answerCommand } from "../job/continuation.js";
import type { Checkpoint, PerstackEvent, ToolCall } from "../model/perstack.js";

/** What formatWaiting reads of a checkpoint: never its messages. */
type WaitingCheckpoint = Pick<Checkpoint, "expert" | "delegatedBy" | "delegateTo" | "pendingToolCalls">;

const MAX_ARGS = 160;

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function formatCall(call: ToolCall): string {
  return `${call.skillName === "claude-code" ? "" : `${call.skillName}/`}${call.toolName} ${clip(JSON.stringify(call.args), MAX_ARGS)}`;
}

/**
 * `root`: the event belongs to the run this invocation started (default). A delegated run's completion is a line in
 * the log, never the final answer.
 */
export function formatEvent(event: PerstackEvent, options: { root?: boolean } = {}): string | undefined {
  const root = options.root ?? true;
  switch (event.type) {
    case "initializeRuntime":
      return `▶ ${event.runtime}${event.runtimeVersion ? ` ${event.runtimeVersion}` : ""}${event.model ? ` · model ${event.model}` : ""}`;
    case "dockerBuildProgress":
      return event.message.startsWith("building") || event.message.startsWith("built") || event.message.startsWith("step")
        ? `  [build ${event.service}] ${event.message}`
        : undefined;
    case "callTools":
      return event.toolCalls.map((call) => `  → ${formatCall(call)}`).join("\n");
    case "callDelegate":
      return event.toolCalls.map((call) => `  ⇢ delegate ${call.toolName} ${clip(JSON.stringify(call.args), MAX_ARGS)}`).join("\n");
    case "stopRunByDelegate": {
      const to = (event.checkpoint.delegateTo ?? []).map((d) => d.expert.key);
      return `· ${event.expertKey} waits for ${to.length ? to.join(", ") : "its delegates"}`;
    }
    case "callInteractiveTool":
      return `  ? ${formatCall(event.toolCall)}`;
    case "stopRunByInteractiveTool":
      return `⏸ ${event.expertKey} stopped for input after ${event.checkpoint.stepNumber} step(s)`;
    case "resolveToolResults":
      return event.toolResults
        .map((r) => `  ${r.isError ? "✗" : "✓"} ${r.toolName} ${clip(r.result.map((p) => (p.type === "textPart" ? p.text : `[${p.mimeType}]`)).join(" "), MAX_ARGS)}`)
        .join("\n");
    case "continueToNextStep":
      return `· step ${event.stepNumber} done`;
    case "retry":
      return `  ↻ ${event.reason}`;
    case "sandboxWarning":
      return `  ⚠ ${event.message}`;
    case "proxyAccess":
      return event.action === "blocked" ? `  ⛔ proxy blocked ${event.domain}:${event.port}${event.reason ? ` (${event.reason})` : ""}` : undefined;
    case "completeRun":
      if (!root) return `  ⇠ ${event.expertKey} done in ${event.checkpoint.stepNumber} step(s): ${clip(event.text, MAX_ARGS)}`;
      return `✔ completed in ${event.checkpoint.stepNumber} step(s) · ${event.usage.totalTokens} tokens\n\n${event.text}`;
    case "stopRunByExceededMaxSteps":
      return `✖ stopped: maxSteps reached after ${event.checkpoint.stepNumber} step(s); raise maxSteps in perstack.toml to allow more`;
    case "stopRunByError":
      return `${root ? "" : `  ${event.expertKey}: `}✖ ${event.error.name}: ${event.error.message}`;
    default:
      return undefined;
  }
}

/**
 * What a job stopped by an interactive tool is asking, and the exact command that answers it. `checkpoint` is the
 * job's (the root run's); when delegates asked, `askers` are their stopped checkpoints, whose calls are the
 * questions. `coordinatorKey` is the job's coordinator: a delegated run's question is answered through it. `server`:
 * the job is on that perstack serve.
 */
export function formatWaiting(checkpoint: WaitingCheckpoint, coordinatorKey: string, jobId: string, askers: WaitingCheckpoint[] = [], server?: string): string {
  const expert = checkpoint.delegatedBy ? coordinatorKey : checkpoint.expert.key;
  const questions = [checkpoint, ...askers].flatMap((c) => {
    const delegated = new Set((c.delegateTo ?? []).map((d) => d.toolCallId));
    return (c.pendingToolCalls ?? []).filter((call) => !delegated.has(call.id)).map((call) => ({ expert: c.expert.key, call }));
  });
  const lines = [`⏸ job ${jobId} is waiting for your answer${questions.length > 0 ? ":" : ""}`];
  for (const { expert: asker, call } of questions) lines.push(`  ${asker} asks: ${call.toolName} ${clip(JSON.stringify(call.args), 2_000)}`);
  lines.push(`answer with: ${answerCommand(expert, jobId, server)}`);
  return lines.join("\n");
}

// The readable view of a run printed by default: one short line per meaningful event. --json prints the events
// themselves instead.
import type { PerstackEvent } from "../model/perstack.js";

const MAX_ARGS = 160;

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function formatEvent(event: PerstackEvent): string | undefined {
  switch (event.type) {
    case "initializeRuntime":
      return `▶ ${event.runtime}${event.runtimeVersion ? ` ${event.runtimeVersion}` : ""}${event.model ? ` · model ${event.model}` : ""}`;
    case "dockerBuildProgress":
      return event.message.startsWith("building") || event.message.startsWith("built") || event.message.startsWith("step")
        ? `  [build ${event.service}] ${event.message}`
        : undefined;
    case "callTools":
      return event.toolCalls
        .map((call) => `  → ${call.skillName === "claude-code" ? "" : `${call.skillName}/`}${call.toolName} ${clip(JSON.stringify(call.args), MAX_ARGS)}`)
        .join("\n");
    case "resolveToolResults":
      return event.toolResults
        .map((r) => `  ${r.isError ? "✗" : "✓"} ${r.toolName} ${clip(r.result.map((p) => p.text).join(" "), MAX_ARGS)}`)
        .join("\n");
    case "continueToNextStep":
      return `· step ${event.stepNumber} done`;
    case "retry":
      return `  ↻ ${event.reason}`;
    case "proxyAccess":
      return event.action === "blocked" ? `  ⛔ proxy blocked ${event.domain}:${event.port}${event.reason ? ` (${event.reason})` : ""}` : undefined;
    case "completeRun":
      return `✔ completed in ${event.checkpoint.stepNumber} step(s) · ${event.usage.totalTokens} tokens\n\n${event.text}`;
    case "stopRunByExceededMaxSteps":
      return `✖ stopped: maxSteps reached after ${event.checkpoint.stepNumber} step(s); raise maxSteps in perstack.toml to allow more`;
    case "stopRunByError":
      return `✖ ${event.error.name}: ${event.error.message}`;
    default:
      return undefined;
  }
}

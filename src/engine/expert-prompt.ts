// The system prompt an expert runs with: its instruction, then what the model needs to know about its skills'
// rules and how a run ends. Delegates and tools describe themselves through their tool definitions. Pure.
import type { EngineExpert } from "./engine-input.js";

export function composeExpertPrompt(expert: EngineExpert): string {
  const sections = [expert.instruction.trim()];
  const rules = expert.skills.filter((s) => s.rule || s.description);
  if (rules.length > 0) {
    sections.push(
      [
        "## Skills",
        ...rules.map((s) => `- ${s.name}${s.description ? `: ${s.description.trim()}` : ""}${s.rule ? ` Rule: ${s.rule.trim()}` : ""}`),
      ].join("\n"),
    );
  }
  const hasBase = expert.skills.some((s) => s.type === "base");
  sections.push(
    [
      "## Finishing",
      hasBase
        ? "When the task is done, call the attemptCompletion tool. After it is accepted, answer with the final result for the user."
        : "When the task is done, answer with the final result for the user and call no more tools.",
      "Files are in /workspace, the current directory.",
    ].join("\n"),
  );
  return sections.join("\n\n");
}

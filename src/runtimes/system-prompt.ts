// The text CLI runtimes receive as their system prompt: the expert's instruction plus what the CLI cannot learn
// from its own configuration (delegates, and the rules attached to skills).
import type { DelegateSummary, InstalledSkill } from "./types.js";

export function composeSystemPrompt(input: {
  instruction: string;
  delegates: DelegateSummary[];
  skills: InstalledSkill[];
}): string {
  const sections = [input.instruction.trim()];
  if (input.delegates.length > 0) {
    const lines = input.delegates.map(
      (d) => `- ${d.key}: ${d.description?.trim() || "(no description)"}`,
    );
    sections.push(
      [
        "## Delegates",
        "These experts are available for parts of the task that match their description. When a part of the",
        "task is theirs, say which expert should handle it and what to hand over, then continue with the rest:",
        ...lines,
      ].join("\n"),
    );
  }
  const withNotes = input.skills.filter((s) => s.description || s.rule);
  if (withNotes.length > 0) {
    const lines = withNotes.map((s) => {
      const parts = [`- ${s.name}`];
      if (s.description) parts.push(`: ${s.description.trim()}`);
      if (s.rule) parts.push(` Rule: ${s.rule.trim()}`);
      return parts.join("");
    });
    sections.push(["## Skills", ...lines].join("\n"));
  }
  return sections.join("\n\n");
}

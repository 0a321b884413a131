// Skill names in perstack.toml are free-form ("@perstack/base", "my skill"), but the CLIs use a skill's name as an
// MCP server name: in tool names (Claude Code's `mcp__<server>__<tool>`), TOML keys (codex) and JSON keys. Those
// want letters, digits, '-' and '_' and, for Claude Code's parse, no "__" inside the server part.

const MAX_LENGTH = 48;

/** A safe, unique MCP server name for the skill called `name`; `taken` holds the names given out so far. */
export function mcpServerName(name: string, taken: ReadonlySet<string>): string {
  const base =
    name
      .replace(/[^A-Za-z0-9_-]+/g, "-")
      .replace(/_{2,}/g, "_")
      .replace(/^[-_]+|[-_]+$/g, "")
      .slice(0, MAX_LENGTH) || "skill";
  let candidate = base;
  for (let i = 2; taken.has(candidate); i += 1) candidate = `${base.slice(0, MAX_LENGTH - 4)}-${i}`;
  return candidate;
}

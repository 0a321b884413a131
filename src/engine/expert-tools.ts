// The tools one expert's model sees, and what each name routes to: an MCP skill's tool, a delegate expert (a
// child run), or an interactive tool (answered by the user). Tool names must satisfy every provider
// (^[a-zA-Z0-9_-]{1,64}$), so expert keys like "@team/writer" are mapped to a safe name.
import { jsonSchema, tool, type ToolSet } from "ai";
import type { EngineExpert } from "./engine-input.js";
import type { SkillTool } from "./skills/skill-manager.js";

export type ToolRoute =
  /** `exposed` is the SkillManager's name for the tool (what SkillManager.call takes). */
  | { kind: "skill"; name: string; skillName: string; toolName: string; exposed: string; isBase: boolean }
  | { kind: "delegate"; name: string; expertKey: string }
  | { kind: "interactive"; name: string; skillName: string; toolName: string };

export interface ExpertTools {
  tools: ToolSet;
  routes: Map<string, ToolRoute>;
}

const SAFE_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** A provider-safe tool name for an expert key: "@team/writer" -> "team__writer". */
export function delegateToolName(expertKey: string): string {
  const safe = expertKey.replace(/^@/, "").replace(/\//g, "__").replace(/[^a-zA-Z0-9_-]/g, "_");
  return safe.slice(0, 64) || "delegate";
}

export function buildExpertTools(
  expert: EngineExpert,
  skillTools: SkillTool[],
  baseSkillNames: ReadonlySet<string>,
  experts: Record<string, EngineExpert>,
): ExpertTools {
  const tools: ToolSet = {};
  const routes = new Map<string, ToolRoute>();
  const unique = (wanted: string, prefix: string): string => {
    let name = SAFE_NAME.test(wanted) ? wanted : wanted.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 64);
    if (routes.has(name)) name = `${prefix}__${name}`.slice(0, 64);
    for (let i = 2; routes.has(name); i += 1) name = `${name.slice(0, 60)}_${i}`;
    return name;
  };

  for (const t of skillTools) {
    const name = unique(t.name, t.skillName.replace(/[^a-zA-Z0-9_-]/g, "_"));
    routes.set(name, { kind: "skill", name, skillName: t.skillName, toolName: t.toolName, exposed: t.name, isBase: baseSkillNames.has(t.skillName) });
    tools[name] = tool({
      ...(t.description ? { description: t.description } : {}),
      inputSchema: jsonSchema(t.inputSchema as Parameters<typeof jsonSchema>[0]),
    });
  }

  for (const key of expert.delegates) {
    const delegate = experts[key];
    if (!delegate) continue;
    const name = unique(delegateToolName(key), "delegate");
    routes.set(name, { kind: "delegate", name, expertKey: key });
    tools[name] = tool({
      description: [
        `Delegate a task to the expert "${key}".`,
        delegate.description?.trim() || "",
        "It works on its own with the query you give and returns its final result.",
      ]
        .filter(Boolean)
        .join(" "),
      inputSchema: jsonSchema({
        type: "object",
        properties: { query: { type: "string", description: "The task for the expert, with everything it needs to know." } },
        required: ["query"],
        additionalProperties: false,
      }),
    });
  }

  for (const skill of expert.skills) {
    if (skill.type !== "interactive") continue;
    for (const t of skill.tools) {
      const name = unique(t.name, skill.name.replace(/[^a-zA-Z0-9_-]/g, "_"));
      routes.set(name, { kind: "interactive", name, skillName: skill.name, toolName: t.name });
      const description = [t.description, skill.description, "The user answers this; the run pauses until they do."]
        .filter(Boolean)
        .join(" ");
      tools[name] = tool({ description, inputSchema: jsonSchema(t.inputSchema as Parameters<typeof jsonSchema>[0]) });
    }
  }
  return { tools, routes };
}

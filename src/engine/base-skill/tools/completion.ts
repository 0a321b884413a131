import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { jsonResult, textResult, type SkillContext } from "../skill-context.js";

/**
 * The exact text attemptCompletion returns when the run may finish (no incomplete todos). The engine ends the
 * agent loop when a tool result from attemptCompletion is exactly this text; any other answer (a JSON object with
 * remainingTodos) means the model must keep working.
 */
export const ATTEMPT_COMPLETION_ACCEPTED = "[perstack:attemptCompletion:accepted]";

export function registerCompletionTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "attemptCompletion",
    { description: "Signal that the task is complete. If todos remain incomplete they are returned and the run continues.", inputSchema: {} },
    async () => {
      const remainingTodos = ctx.todos.filter((t) => !t.completed);
      return remainingTodos.length > 0 ? jsonResult({ remainingTodos }) : textResult(ATTEMPT_COMPLETION_ACCEPTED);
    },
  );
}

import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { jsonResult, type SkillContext } from "../skill-context.js";

export function registerTodoTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "todo",
    {
      description: "Manage the task list: add newTodos (titles) and mark completedTodos (ids) done. Returns the whole list.",
      inputSchema: { newTodos: z.array(z.string()).optional(), completedTodos: z.array(z.number().int()).optional() },
    },
    async ({ newTodos, completedTodos }) => {
      for (const title of newTodos ?? []) ctx.todos.push({ id: ctx.nextTodoId++, title, completed: false });
      for (const id of completedTodos ?? []) {
        const todo = ctx.todos.find((t) => t.id === id);
        if (todo) todo.completed = true;
      }
      return jsonResult({ todos: ctx.todos });
    },
  );

  server.registerTool("clearTodo", { description: "Reset the task list to empty.", inputSchema: {} }, async () => {
    ctx.todos = [];
    return jsonResult({ todos: [] });
  });
}

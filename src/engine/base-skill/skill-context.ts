import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

/** State shared by the base skill's tools for the life of one server. */
export interface SkillContext {
  /** The workspace root as configured (e.g. /workspace); every file tool is confined to it. */
  root: string;
  /** The environment exec's commands start from (a command's own `env` goes on top of it). */
  env: Readonly<Record<string, string | undefined>>;
  startedAt: number;
  todos: Todo[];
  nextTodoId: number;
}

export interface Todo {
  id: number;
  title: string;
  completed: boolean;
}

export function createSkillContext(root: string, env: Readonly<Record<string, string | undefined>>): SkillContext {
  return { root, env, startedAt: Date.now(), todos: [], nextTodoId: 0 };
}

/** Perstack's base skill answers with JSON text; models and the engine read it the same way. */
export function jsonResult(value: unknown): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value) }] };
}

export function textResult(text: string, isError = false): CallToolResult {
  return isError ? { content: [{ type: "text", text }], isError: true } : { content: [{ type: "text", text }] };
}

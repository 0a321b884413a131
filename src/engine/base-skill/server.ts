import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createSkillContext } from "./skill-context.js";
import { registerCompletionTools } from "./tools/completion.js";
import { registerDirectoryTools } from "./tools/directories.js";
import { registerExecTools } from "./tools/exec.js";
import { registerFileTools } from "./tools/files.js";
import { registerHealthTools } from "./tools/health.js";
import { registerMediaTools } from "./tools/media.js";
import { registerTodoTools } from "./tools/todo.js";

export const BASE_SKILL_NAME = "@perstack/base";
export const DEFAULT_WORKSPACE = "/workspace";

export interface BaseSkillOptions {
  /** Directory every file tool and exec's cwd are confined to. */
  root: string;
  /** The environment exec's commands start from. Default: this process's. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** The base skill an expert that declares no skills gets; its tool names are Perstack's. */
export function createBaseSkillServer(options: BaseSkillOptions): McpServer {
  const server = new McpServer({ name: BASE_SKILL_NAME, version: "0.1.0" });
  const ctx = createSkillContext(options.root, options.env ?? process.env);
  registerFileTools(server, ctx);
  registerDirectoryTools(server, ctx);
  registerMediaTools(server, ctx);
  registerExecTools(server, ctx);
  registerTodoTools(server, ctx);
  registerCompletionTools(server, ctx);
  registerHealthTools(server, ctx);
  return server;
}

async function main(): Promise<void> {
  const root = process.env.PERSTACK_WORKSPACE || DEFAULT_WORKSPACE;
  // Fail at start, not on the first tool call, when the workspace is missing.
  realpathSync(root);
  const server = createBaseSkillServer({ root });
  await server.connect(new StdioServerTransport());
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main().catch((error: unknown) => {
    process.stderr.write(`perstack base skill: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

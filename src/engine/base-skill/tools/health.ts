import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { jsonResult, type SkillContext } from "../skill-context.js";

export function registerHealthTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool("healthCheck", { description: "Report that the base skill is running.", inputSchema: {} }, async () => {
    const memory = process.memoryUsage();
    return jsonResult({
      status: "ok",
      workspace: ctx.root,
      uptime: `${Math.floor((Date.now() - ctx.startedAt) / 1000)}s`,
      memory: { heapUsed: `${Math.round(memory.heapUsed / 1048576)}MB`, heapTotal: `${Math.round(memory.heapTotal / 1048576)}MB` },
      pid: process.pid,
    });
  });
}

import { lstat, mkdir, readdir, rm, rmdir } from "node:fs/promises";
import { join, relative } from "node:path";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { WorkspacePathError, isErrno, resolveInWorkspace } from "../workspace-path.js";
import { jsonResult, type SkillContext } from "../skill-context.js";

// Perstack keeps its own state here; listing it only distracts the model.
const HIDDEN = new Set([".perstack"]);

export function registerDirectoryTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "listDirectory",
    {
      description: "List the immediate children of a workspace directory, sorted by name. Symbolic links are reported, not followed.",
      inputSchema: { path: z.string() },
    },
    async ({ path }) => {
      const absolute = await resolveInWorkspace(ctx.root, path);
      const rootReal = await resolveInWorkspace(ctx.root, ".");
      const names = (await readdir(absolute)).filter((name) => !HIDDEN.has(name)).sort();
      const items = [];
      for (const name of names) {
        const entry = join(absolute, name);
        const info = await lstat(entry);
        items.push({
          name,
          path: relative(rootReal, entry),
          type: info.isSymbolicLink() ? "symlink" : info.isDirectory() ? "directory" : info.isFile() ? "file" : "other",
          size: info.size,
          modified: info.mtime.toISOString(),
        });
      }
      return jsonResult({ path: absolute, items });
    },
  );

  server.registerTool(
    "createDirectory",
    {
      description: "Create a directory in the workspace, with any missing parents. It must not exist yet.",
      inputSchema: { path: z.string() },
    },
    async ({ path }) => {
      const absolute = await resolveInWorkspace(ctx.root, path, { forWrite: true });
      try {
        await lstat(absolute);
        throw new WorkspacePathError(`createDirectory: ${JSON.stringify(path)} already exists.`);
      } catch (error) {
        if (!isErrno(error, "ENOENT")) throw error;
      }
      await mkdir(absolute, { recursive: true });
      return jsonResult({ path: absolute });
    },
  );

  server.registerTool(
    "deleteDirectory",
    {
      description: "Delete a workspace directory; set recursive to delete its contents too. The workspace root cannot be deleted.",
      inputSchema: { path: z.string(), recursive: z.boolean().optional() },
    },
    async ({ path, recursive }) => {
      const absolute = await resolveInWorkspace(ctx.root, path);
      if (absolute === (await resolveInWorkspace(ctx.root, "."))) {
        throw new WorkspacePathError(`deleteDirectory: ${JSON.stringify(path)} is the workspace root; it cannot be deleted.`);
      }
      if (!(await lstat(absolute)).isDirectory()) {
        throw new WorkspacePathError(`deleteDirectory: ${JSON.stringify(path)} is not a directory; use deleteFile.`);
      }
      if (recursive) {
        // rm does not follow symbolic links inside the tree: it removes the links themselves.
        await rm(absolute, { recursive: true, force: false });
      } else {
        try {
          await rmdir(absolute);
        } catch (error) {
          if (!isErrno(error, "ENOTEMPTY")) throw error;
          throw new WorkspacePathError(`deleteDirectory: ${JSON.stringify(path)} is not empty; pass recursive: true to delete its contents.`);
        }
      }
      return jsonResult({ path: absolute });
    },
  );
}

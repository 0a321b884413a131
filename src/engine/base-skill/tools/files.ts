import { constants } from "node:fs";
import { lstat, mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, extname, relative } from "node:path";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { WorkspacePathError, isErrno, resolveInWorkspace } from "../workspace-path.js";
import { jsonResult, type SkillContext } from "../skill-context.js";
import { mimeTypeOf } from "./mime-type.js";

// O_NOFOLLOW: resolveInWorkspace returned a link-free path; if a link appears there before the open, fail instead
// of following it out of the workspace.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

export async function readConfinedFile(ctx: SkillContext, path: string): Promise<{ absolute: string; data: Buffer }> {
  const absolute = await resolveInWorkspace(ctx.root, path);
  const handle = await openNoFollow(path, absolute, READ_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is not a regular file.`);
    return { absolute, data: await handle.readFile() };
  } finally {
    await handle.close();
  }
}

async function writeConfinedFile(ctx: SkillContext, path: string, text: string, append: boolean): Promise<string> {
  const absolute = await resolveInWorkspace(ctx.root, path, { forWrite: !append });
  if (!append) await mkdir(dirname(absolute), { recursive: true });
  const handle = await openNoFollow(path, absolute, append ? APPEND_FLAGS : WRITE_FLAGS);
  try {
    if (!(await handle.stat()).isFile()) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is not a regular file.`);
    await handle.writeFile(text, "utf8");
  } finally {
    await handle.close();
  }
  return absolute;
}

async function openNoFollow(path: string, absolute: string, flags: number) {
  try {
    return await open(absolute, flags, 0o644);
  } catch (error) {
    if (isErrno(error, "ELOOP")) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is a symbolic link; refusing to follow it.`);
    if (isErrno(error, "ENOENT")) throw new WorkspacePathError(`Path ${JSON.stringify(path)} does not exist in the workspace.`);
    if (isErrno(error, "EISDIR")) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is a directory, not a file.`);
    throw error;
  }
}

export function registerFileTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "readTextFile",
    {
      description: "Read a UTF-8 text file in the workspace, optionally only lines [from, to) (0-indexed, `to` exclusive).",
      inputSchema: { path: z.string(), from: z.number().int().min(0).optional(), to: z.number().int().min(0).optional() },
    },
    async ({ path, from, to }) => {
      const { data } = await readConfinedFile(ctx, path);
      const lines = data.toString("utf8").split("\n");
      const start = from ?? 0;
      const end = Math.min(to ?? lines.length, lines.length);
      return jsonResult({ path, content: lines.slice(start, end).join("\n"), from: start, to: end });
    },
  );

  server.registerTool(
    "writeTextFile",
    {
      description: "Create or overwrite a UTF-8 text file in the workspace; parent directories are created.",
      inputSchema: { path: z.string(), text: z.string() },
    },
    async ({ path, text }) => jsonResult({ path: await writeConfinedFile(ctx, path, text, false), text }),
  );

  server.registerTool(
    "appendTextFile",
    {
      description: "Append text to the end of an existing file in the workspace. No newline is added.",
      inputSchema: { path: z.string(), text: z.string() },
    },
    async ({ path, text }) => jsonResult({ path: await writeConfinedFile(ctx, path, text, true), text }),
  );

  server.registerTool(
    "editTextFile",
    {
      description: "Replace the first exact occurrence of oldText with newText in a workspace file (CRLF is normalized to LF).",
      inputSchema: { path: z.string(), oldText: z.string().min(1), newText: z.string() },
    },
    async ({ path, oldText, newText }) => {
      const { data } = await readConfinedFile(ctx, path);
      const content = data.toString("utf8").replace(/\r\n/g, "\n");
      const wanted = oldText.replace(/\r\n/g, "\n");
      const at = content.indexOf(wanted);
      if (at < 0) throw new Error(`editTextFile: oldText was not found in ${JSON.stringify(path)}; read the file and copy the text exactly.`);
      const updated = content.slice(0, at) + newText.replace(/\r\n/g, "\n") + content.slice(at + wanted.length);
      const absolute = await writeConfinedFile(ctx, path, updated, false);
      return jsonResult({ path: absolute, oldText, newText });
    },
  );

  server.registerTool(
    "moveFile",
    {
      description: "Move or rename a file within the workspace. The destination must not exist; its directory is created.",
      inputSchema: { source: z.string(), destination: z.string() },
    },
    async ({ source, destination }) => {
      const from = await resolveInWorkspace(ctx.root, source, { followFinal: false });
      const to = await resolveInWorkspace(ctx.root, destination, { forWrite: true, followFinal: false });
      if (await exists(to)) throw new WorkspacePathError(`moveFile: destination ${JSON.stringify(destination)} already exists.`);
      await mkdir(dirname(to), { recursive: true });
      await rename(from, to);
      return jsonResult({ source: from, destination: to });
    },
  );

  server.registerTool(
    "deleteFile",
    {
      description: "Delete a file (not a directory) in the workspace. A symbolic link is removed, never its target.",
      inputSchema: { path: z.string() },
    },
    async ({ path }) => {
      const absolute = await resolveInWorkspace(ctx.root, path, { followFinal: false });
      if ((await lstat(absolute)).isDirectory()) {
        throw new WorkspacePathError(`deleteFile: ${JSON.stringify(path)} is a directory; use deleteDirectory.`);
      }
      await unlink(absolute);
      return jsonResult({ path: absolute });
    },
  );

  server.registerTool(
    "getFileInfo",
    { description: "Metadata of a file or directory in the workspace.", inputSchema: { path: z.string() } },
    async ({ path }) => {
      const absolute = await resolveInWorkspace(ctx.root, path);
      const info = await stat(absolute);
      const isDirectory = info.isDirectory();
      const mode = info.mode;
      return jsonResult({
        exists: true,
        path,
        absolutePath: absolute,
        relativePath: relative(await resolveInWorkspace(ctx.root, "."), absolute) || ".",
        name: basename(absolute),
        directory: dirname(absolute),
        extension: isDirectory ? null : extname(absolute) || null,
        type: isDirectory ? "directory" : info.isFile() ? "file" : "other",
        mimeType: isDirectory ? null : mimeTypeOf(absolute),
        size: info.size,
        sizeFormatted: formatSize(info.size),
        created: info.birthtime.toISOString(),
        modified: info.mtime.toISOString(),
        accessed: info.atime.toISOString(),
        permissions: { readable: (mode & 0o444) !== 0, writable: (mode & 0o222) !== 0, executable: (mode & 0o111) !== 0 },
      });
    },
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false;
    throw error;
  }
}

export function formatSize(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(2)} ${units[unit]}`;
}

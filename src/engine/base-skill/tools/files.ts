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

/**
 * A regular file of the workspace, whole. Its size is checked before it is read (and the read stops past the limit,
 * should it grow meanwhile), so a huge file costs the engine no memory: `tooBig` says what to do instead.
 */
export async function readConfinedFile(ctx: SkillContext, path: string, limit: { maxBytes: number; tooBig: string }): Promise<{ absolute: string; data: Buffer }> {
  const absolute = await resolveInWorkspace(ctx.root, path);
  const handle = await openNoFollow(path, absolute, READ_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is not a regular file.`);
    const refuse = (size: number) => new WorkspacePathError(`${JSON.stringify(path)} is ${megabytes(size)}, over the ${megabytes(limit.maxBytes)} a read takes; ${limit.tooBig}`);
    if (info.size > limit.maxBytes) throw refuse(info.size);
    // Read to its end, not to the size it had: it may grow meanwhile, and never past the limit.
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(Math.max(info.size - length, 0) + 1, READ_CHUNK_BYTES));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > limit.maxBytes) throw refuse(length);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return { absolute, data: Buffer.concat(chunks, length) };
  } finally {
    await handle.close();
  }
}

/** How much of a file one read takes at most. */
const READ_CHUNK_BYTES = 1024 * 1024;

/** What readTextFile returns at most, in characters: a bigger answer is read in parts (from, to). */
export const MAX_TEXT_READ_CHARS = 8 * 1024 * 1024;
/** The largest file editTextFile rewrites (it holds the file and its new text in memory). */
const MAX_EDIT_BYTES = 32 * 1024 * 1024;

/**
 * Lines [from, to) of a workspace text file, read a chunk at a time: lines before `from` are skipped without being
 * kept and the read stops at `to`, so a part of a huge file costs no more memory than the part. Lines are what
 * `text.split("\n")` makes of the file (a final newline ends in an empty last line). More than MAX_TEXT_READ_CHARS
 * is refused, naming what to ask for instead. `to` comes back as the end of what was read.
 */
async function readTextLines(ctx: SkillContext, path: string, from: number, to: number | undefined): Promise<{ content: string; to: number }> {
  const absolute = await resolveInWorkspace(ctx.root, path);
  const handle = await openNoFollow(path, absolute, READ_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new WorkspacePathError(`Path ${JSON.stringify(path)} is not a regular file.`);
    if (from === 0 && to === undefined && info.size > MAX_TEXT_READ_CHARS * 3) {
      throw new WorkspacePathError(`${JSON.stringify(path)} is ${megabytes(info.size)}, more than one read returns; read it in parts with from and to (line numbers).`);
    }
    const end = to ?? Number.POSITIVE_INFINITY;
    const kept: string[] = [];
    let current = "";
    let chars = 0;
    let index = 0;
    const keep = (piece: string) => {
      chars += piece.length;
      if (chars > MAX_TEXT_READ_CHARS) {
        throw new WorkspacePathError(`lines ${from} to ${to ?? "the end"} of ${JSON.stringify(path)} are more than ${MAX_TEXT_READ_CHARS} characters; ask for fewer lines (from, to).`);
      }
      current += piece;
    };
    const stream = handle.createReadStream({ encoding: "utf8", autoClose: false, highWaterMark: 256 * 1024 });
    try {
      reading: for await (const chunk of stream as AsyncIterable<string>) {
        for (let at = 0; ; ) {
          const newline = chunk.indexOf("\n", at);
          if (index >= from) keep(newline === -1 ? chunk.slice(at) : chunk.slice(at, newline));
          if (newline === -1) break;
          if (index >= from) kept.push(current);
          current = "";
          index += 1;
          at = newline + 1;
          if (index >= end) break reading;
        }
      }
    } finally {
      stream.destroy();
    }
    // The text after the last newline (or the whole file without one) is the last line, when the read got there.
    if (index < end && index >= from) kept.push(current);
    const total = index < end ? index + 1 : end;
    return { content: kept.join("\n"), to: Math.min(end, total) };
  } finally {
    await handle.close();
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
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
      description: "Read a UTF-8 text file in the workspace, optionally only lines [from, to) (0-indexed, `to` exclusive). One read returns at most 8 million characters: read a bigger file in parts.",
      inputSchema: { path: z.string(), from: z.number().int().min(0).optional(), to: z.number().int().min(0).optional() },
    },
    async ({ path, from, to }) => {
      const start = from ?? 0;
      const read = await readTextLines(ctx, path, start, to);
      return jsonResult({ path, content: read.content, from: start, to: read.to });
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
      const { data } = await readConfinedFile(ctx, path, { maxBytes: MAX_EDIT_BYTES, tooBig: "edit it with exec (sed, a script) instead." });
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

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBaseSkillServer } from "../../../src/engine/base-skill/server.js";
import { ATTEMPT_COMPLETION_ACCEPTED } from "../../../src/engine/base-skill/tools/completion.js";

const PERSTACK_TOOL_NAMES = [
  "readTextFile", "writeTextFile", "appendTextFile", "editTextFile", "listDirectory", "getFileInfo", "createDirectory",
  "deleteFile", "deleteDirectory", "moveFile", "readImageFile", "readPdfFile", "exec", "todo", "clearTodo",
  "healthCheck", "attemptCompletion",
];

// 1x1 transparent PNG.
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=", "base64");
const PDF = Buffer.from("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "latin1");

let base: string;
let ws: string;
let outside: string;
let client: Client;

async function connect(root: string): Promise<Client> {
  const server = createBaseSkillServer({ root });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const c = new Client({ name: "base-skill-test", version: "0.0.0" });
  await c.connect(clientSide);
  return c;
}

async function call(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function text(result: CallToolResult): string {
  return result.content.map((c) => (c.type === "text" ? c.text : "")).join("");
}

async function ok(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  const result = await call(name, args);
  expect(result.isError, `${name} failed: ${text(result)}`).toBeFalsy();
  return result;
}

async function json<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
  return JSON.parse(text(await ok(name, args))) as T;
}

async function refused(name: string, args: Record<string, unknown>, message: RegExp = /outside the workspace/): Promise<string> {
  const result = await call(name, args);
  expect(result.isError, `${name} ${JSON.stringify(args)} should be refused, got: ${text(result)}`).toBe(true);
  expect(text(result)).toMatch(message);
  return text(result);
}

/** Every path and file content under `dir`, so a test can prove the outside was not touched. */
function snapshot(dir: string): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = join(entry.parentPath, entry.name);
    entries[full] = entry.isFile() ? readFileSync(full, "utf8") : entry.isDirectory() ? "<dir>" : "<other>";
  }
  return entries;
}

beforeEach(async () => {
  base = realpathSync(mkdtempSync(join(tmpdir(), "base-skill-")));
  ws = join(base, "workspace");
  outside = join(base, "outside");
  mkdirSync(ws);
  mkdirSync(join(outside, "inner"), { recursive: true });
  writeFileSync(join(outside, "secret.txt"), "top secret\n");
  writeFileSync(join(outside, "inner", "deep.txt"), "deep\n");
  client = await connect(ws);
});

afterEach(async () => {
  await client.close();
  rmSync(base, { recursive: true, force: true });
});

describe("base skill: tools", () => {
  it("offers exactly Perstack's 17 tool names", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...PERSTACK_TOOL_NAMES].sort());
  });

  it("healthCheck reports ok, the workspace and uptime", async () => {
    const health = await json("healthCheck");
    expect(health).toMatchObject({ status: "ok", workspace: ws, pid: process.pid });
    expect(health.uptime).toMatch(/^\d+s$/);
  });

  it("writeTextFile creates parents; readTextFile reads all or a line range", async () => {
    await ok("writeTextFile", { path: "a/b/c.txt", text: "zero\none\ntwo\nthree" });
    expect(readFileSync(join(ws, "a/b/c.txt"), "utf8")).toBe("zero\none\ntwo\nthree");
    expect(await json("readTextFile", { path: "a/b/c.txt" })).toMatchObject({ content: "zero\none\ntwo\nthree" });
    expect(await json("readTextFile", { path: "a/b/c.txt", from: 1, to: 3 })).toEqual({ path: "a/b/c.txt", content: "one\ntwo", from: 1, to: 3 });
    await ok("writeTextFile", { path: "a/b/c.txt", text: "" });
    expect(readFileSync(join(ws, "a/b/c.txt"), "utf8")).toBe("");
  });

  it("readTextFile's lines are what split('\\n') makes of the file, read a chunk at a time", async () => {
    // Characters of two to four UTF-8 bytes across the reader's chunks (256 KiB), and a final newline.
    const lines = Array.from({ length: 3000 }, (_, i) => `${i} é ✓ 𝄞 ${"x".repeat(i % 400)}`);
    const text = `${lines.join("\n")}\n`;
    writeFileSync(join(ws, "many.txt"), text);
    const all = text.split("\n");
    expect(await json("readTextFile", { path: "many.txt" })).toEqual({ path: "many.txt", content: text, from: 0, to: all.length });
    for (const [from, to] of [[0, 1], [1234, 2345], [2999, 3001], [3000, 3001], [2990, 9999], [5000, 6000]] as const) {
      expect(await json("readTextFile", { path: "many.txt", from, to }), `${from}..${to}`).toEqual({ path: "many.txt", content: all.slice(from, to).join("\n"), from, to: Math.min(to, all.length) });
    }
    expect(await json("readTextFile", { path: "many.txt", from: 2998 })).toEqual({ path: "many.txt", content: all.slice(2998).join("\n"), from: 2998, to: all.length });
  });

  it("readTextFile returns at most 8 million characters: a bigger file is read in parts, and nothing is held that was not asked for", async () => {
    const line = `${"y".repeat(1023)}\n`;
    writeFileSync(join(ws, "big.txt"), line.repeat(30 * 1024));
    await refused("readTextFile", { path: "big.txt" }, /"big.txt" is 30\.0 MB, more than one read returns; read it in parts with from and to/);
    await refused("readTextFile", { path: "big.txt", from: 0, to: 20_000 }, /lines 0 to 20000 of "big.txt" are more than 8388608 characters; ask for fewer lines/);
    const part = await json<{ content: string; to: number }>("readTextFile", { path: "big.txt", from: 30 * 1024 - 2, to: 30 * 1024 + 5 });
    expect(part).toMatchObject({ content: `${"y".repeat(1023)}\n${"y".repeat(1023)}\n`, to: 30 * 1024 + 1 });
    // One line with no end, past the limit: refused while it is read, not held whole.
    writeFileSync(join(ws, "one-line.txt"), "z".repeat(10 * 1024 * 1024));
    await refused("readTextFile", { path: "one-line.txt" }, /lines 0 to the end of "one-line.txt" are more than 8388608 characters/);
    expect(await json("readTextFile", { path: "one-line.txt", from: 1 })).toMatchObject({ content: "", to: 1 });
  });

  it("images, PDFs and edits past their limits are refused from the file's size, before it is read", async () => {
    for (const [name, size] of [["huge.png", 16], ["huge.pdf", 31], ["huge.txt", 33]] as const) {
      // Sparse: the size is there, the bytes are not.
      writeFileSync(join(ws, name), "");
      truncateSync(join(ws, name), size * 1024 * 1024);
    }
    await refused("readImageFile", { path: "huge.png" }, /"huge.png" is 16\.0 MB, over the 15\.0 MB a read takes; readImageFile takes images up to 15 MB/);
    await refused("readPdfFile", { path: "huge.pdf" }, /"huge.pdf" is 31\.0 MB, over the 30\.0 MB a read takes/);
    await refused("editTextFile", { path: "huge.txt", oldText: "a", newText: "b" }, /"huge.txt" is 33\.0 MB, over the 32\.0 MB a read takes; edit it with exec/);
  });

  it("accepts an absolute path inside the workspace", async () => {
    await ok("writeTextFile", { path: join(ws, "abs.txt"), text: "x" });
    expect(await json("readTextFile", { path: join(ws, "abs.txt") })).toMatchObject({ content: "x" });
  });

  it("readTextFile of a missing file names the path", async () => {
    await refused("readTextFile", { path: "nope.txt" }, /"nope.txt" does not exist/);
  });

  it("appendTextFile appends to an existing file and refuses a missing one", async () => {
    writeFileSync(join(ws, "log.txt"), "one\n");
    await ok("appendTextFile", { path: "log.txt", text: "two\n" });
    expect(readFileSync(join(ws, "log.txt"), "utf8")).toBe("one\ntwo\n");
    await refused("appendTextFile", { path: "missing.txt", text: "x" }, /does not exist/);
    expect(existsSync(join(ws, "missing.txt"))).toBe(false);
  });

  it("editTextFile replaces the first occurrence and reports a missing oldText", async () => {
    writeFileSync(join(ws, "e.txt"), "alpha\r\nbeta\nbeta\n");
    await ok("editTextFile", { path: "e.txt", oldText: "beta", newText: "gamma" });
    expect(readFileSync(join(ws, "e.txt"), "utf8")).toBe("alpha\ngamma\nbeta\n");
    await refused("editTextFile", { path: "e.txt", oldText: "delta", newText: "x" }, /oldText was not found in "e.txt"/);
  });

  it("getFileInfo describes files and directories", async () => {
    writeFileSync(join(ws, "f.md"), "12345");
    mkdirSync(join(ws, "d"));
    expect(await json("getFileInfo", { path: "f.md" })).toMatchObject({
      exists: true, name: "f.md", type: "file", size: 5, extension: ".md", mimeType: "text/markdown", absolutePath: join(ws, "f.md"),
    });
    expect(await json("getFileInfo", { path: "d" })).toMatchObject({ type: "directory", extension: null, mimeType: null });
  });

  it("listDirectory lists sorted children, hides .perstack and reports links without following them", async () => {
    writeFileSync(join(ws, "b.txt"), "b");
    mkdirSync(join(ws, "a"));
    mkdirSync(join(ws, ".perstack"));
    symlinkSync(join(ws, "b.txt"), join(ws, "c-link"));
    const listing = await json<{ items: { name: string; type: string; path: string }[] }>("listDirectory", { path: "." });
    expect(listing.items.map((i) => [i.name, i.type])).toEqual([["a", "directory"], ["b.txt", "file"], ["c-link", "symlink"]]);
    writeFileSync(join(ws, "a", "x.txt"), "x");
    const nested = await json<{ items: { path: string }[] }>("listDirectory", { path: "a" });
    expect(nested.items.map((i) => i.path)).toEqual([join("a", "x.txt")]);
  });

  it("createDirectory creates parents and refuses an existing directory", async () => {
    await ok("createDirectory", { path: "x/y/z" });
    expect(statSync(join(ws, "x/y/z")).isDirectory()).toBe(true);
    await refused("createDirectory", { path: "x/y" }, /already exists/);
  });

  it("moveFile renames, creates the destination directory and refuses an existing destination", async () => {
    writeFileSync(join(ws, "m.txt"), "m");
    writeFileSync(join(ws, "taken.txt"), "t");
    await ok("moveFile", { source: "m.txt", destination: "moved/m2.txt" });
    expect(readFileSync(join(ws, "moved/m2.txt"), "utf8")).toBe("m");
    expect(existsSync(join(ws, "m.txt"))).toBe(false);
    await refused("moveFile", { source: "moved/m2.txt", destination: "taken.txt" }, /already exists/);
  });

  it("deleteFile removes a file and refuses a directory", async () => {
    writeFileSync(join(ws, "gone.txt"), "g");
    mkdirSync(join(ws, "dir"));
    await ok("deleteFile", { path: "gone.txt" });
    expect(existsSync(join(ws, "gone.txt"))).toBe(false);
    await refused("deleteFile", { path: "dir" }, /is a directory/);
  });

  it("deleteDirectory removes empty directories, trees only when recursive, never the root", async () => {
    mkdirSync(join(ws, "empty"));
    mkdirSync(join(ws, "full/sub"), { recursive: true });
    writeFileSync(join(ws, "full/sub/f.txt"), "f");
    await ok("deleteDirectory", { path: "empty" });
    expect(existsSync(join(ws, "empty"))).toBe(false);
    await refused("deleteDirectory", { path: "full" }, /"full" is not empty; pass recursive: true/);
    expect(existsSync(join(ws, "full/sub/f.txt"))).toBe(true);
    await ok("deleteDirectory", { path: "full", recursive: true });
    expect(existsSync(join(ws, "full"))).toBe(false);
    await refused("deleteDirectory", { path: ".", recursive: true }, /workspace root/);
    expect(existsSync(ws)).toBe(true);
  });

  it("readImageFile returns image content with the MIME type from the extension", async () => {
    writeFileSync(join(ws, "pic.png"), PNG);
    const result = await ok("readImageFile", { path: "pic.png" });
    const image = result.content.find((c) => c.type === "image");
    expect(image).toMatchObject({ type: "image", mimeType: "image/png", data: PNG.toString("base64") });
    await refused("readImageFile", { path: "notes.txt" }, /not a PNG, JPEG, GIF or WebP/);
  });

  it("readPdfFile returns the PDF as a base64 blob resource", async () => {
    writeFileSync(join(ws, "doc.pdf"), PDF);
    writeFileSync(join(ws, "fake.pdf"), "hello");
    const result = await ok("readPdfFile", { path: "doc.pdf" });
    const resource = result.content.find((c) => c.type === "resource");
    expect(resource).toMatchObject({ resource: { mimeType: "application/pdf", blob: PDF.toString("base64") } });
    await refused("readPdfFile", { path: "fake.pdf" }, /not a PDF/);
  });

  it("exec runs in the workspace without a shell, with args, env and cwd", async () => {
    mkdirSync(join(ws, "sub"));
    expect(text(await ok("exec", { command: "pwd" }))).toBe(`${ws}\n`);
    expect(text(await ok("exec", { command: "pwd", cwd: "sub" }))).toBe(`${join(ws, "sub")}\n`);
    expect(text(await ok("exec", { command: "echo", args: ["$HOME", "a b"] }))).toBe("$HOME a b\n");
    expect(text(await ok("exec", { command: "sh", args: ["-c", "echo $GREETING"], env: { GREETING: "hi" } }))).toBe("hi\n");
    expect(text(await ok("exec", { command: "true" }))).toBe("Command executed successfully, but produced no output.");
    expect(text(await ok("exec", { command: "sh", args: ["-c", "echo out; echo err >&2"], stderr: false }))).toBe("out\n");
  });

  it("exec reports a failing exit code and a missing command", async () => {
    await refused("exec", { command: "sh", args: ["-c", "echo boom >&2; exit 3"] }, /exited with code 3\.\nboom/);
    await refused("exec", { command: "definitely-not-a-command-xyz" }, /could not start/);
  });

  it("exec bounds its output", async () => {
    const out = text(await ok("exec", { command: "sh", args: ["-c", "head -c 300000 /dev/zero | tr '\\0' a"] }));
    expect(out.length).toBeLessThan(100_200);
    expect(out).toMatch(/output truncated: 200000 more characters/);
  });

  it("exec kills the whole process group on timeout", async () => {
    const started = Date.now();
    await refused("exec", { command: "sh", args: ["-c", "sleep 30 & echo $! > child.pid; wait"], timeout: 500 }, /timed out after 500 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
    const pid = Number(readFileSync(join(ws, "child.pid"), "utf8").trim());
    await new Promise((r) => setTimeout(r, 200));
    expect(isRunning(pid), `background child ${pid} survived the timeout`).toBe(false);
  });

  it("todo, clearTodo and attemptCompletion keep and check the task list", async () => {
    expect(await json("todo", { newTodos: ["first", "second"] })).toEqual({
      todos: [{ id: 0, title: "first", completed: false }, { id: 1, title: "second", completed: false }],
    });
    expect(await json("todo", { completedTodos: [0] })).toMatchObject({ todos: [{ id: 0, completed: true }, { id: 1, completed: false }] });
    expect(await json("attemptCompletion")).toEqual({ remainingTodos: [{ id: 1, title: "second", completed: false }] });
    await ok("todo", { completedTodos: [1] });
    expect(text(await ok("attemptCompletion"))).toBe(ATTEMPT_COMPLETION_ACCEPTED);
    expect(await json("clearTodo")).toEqual({ todos: [] });
    expect(await json("todo", { newTodos: ["third"] })).toEqual({ todos: [{ id: 2, title: "third", completed: false }] });
    await ok("clearTodo");
    expect(text(await ok("attemptCompletion"))).toBe(ATTEMPT_COMPLETION_ACCEPTED);
  });
});

describe("base skill: confinement to the workspace", () => {
  let before: Record<string, string>;
  let beforeBase: string[];

  beforeEach(() => {
    symlinkSync(outside, join(ws, "outlink"));
    symlinkSync(join(outside, "secret.txt"), join(ws, "secretlink"));
    symlinkSync(join(outside, "created.txt"), join(ws, "dangling"));
    symlinkSync(join(outside, "newdir"), join(ws, "danglingdir"));
    writeFileSync(join(ws, "mine.txt"), "mine");
    before = snapshot(outside);
    beforeBase = readdirSync(base).sort();
  });

  afterEach(() => {
    // Whatever a test tried, nothing outside the workspace may have changed.
    expect(snapshot(outside)).toEqual(before);
    expect(readdirSync(base).sort()).toEqual(beforeBase);
  });

  it("refuses `..` escapes for reads and writes", async () => {
    await refused("readTextFile", { path: "../outside/secret.txt" });
    await refused("readTextFile", { path: "sub/../../outside/secret.txt" });
    await refused("writeTextFile", { path: "../outside.txt", text: "x" });
    await refused("writeTextFile", { path: "../outside/new.txt", text: "x" });
    await refused("appendTextFile", { path: "../outside/secret.txt", text: "x" });
    await refused("editTextFile", { path: "../outside/secret.txt", oldText: "top", newText: "x" });
    expect(existsSync(join(base, "outside.txt"))).toBe(false);
  });

  it("refuses absolute paths outside the workspace", async () => {
    const message = await refused("readTextFile", { path: "/etc/passwd" });
    expect(message).toContain('"/etc/passwd"');
    await refused("writeTextFile", { path: join(outside, "abs.txt"), text: "x" });
    await refused("readTextFile", { path: join(outside, "secret.txt") });
    await refused("getFileInfo", { path: "/etc" });
    await refused("listDirectory", { path: "/" });
  });

  it("refuses reads and writes through a symlink to a directory outside", async () => {
    const message = await refused("readTextFile", { path: "outlink/secret.txt" });
    expect(message).toContain('symbolic link "outlink"');
    await refused("readTextFile", { path: "outlink/inner/deep.txt" });
    await refused("writeTextFile", { path: "outlink/new.txt", text: "x" });
    await refused("writeTextFile", { path: "outlink/inner/new.txt", text: "x" });
    await refused("writeTextFile", { path: "outlink/brand/new/dir/file.txt", text: "x" });
    await refused("appendTextFile", { path: "outlink/secret.txt", text: "x" });
    await refused("editTextFile", { path: "outlink/secret.txt", oldText: "top", newText: "x" });
    await refused("readImageFile", { path: "outlink/pic.png" });
    await refused("readPdfFile", { path: "outlink/doc.pdf" });
  });

  it("refuses a symlink file pointing outside for every file tool", async () => {
    await refused("readTextFile", { path: "secretlink" });
    await refused("writeTextFile", { path: "secretlink", text: "overwritten" });
    await refused("appendTextFile", { path: "secretlink", text: "x" });
    await refused("editTextFile", { path: "secretlink", oldText: "top", newText: "x" });
    await refused("getFileInfo", { path: "secretlink" });
  });

  it("refuses writes through a dangling symlink pointing outside, creating nothing there", async () => {
    await refused("writeTextFile", { path: "dangling", text: "x" });
    await refused("appendTextFile", { path: "dangling", text: "x" });
    await refused("writeTextFile", { path: "danglingdir/file.txt", text: "x" });
    await refused("createDirectory", { path: "danglingdir" });
    await refused("createDirectory", { path: "danglingdir/sub" });
    await refused("moveFile", { source: "mine.txt", destination: "danglingdir/mine.txt" });
    expect(existsSync(join(outside, "created.txt"))).toBe(false);
    expect(existsSync(join(outside, "newdir"))).toBe(false);
  });

  it("refuses a chain of symlinks that ends outside", async () => {
    symlinkSync(join(ws, "outlink"), join(ws, "hop"));
    symlinkSync("hop/inner", join(ws, "hop2"));
    await refused("readTextFile", { path: "hop/secret.txt" });
    await refused("writeTextFile", { path: "hop2/deep.txt", text: "x" });
  });

  it("refuses moveFile, createDirectory, deleteDirectory, deleteFile, listDirectory and getFileInfo through escapes", async () => {
    await refused("moveFile", { source: "outlink/secret.txt", destination: "stolen.txt" });
    await refused("moveFile", { source: "../outside/secret.txt", destination: "stolen.txt" });
    await refused("moveFile", { source: "mine.txt", destination: "outlink/mine.txt" });
    await refused("moveFile", { source: "mine.txt", destination: "../mine.txt" });
    expect(existsSync(join(ws, "stolen.txt"))).toBe(false);
    expect(readFileSync(join(ws, "mine.txt"), "utf8")).toBe("mine");
    await refused("createDirectory", { path: "outlink/made" });
    await refused("createDirectory", { path: "../made" });
    await refused("deleteDirectory", { path: "outlink", recursive: true });
    await refused("deleteDirectory", { path: "outlink/inner", recursive: true });
    await refused("deleteDirectory", { path: "../outside", recursive: true });
    await refused("deleteFile", { path: "outlink/secret.txt" });
    await refused("deleteFile", { path: "../outside/secret.txt" });
    await refused("listDirectory", { path: "outlink" });
    await refused("listDirectory", { path: ".." });
    await refused("getFileInfo", { path: "outlink/secret.txt" });
    await refused("getFileInfo", { path: ".." });
  });

  it("refuses exec with a cwd outside the workspace", async () => {
    await refused("exec", { command: "touch", args: ["escaped.txt"], cwd: ".." });
    await refused("exec", { command: "touch", args: ["escaped.txt"], cwd: "outlink" });
    await refused("exec", { command: "touch", args: ["escaped.txt"], cwd: outside });
    await refused("exec", { command: "touch", args: ["escaped.txt"], cwd: "/tmp" });
  });

  it("deleteFile on a link to an outside file removes only the link", async () => {
    await ok("deleteFile", { path: "secretlink" });
    expect(existsSync(join(ws, "secretlink"))).toBe(false);
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("top secret\n");
  });

  it("treats `link/..` lexically, so it stays in the workspace", async () => {
    await ok("writeTextFile", { path: "outlink/../lexical.txt", text: "in" });
    expect(readFileSync(join(ws, "lexical.txt"), "utf8")).toBe("in");
  });

  it("follows symlinks that stay inside the workspace", async () => {
    mkdirSync(join(ws, "real"));
    symlinkSync(join(ws, "real"), join(ws, "inlink"));
    symlinkSync("real/target.txt", join(ws, "inner-dangling"));
    await ok("writeTextFile", { path: "inlink/f.txt", text: "via link" });
    expect(readFileSync(join(ws, "real/f.txt"), "utf8")).toBe("via link");
    await ok("writeTextFile", { path: "inner-dangling", text: "created" });
    expect(readFileSync(join(ws, "real/target.txt"), "utf8")).toBe("created");
    expect(await json("readTextFile", { path: "inlink/f.txt" })).toMatchObject({ content: "via link" });
  });
});

describe("base skill: workspace root given through a symlink", () => {
  let linkRoot: string;
  let linkedClient: Client;

  beforeEach(async () => {
    linkRoot = join(base, "ws-link");
    symlinkSync(ws, linkRoot);
    linkedClient = await connect(linkRoot);
  });

  afterEach(async () => {
    await linkedClient.close();
  });

  it("accepts absolute paths under the configured root and still refuses escapes", async () => {
    const result = (await linkedClient.callTool({ name: "writeTextFile", arguments: { path: join(linkRoot, "x.txt"), text: "x" } })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(readFileSync(join(ws, "x.txt"), "utf8")).toBe("x");
    const escape = (await linkedClient.callTool({ name: "readTextFile", arguments: { path: "../outside/secret.txt" } })) as CallToolResult;
    expect(escape.isError).toBe(true);
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed child that nobody has reaped yet (no init in some containers) is a zombie, not running.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

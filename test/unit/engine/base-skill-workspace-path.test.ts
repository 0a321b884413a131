import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkspacePathError, isInside, resolveInWorkspace } from "../../../src/engine/base-skill/workspace-path.js";

let base: string;
let ws: string;
let outside: string;

beforeEach(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), "workspace-path-")));
  ws = join(base, "ws");
  outside = join(base, "out");
  mkdirSync(join(ws, "dir"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(ws, "file.txt"), "f");
  writeFileSync(join(outside, "secret.txt"), "s");
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

describe("isInside", () => {
  it.each([
    ["/w", "/w", true],
    ["/w", "/w/a/b", true],
    ["/w", "/w/..a", true],
    ["/w", "/wx", false],
    ["/w", "/", false],
    ["/w", "/other/w", false],
  ])("isInside(%s, %s) is %s", (root, candidate, expected) => {
    expect(isInside(root, candidate)).toBe(expected);
  });
});

describe("resolveInWorkspace", () => {
  it("resolves relative and absolute paths inside the root", async () => {
    expect(await resolveInWorkspace(ws, "file.txt")).toBe(join(ws, "file.txt"));
    expect(await resolveInWorkspace(ws, "./dir/../file.txt")).toBe(join(ws, "file.txt"));
    expect(await resolveInWorkspace(ws, join(ws, "dir"))).toBe(join(ws, "dir"));
    expect(await resolveInWorkspace(ws, ".")).toBe(ws);
  });

  it("returns not-yet-existing paths only for writes", async () => {
    expect(await resolveInWorkspace(ws, "dir/new/a.txt", { forWrite: true })).toBe(join(ws, "dir/new/a.txt"));
    await expect(resolveInWorkspace(ws, "dir/new/a.txt")).rejects.toThrow(/"dir\/new\/a.txt" does not exist/);
  });

  it.each(["", "   ", "a\0b"])("rejects the malformed path %j", async (path) => {
    await expect(resolveInWorkspace(ws, path)).rejects.toBeInstanceOf(WorkspacePathError);
  });

  it("rejects `..` escapes and absolute paths outside, naming the path", async () => {
    await expect(resolveInWorkspace(ws, "../out/secret.txt")).rejects.toThrow(/"..\/out\/secret.txt" is outside the workspace/);
    await expect(resolveInWorkspace(ws, "..", { forWrite: true })).rejects.toThrow(/outside the workspace/);
    await expect(resolveInWorkspace(ws, "/etc/passwd")).rejects.toThrow(/"\/etc\/passwd" is outside the workspace/);
    await expect(resolveInWorkspace(ws, `${ws}x/a`, { forWrite: true })).rejects.toThrow(/outside the workspace/);
  });

  it("rejects symlinks resolving outside in any component, including dangling ones", async () => {
    symlinkSync(outside, join(ws, "dir", "link"));
    symlinkSync(join(outside, "secret.txt"), join(ws, "filelink"));
    symlinkSync(join(outside, "nope", "x"), join(ws, "dangling"));
    await expect(resolveInWorkspace(ws, "dir/link/secret.txt")).rejects.toThrow(/symbolic link "dir\/link" points to/);
    await expect(resolveInWorkspace(ws, "dir/link/new.txt", { forWrite: true })).rejects.toThrow(/outside the workspace/);
    await expect(resolveInWorkspace(ws, "filelink")).rejects.toThrow(/outside the workspace/);
    await expect(resolveInWorkspace(ws, "dangling", { forWrite: true })).rejects.toThrow(/outside the workspace/);
  });

  it("with followFinal false, returns the link itself but still checks its parents", async () => {
    symlinkSync(outside, join(ws, "link"));
    expect(await resolveInWorkspace(ws, "link", { followFinal: false })).toBe(join(ws, "link"));
    await expect(resolveInWorkspace(ws, "link/secret.txt", { followFinal: false })).rejects.toThrow(/outside the workspace/);
  });

  it("rejects a path through a regular file and a symlink loop with clear errors", async () => {
    await expect(resolveInWorkspace(ws, "file.txt/x", { forWrite: true })).rejects.toThrow(/"file.txt" is not a directory/);
    symlinkSync(join(ws, "b"), join(ws, "a"));
    symlinkSync(join(ws, "a"), join(ws, "b"));
    await expect(resolveInWorkspace(ws, "a/x", { forWrite: true })).rejects.toThrow(/too many symbolic links/);
  });
});

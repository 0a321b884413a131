// diffWorkspaces on real trees in a temporary directory: what it reports, what it never reads or follows, and that
// its patch is one `git apply` takes.
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { diffWorkspaces } from "../../../src/compare/workspace-diff.js";
import type { WorkspaceChanges } from "../../../src/compare/comparison.js";

let dir: string;
let original: string;
let final: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "perstack-diff-test-"));
  original = join(dir, "original");
  final = join(dir, "final");
  mkdirSync(original);
  mkdirSync(final);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function put(root: string, path: string, content: string | Buffer, mode?: number): void {
  const file = join(root, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
}

/** Both trees hold the same files. */
function both(path: string, content: string | Buffer): void {
  put(original, path, content);
  put(final, path, content);
}

/** Applies the patch to a copy of the original with git, which is strict about the format. */
function gitApplies(changes: WorkspaceChanges): void {
  const target = join(dir, "apply");
  cpSync(original, target, { recursive: true, verbatimSymlinks: true });
  const patchFile = join(dir, "changes.patch");
  writeFileSync(patchFile, changes.patch);
  execFileSync("git", ["apply", "--check", "--unsafe-paths", patchFile], { cwd: target, stdio: "pipe" });
  execFileSync("git", ["apply", patchFile], { cwd: target, stdio: "pipe" });
}

describe("diffWorkspaces", () => {
  it("reports nothing for identical trees", async () => {
    both("a.txt", "same\n");
    both("sub/b.bin", Buffer.from([0, 1, 2]));
    mkdirSync(join(final, "empty-dir"));
    expect(await diffWorkspaces(original, final)).toEqual({ files: [], patch: "", patchTruncated: false });
  });

  it("finds added, modified and deleted text files, with line counts and a patch git applies", async () => {
    both("keep.txt", "unchanged\n");
    put(original, "edit.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n");
    put(final, "edit.txt", "one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n");
    put(original, "gone.txt", "bye\nbye\n");
    put(final, "nested/deep/new.txt", "hello\nworld");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([
      { path: "edit.txt", status: "modified", kind: "text", bytesBefore: 49, bytesAfter: 56, added: 2, removed: 1 },
      { path: "gone.txt", status: "deleted", kind: "text", bytesBefore: 8, added: 0, removed: 2 },
      { path: "nested/deep/new.txt", status: "added", kind: "text", bytesAfter: 11, added: 2, removed: 0 },
    ]);
    expect(changes.patchTruncated).toBe(false);
    expect(changes.patch).toContain("diff --git a/edit.txt b/edit.txt\n--- a/edit.txt\n+++ b/edit.txt\n@@ -1,6 +1,6 @@\n one\n two\n-three\n+THREE\n");
    expect(changes.patch).toContain("@@ -8,3 +8,4 @@\n eight\n nine\n ten\n+eleven\n");
    expect(changes.patch).toContain("diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-bye\n-bye\n");
    expect(changes.patch).toContain(
      "diff --git a/nested/deep/new.txt b/nested/deep/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/nested/deep/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n\\ No newline at end of file\n",
    );
    gitApplies(changes);
  });

  it("reports a mode change and an added empty file in forms git applies", async () => {
    put(original, "run.sh", "#!/bin/sh\necho hi\n", 0o644);
    put(final, "run.sh", "#!/bin/sh\necho hi\n", 0o755);
    put(final, "empty.txt", "");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([
      { path: "empty.txt", status: "added", kind: "text", bytesAfter: 0, added: 0, removed: 0 },
      { path: "run.sh", status: "modified", kind: "text", bytesBefore: 18, bytesAfter: 18, added: 0, removed: 0 },
    ]);
    expect(changes.patch).toContain("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n");
    gitApplies(changes);
  });

  it("classifies binary content (a NUL, invalid UTF-8) and keeps it out of the patch", async () => {
    put(original, "image.png", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1]));
    put(final, "image.png", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 2]));
    put(final, "latin1.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    put(original, "became-binary.txt", "text\n");
    put(final, "became-binary.txt", Buffer.from("text\0\n"));
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([
      { path: "became-binary.txt", status: "modified", kind: "binary", bytesBefore: 5, bytesAfter: 6 },
      { path: "image.png", status: "modified", kind: "binary", bytesBefore: 6, bytesAfter: 6 },
      { path: "latin1.txt", status: "added", kind: "binary", bytesAfter: 5 },
    ]);
    expect(changes.patch).toBe("");
  });

  it("marks files over the size cap too-large, and still notices whether they changed", async () => {
    const big = Buffer.alloc(3000, "a");
    both("same-big.txt", big);
    put(original, "changed-big.txt", big);
    put(final, "changed-big.txt", Buffer.concat([big.subarray(0, 2999), Buffer.from("b")]));
    put(final, "new-big.txt", big);
    const changes = await diffWorkspaces(original, final, { limits: { maxTextBytes: 1000 } });
    expect(changes.files).toEqual([
      { path: "changed-big.txt", status: "modified", kind: "too-large", bytesBefore: 3000, bytesAfter: 3000 },
      { path: "new-big.txt", status: "added", kind: "too-large", bytesAfter: 3000 },
    ]);
    expect(changes.patch).toBe("");
  });

  it("compares a large file chunk by chunk across the default cap", async () => {
    const big = Buffer.alloc(1024 ** 2 + 200_000, "x");
    both("same.log", big);
    put(original, "late-change.log", big);
    const changed = Buffer.from(big);
    changed[changed.length - 1] = 0x79;
    put(final, "late-change.log", changed);
    const changes = await diffWorkspaces(original, final);
    expect(changes.files.map((f) => [f.path, f.status, f.kind])).toEqual([["late-change.log", "modified", "too-large"]]);
  });

  it("records symlinks as special changes and never follows them, even to outside the workspace", async () => {
    const secret = join(dir, "secret.txt");
    writeFileSync(secret, "outside\n");
    symlinkSync(secret, join(final, "leak.txt"));
    symlinkSync("/etc", join(final, "etc"));
    both("target.txt", "t\n");
    symlinkSync("target.txt", join(original, "link"));
    symlinkSync("other.txt", join(final, "link"));
    symlinkSync("same", join(original, "same-link"));
    symlinkSync("same", join(final, "same-link"));
    put(original, "file-became-link", "x\n");
    symlinkSync("/etc/passwd", join(final, "file-became-link"));
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([
      { path: "etc", status: "added", kind: "special" },
      { path: "file-became-link", status: "modified", kind: "special", bytesBefore: 2 },
      { path: "leak.txt", status: "added", kind: "special" },
      { path: "link", status: "modified", kind: "special" },
    ]);
    expect(changes.patch).toBe("");
    expect(changes.patch).not.toContain("outside");
  });

  it("records a FIFO without opening it (opening one would wait for a writer)", async () => {
    execFileSync("mkfifo", [join(final, "pipe")]);
    execFileSync("mkfifo", [join(original, "old-pipe")]);
    execFileSync("mkfifo", [join(final, "old-pipe")]);
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([{ path: "pipe", status: "added", kind: "special" }]);
  });

  it("keeps names with spaces, newlines, quotes and unicode, and quotes them in the patch as git does", async () => {
    const names = ["with space.txt", "new\nline.txt", 'quote".txt', "tab\there.txt", "ünïcødé/日本.txt"];
    for (const name of names) put(final, name, `${name}\n`);
    put(original, "with space.txt", "before\n");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files.map((f) => [f.path, f.status])).toEqual([
      ["new\nline.txt", "added"],
      ['quote".txt', "added"],
      ["tab\there.txt", "added"],
      ["with space.txt", "modified"],
      ["ünïcødé/日本.txt", "added"],
    ]);
    expect(changes.patch).toContain('diff --git "a/new\\nline.txt" "b/new\\nline.txt"\n');
    expect(changes.patch).toContain('+++ "b/quote\\".txt"\n');
    expect(changes.patch).toContain('+++ "b/tab\\there.txt"\n');
    expect(changes.patch).toContain("--- a/with space.txt\n+++ b/with space.txt\n");
    expect(changes.patch).toContain('+++ "b/\\303\\274n\\303\\257c\\303\\270d\\303\\251/\\346\\227\\245\\346\\234\\254.txt"\n');
    // Every header line is one line: no name broke out of it.
    for (const line of changes.patch.split("\n").filter((l) => /^(---|\+\+\+|diff --git) /.test(l))) {
      expect(line).toMatch(/^(---|\+\+\+|diff --git) ("[^\n]*"|\/dev\/null|[ab]\/[^\n"]*)/);
    }
    gitApplies(changes);
  });

  it("shows a name that is not valid UTF-8 as a special change, without reading it", async () => {
    const name = Buffer.concat([Buffer.from(`${final}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".txt")]);
    writeFileSync(name, "x");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([{ path: "bad-\uFFFD\uFFFD.txt", status: "added", kind: "special" }]);
  });

  it("treats a directory replaced by a file as the file added and the directory's files deleted", async () => {
    put(original, "thing/inner.txt", "inner\n");
    put(final, "thing", "now a file\n");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files.map((f) => [f.path, f.status, f.kind])).toEqual([
      ["thing", "added", "text"],
      ["thing/inner.txt", "deleted", "text"],
    ]);
    gitApplies(changes);
  });

  it("leaves excluded paths out of both trees", async () => {
    put(original, "perstack/jobs/j.json", "{}\n");
    put(final, "perstack/evil.txt", "x\n");
    put(final, "out/compare-1/report.html", "<html>\n");
    put(final, "outside-the-exclude.txt", "x\n");
    const changes = await diffWorkspaces(original, final, { exclude: [join(original, "perstack"), join(original, "out/compare-1"), "/elsewhere"] });
    expect(changes.files.map((f) => f.path)).toEqual(["outside-the-exclude.txt"]);
  });

  it("clips the patch at the cap, at a line end, and says so", async () => {
    for (let i = 0; i < 5; i++) put(final, `f${i}.txt`, `${"line of text\n".repeat(40)}`);
    const changes = await diffWorkspaces(original, final, { limits: { maxPatchBytes: 1200 } });
    expect(changes.patchTruncated).toBe(true);
    expect(Buffer.byteLength(changes.patch)).toBeLessThanOrEqual(1200);
    expect(changes.patch.endsWith("\n")).toBe(true);
    // The file list and the counts are complete even where the patch is not.
    expect(changes.files).toHaveLength(5);
    expect(changes.files.every((f) => f.added === 40)).toBe(true);
  });

  it("does not split a multi-byte character when clipping", async () => {
    put(final, "a.txt", "é".repeat(2000));
    const changes = await diffWorkspaces(original, final, { limits: { maxPatchBytes: 1001 } });
    expect(changes.patchTruncated).toBe(true);
    expect(changes.patch).not.toContain("\uFFFD");
  });

  it("stops walking at maxEntries and compares only what both walks covered", async () => {
    for (let i = 0; i < 10; i++) both(`d${i}.txt`, "same\n");
    put(original, "d3.txt", "changed\n");
    for (let i = 0; i < 3; i++) put(final, `m/${i}.txt`, "x\n");
    // Listing z would pass the limit: the walk stops there, so what lies beyond is neither "added" (z's files)
    // nor "deleted" (the original's zz file): it is unknown.
    for (let i = 0; i < 30; i++) put(final, `z/${String(i).padStart(2, "0")}.txt`, "x\n");
    put(original, "zz-only-in-original.txt", "x\n");
    const changes = await diffWorkspaces(original, final, { limits: { maxEntries: 15 } });
    expect(changes.files.map((f) => [f.path, f.status])).toEqual([
      ["d3.txt", "modified"],
      ["m/0.txt", "added"],
      ["m/1.txt", "added"],
      ["m/2.txt", "added"],
    ]);
    expect(changes.note).toMatch(/more than 15 entries/);
  });

  it("stops at once on a single directory too big to list", async () => {
    for (let i = 0; i < 50; i++) put(final, `f${i}.txt`, "x\n");
    const changes = await diffWorkspaces(original, final, { limits: { maxEntries: 20 } });
    expect(changes.files).toEqual([]);
    expect(changes.note).toMatch(/more than 20 entries/);
  });

  it("does not enter directories deeper than maxDepth, in either tree", async () => {
    put(final, "a/b/c/d/deep.txt", "x\n");
    put(final, "a/shallow.txt", "x\n");
    const changes = await diffWorkspaces(original, final, { limits: { maxDepth: 3 } });
    expect(changes.files.map((f) => f.path)).toEqual(["a/shallow.txt"]);
    expect(changes.note).toMatch(/deeper than 3 levels/);
  });

  it("survives a very deep tree without recursion", async () => {
    let path = final;
    for (let i = 0; i < 200; i++) path = join(path, "d");
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, "bottom.txt"), "x\n");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files).toEqual([]);
    expect(changes.note).toMatch(/deeper than 64 levels/);
  });

  it("falls back to a whole-file rewrite when the line diff takes too long, and git still applies it", async () => {
    const lines = (seed: number) => Array.from({ length: 3000 }, (_, i) => `${(i * seed) % 7919}`).join("\n") + "\n";
    put(original, "noise.txt", lines(13));
    put(final, "noise.txt", lines(17));
    const changes = await diffWorkspaces(original, final, { limits: { fileDiffMs: 0 } });
    expect(changes.files).toEqual([{ path: "noise.txt", status: "modified", kind: "text", bytesBefore: expect.any(Number), bytesAfter: expect.any(Number), added: 3000, removed: 3000 }]);
    expect(changes.note).toMatch(/whole-file rewrites/);
    gitApplies(changes);
  });

  it("handles CRLF and a missing final newline", async () => {
    put(original, "win.txt", "a\r\nb\r\n");
    put(final, "win.txt", "a\r\nB\r\nc");
    const changes = await diffWorkspaces(original, final);
    expect(changes.files[0]).toMatchObject({ added: 2, removed: 1 });
    gitApplies(changes);
  });
});

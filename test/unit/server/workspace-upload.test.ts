// A tenant's workspace upload on real temp trees: what extracts, what is refused (and that nothing is left when it
// is), that pack and extract round-trip, and the diff's exact text.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { createGunzip, gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { BadInputError, BadUploadError } from "../../../src/errors.js";
import { extractUpload, packWorkspace, workspaceDiff, type UploadLimits } from "../../../src/server/workspace-upload.js";
import { contentsOf, craftTar, type CraftedEntry, listTree, readArchive, tempDir } from "../workspace/workspace-fixtures.js";

const LIMITS: UploadLimits = { maxCompressedBytes: 1024 ** 2, maxBytes: 1024 ** 2, maxEntries: 100, maxFileBytes: 512 * 1024 };
const MB = 1024 ** 2;

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = tempDir("perstack-upload-");
  made.push(dir);
  return dir;
}

function tgz(entries: CraftedEntry[]): Buffer {
  return gzipSync(craftTar(entries));
}

/** Extracts into a fresh `dest` under a scratch dir; returns the error when refused. */
async function refused(archive: Buffer | Readable, limits: UploadLimits = LIMITS): Promise<{ error: BadUploadError; root: string }> {
  const root = scratch();
  const error = await extractUpload(archive, join(root, "dest"), limits).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(BadUploadError);
  // Nothing is left behind, not even the destination directory.
  expect(readdirSync(root)).toEqual([]);
  return { error: error as BadUploadError, root };
}

describe("extractUpload", () => {
  it("extracts files and directories with normalised names, fixed modes and an 0700 destination", async () => {
    const dest = join(scratch(), "dest");
    const archive = tgz([
      { name: "./", type: "directory", mode: 0o777 },
      { name: "./src/", type: "directory", mode: 0o700 },
      { name: "./src/main.sh", content: "echo hi\n", mode: 0o4751 },
      { name: "README.md", content: "# hi\n", mode: 0o600, uid: 0, gid: 0 },
      // A file before its directory's entry, and a path whose parents have no entries at all.
      { name: "late/x.txt", content: "x" },
      { name: "late/", type: "directory" },
      { name: "deep/er//./y.txt", content: "" },
    ]);
    expect(await extractUpload(archive, dest, LIMITS)).toEqual({ files: 4, bytes: 14 });
    expect(statSync(dest).mode & 0o777).toBe(0o700);
    expect(listTree(dest).map(({ path, type, mode, uid }) => [path, type, mode.toString(8), uid])).toEqual([
      ["README.md", "file", "644", process.getuid?.()],
      ["deep", "directory", "755", process.getuid?.()],
      ["deep/er", "directory", "755", process.getuid?.()],
      ["deep/er/y.txt", "file", "644", process.getuid?.()],
      ["late", "directory", "755", process.getuid?.()],
      ["late/x.txt", "file", "644", process.getuid?.()],
      ["src", "directory", "755", process.getuid?.()],
      ["src/main.sh", "file", "755", process.getuid?.()],
    ]);
    expect(contentsOf(dest)["src/main.sh"]).toBe("echo hi\n");
  });

  it("takes a Readable, and an existing empty directory it leaves in place when it refuses", async () => {
    const root = scratch();
    const dest = join(root, "dest");
    mkdirSync(dest);
    const ok = await extractUpload(Readable.from([tgz([{ name: "a", content: "1", mtime: 1_600_000_000 }])]), dest, LIMITS);
    expect(ok).toEqual({ files: 1, bytes: 1 });
    expect(statSync(join(dest, "a")).mtimeMs).toBe(1_600_000_000_000);
    const again = join(root, "again");
    mkdirSync(again);
    await expect(extractUpload(tgz([{ name: "a", content: "1" }, { name: "/b", content: "2" }]), again, LIMITS)).rejects.toThrow(BadUploadError);
    expect(readdirSync(again)).toEqual([]);
    await expect(extractUpload(tgz([]), dest, LIMITS)).rejects.toThrow(/needs a new or empty directory/);
  });

  it("stops reading a refused stream without destroying it, so the request can still be answered", async () => {
    const request = new PassThrough();
    request.write(tgz([{ name: "/abs", content: "x" }]));
    await refused(request);
    expect(request.destroyed).toBe(false);
    request.end();
  });

  it("is a BadInputError with one line naming the entry and what to do", async () => {
    const { error } = await refused(tgz([{ name: "../escape", content: "x" }]));
    expect(error).toBeInstanceOf(BadInputError);
    expect(error.message).toBe('workspace upload refused: entry "../escape" contains ".."; every path must stay inside the workspace');
  });

  it.each([
    ["a/../../escape", /contains "\.\."/],
    ["/etc/passwd", /entry "\/etc\/passwd" is an absolute path/],
    ["..\\..\\evil", /has a backslash/],
    ["line\nbreak", /has a control character/],
  ])("refuses the name %j", async (name, message) => {
    const { error } = await refused(tgz([{ name: "ok.txt", content: "fine" }, { name, content: "x" }]));
    expect(error.message).toMatch(message);
  });

  it("refuses a NUL or an overlong name carried in a pax header", async () => {
    expect((await refused(tgz([{ name: "x", content: "1", pax: { path: "a\0b" } }]))).error.message).toMatch(/control character/);
    const long = `${"d/".repeat(600)}f`;
    expect((await refused(tgz([{ name: "x", content: "1", pax: { path: long } }]))).error.message).toMatch(/longer than 1024 bytes/);
    expect((await refused(tgz([{ name: "x", content: "1", pax: { path: "n".repeat(256) } }]))).error.message).toMatch(/a part over 255/);
  });

  it("refuses a symlink, so nothing can be written through one", async () => {
    const outside = scratch();
    const { error } = await refused(tgz([{ name: "evil", type: "symlink", linkname: outside }, { name: "evil/planted", content: "x" }]));
    expect(error.message).toBe(`workspace upload refused: entry "evil" is a symlink (to ${JSON.stringify(outside)}); uploads hold only files and directories, so archive copies instead (tar -h / --hard-dereference)`);
    expect(readdirSync(outside)).toEqual([]);
  });

  it("refuses a hardlink", async () => {
    const { error } = await refused(tgz([{ name: "a", content: "1" }, { name: "b", type: "link", linkname: "a" }]));
    expect(error.message).toMatch(/entry "b" is a hardlink \(to "a"\)/);
  });

  it.each([
    ["a file twice", [{ name: "a", content: "1" }, { name: "./a", content: "2" }], /entry "\.\/a" repeats a path the upload already holds as a file/],
    ["a directory twice", [{ name: "d/", type: "directory" }, { name: "d", type: "directory" }], /entry "d" repeats a path .* as a directory;/],
    ["a file where a directory is", [{ name: "d/x", content: "1" }, { name: "d", content: "2" }], /entry "d" repeats a path .* as a directory holding earlier entries/],
    ["a file under a file", [{ name: "f", content: "1" }, { name: "f/x", content: "2" }], /entry "f\/x" sits under "f", which an earlier entry made a file/],
  ] as Array<[string, CraftedEntry[], RegExp]>)("refuses %s", async (_, entries, message) => {
    expect((await refused(tgz(entries))).error.message).toMatch(message);
  });

  it("skips named pipes and devices, and refuses types it does not know", async () => {
    const dest = join(scratch(), "dest");
    const archive = tgz([
      { name: "null", type: "character-device" },
      { name: "disk", type: "block-device" },
      { name: "pipe", type: "fifo" },
      { name: "kept.txt", content: "kept" },
    ]);
    expect(await extractUpload(archive, dest, LIMITS)).toEqual({ files: 1, bytes: 4 });
    expect(readdirSync(dest)).toEqual(["kept.txt"]);
    expect((await refused(tgz([{ name: "pipe", type: "fifo" }, { name: "pipe/x", content: "1" }]))).error.message).toMatch(/made a special file/);
    expect((await refused(tgz([{ name: "holes", type: "sparse", content: "x" }]))).error.message).toMatch(/entry "holes" is an entry of type unknown/);
  });

  it("counts entries, including directories only implied by a path", async () => {
    const limits = { ...LIMITS, maxEntries: 3 };
    const ok = join(scratch(), "dest");
    await extractUpload(tgz([{ name: "a/b/c", content: "1" }]), ok, limits);
    const { error } = await refused(tgz([{ name: "a/b/c", content: "1" }, { name: "a/d", content: "2" }]), limits);
    expect(error.message).toBe(
      'workspace upload refused: it holds more than 3 files and directories (limit maxEntries), reached at entry "a/d"; upload less, or ask the server\'s operator to raise the limit',
    );
    const many = Array.from({ length: 1000 }, (_, i) => ({ name: `f${i}`, content: "" }));
    expect((await refused(tgz(many))).error.message).toMatch(/more than 100 files and directories/);
  });

  it("stops a gzip bomb at the header that declares too much, before inflating it", async () => {
    const bomb = tgz([{ name: "zeros", content: Buffer.alloc(50 * MB) }]);
    expect(bomb.length).toBeLessThan(MB);
    const started = Date.now();
    const { error } = await refused(bomb, { ...LIMITS, maxFileBytes: 100 * MB });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.message).toBe(
      'workspace upload refused: its files hold more than 1048576 bytes (limit maxBytes), reached at entry "zeros"; upload less, or ask the server\'s operator to raise the limit',
    );
  });

  it("stops a bomb spread over many files at maxBytes, and one over maxFileBytes at that file", async () => {
    const spread = tgz(Array.from({ length: 100 }, (_, i) => ({ name: `z${i}`, content: Buffer.alloc(512 * 1024) })));
    expect((await refused(spread)).error.message).toMatch(/limit maxBytes\), reached at entry "z2"/);
    const { error } = await refused(tgz([{ name: "big", content: Buffer.alloc(MB) }]));
    expect(error.message).toMatch(/entry "big" is larger than 524288 bytes \(limit maxFileBytes\)/);
  });

  it("stops a stream of zero blocks, which holds no entry, at the inflated size cap", async () => {
    const zeros = gzipSync(Buffer.alloc(50 * MB));
    const started = Date.now();
    const { error } = await refused(Readable.from([zeros]));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error.message).toMatch(/inflates to more than \d+ bytes of tar data \(limit maxBytes plus headers\)/);
  });

  it("refuses an upload over maxCompressedBytes, and one that is not a tar.gz or is cut short", async () => {
    const archive = tgz([{ name: "a", content: "1" }]);
    expect((await refused(archive, { ...LIMITS, maxCompressedBytes: 10 })).error.message).toMatch(/larger than 10 bytes compressed \(limit maxCompressedBytes\)/);
    expect((await refused(Buffer.from("just text"))).error.message).toMatch(/not gzip-compressed/);
    expect((await refused(archive.subarray(0, archive.length - 10))).error.message).toMatch(/not gzip-compressed, or it is damaged or cut short/);
    expect((await refused(gzipSync(Buffer.from("x".repeat(2000))))).error.message).toMatch(/not a tar archive/);
    expect((await refused(gzipSync(craftTar([{ name: "a", content: "1" }]).subarray(0, 512)))).error.message).toMatch(/not a tar archive/);
  });
});

describe("packWorkspace", () => {
  it("round-trips a tree through extractUpload, with relative names in byte order", async () => {
    const source = scratch();
    mkdirSync(join(source, "src/lib"), { recursive: true });
    mkdirSync(join(source, "empty"));
    writeFileSync(join(source, "src/lib/a.ts"), "export const a = 1;\n");
    writeFileSync(join(source, "run.sh"), "#!/bin/sh\n");
    chmodSync(join(source, "run.sh"), 0o755);
    writeFileSync(join(source, "blob.bin"), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(source, "empty.txt"), "");
    const archive = await buffer(packWorkspace(source));
    const dest = join(scratch(), "dest");
    expect(await extractUpload(archive, dest, LIMITS)).toEqual({ files: 4, bytes: 34 });
    const shape = (root: string) => listTree(root).map(({ path, type, mode, content }) => ({ path, type, mode, content }));
    expect(shape(dest)).toEqual(shape(source));
    const names = (await readArchive(Readable.from([archive]).pipe(createGunzip()))).map((entry) => entry.header.name);
    expect(names).toEqual(["blob.bin", "empty/", "empty.txt", "run.sh", "src/", "src/lib/", "src/lib/a.ts"]);
  });

  it("stores symlinks as symlinks without following them, and leaves out named pipes", async () => {
    const source = scratch();
    const outside = scratch();
    writeFileSync(join(outside, "secret"), "secret");
    symlinkSync(outside, join(source, "link"));
    execFileSync("mkfifo", [join(source, "pipe")]);
    const entries = await readArchive(packWorkspace(source).pipe(createGunzip()));
    expect(entries.map((entry) => [entry.header.name, entry.header.type, entry.header.linkname])).toEqual([["link", "symlink", outside]]);
  });

  it("fails the stream when the directory cannot be read", async () => {
    await expect(buffer(packWorkspace(join(scratch(), "missing")))).rejects.toThrow(/cannot copy/);
  });
});

describe("workspaceDiff", () => {
  function trees(): { before: string; after: string } {
    const before = join(scratch(), "before");
    const after = join(scratch(), "after");
    mkdirSync(before);
    mkdirSync(after);
    for (const root of [before, after]) writeFileSync(join(root, "same.txt"), "same\n");
    writeFileSync(join(before, "edit.txt"), "one\ntwo\nthree\n");
    writeFileSync(join(after, "edit.txt"), "one\nTWO\nthree\n");
    writeFileSync(join(before, "gone.txt"), "bye\n");
    mkdirSync(join(after, "sub"));
    writeFileSync(join(after, "sub/new.txt"), "hello\nworld");
    writeFileSync(join(before, "image.png"), Buffer.from([0x89, 0x50, 0, 1]));
    writeFileSync(join(after, "image.png"), Buffer.from([0x89, 0x50, 0, 2]));
    writeFileSync(join(after, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    return { before, after };
  }

  const FULL = [
    "diff --git a/edit.txt b/edit.txt",
    "--- a/edit.txt",
    "+++ b/edit.txt",
    "@@ -1,3 +1,3 @@",
    " one",
    "-two",
    "+TWO",
    " three",
    "diff --git a/gone.txt b/gone.txt",
    "deleted file mode 100644",
    "--- a/gone.txt",
    "+++ /dev/null",
    "@@ -1,1 +0,0 @@",
    "-bye",
    "diff --git a/image.png b/image.png",
    "Binary files a/image.png and b/image.png differ",
    "diff --git a/latin1.txt b/latin1.txt",
    "Binary files /dev/null and b/latin1.txt differ",
    "diff --git a/sub/new.txt b/sub/new.txt",
    "new file mode 100644",
    "--- /dev/null",
    "+++ b/sub/new.txt",
    "@@ -0,0 +1,2 @@",
    "+hello",
    "+world",
    "\\ No newline at end of file",
    "",
  ].join("\n");

  it("shows created, modified, deleted and binary files, sorted by path", async () => {
    const { before, after } = trees();
    expect(await workspaceDiff(before, after, { maxBytes: 100_000 })).toBe(FULL);
  });

  it("is empty for identical trees", async () => {
    const { before } = trees();
    expect(await workspaceDiff(before, before, { maxBytes: 100 })).toBe("");
  });

  it("stops at maxBytes on a line end, with a final line saying it was cut", async () => {
    const { before, after } = trees();
    for (const maxBytes of [40, 150, 230, 300, FULL.length - 1]) {
      const diff = await workspaceDiff(before, after, { maxBytes });
      const [kept, last] = [diff.slice(0, diff.lastIndexOf("[")), diff.slice(diff.lastIndexOf("["))];
      expect(last).toBe(`[diff cut at ${maxBytes} bytes (limit maxBytes); download the workspace for every change]\n`);
      expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(maxBytes);
      expect(FULL.startsWith(kept)).toBe(true);
      expect(kept === "" || kept.endsWith("\n")).toBe(true);
    }
  });
});

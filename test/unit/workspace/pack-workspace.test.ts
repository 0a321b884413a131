import { execFileSync } from "node:child_process";
import { chmodSync, linkSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkspaceCopyError } from "../../../src/errors.js";
import { packWorkspace, type PackWorkspaceOptions } from "../../../src/workspace/pack-workspace.js";
import { makeDirs, readArchive, sha256, tempDir } from "./workspace-fixtures.js";

const IDS = { uid: 1000, gid: 1000 };

async function pack(root: string, options: Partial<PackWorkspaceOptions> = {}) {
  const packed = packWorkspace(root, { ...IDS, ...options });
  const entries = await readArchive(packed.stream);
  return { entries, snapshot: await packed.snapshot };
}

describe("packWorkspace", () => {
  it("packs directories before their children, names relative to the root, with the agent's ids", async () => {
    const root = tempDir();
    makeDirs(join(root, "b/c"), join(root, "a-b"));
    writeFileSync(join(root, "b/c/deep.txt"), "deep");
    writeFileSync(join(root, "top.txt"), "top");
    const { entries } = await pack(root);
    expect(entries.map((e) => [e.header.name, e.header.type])).toEqual([
      ["a-b/", "directory"],
      ["b/", "directory"],
      ["b/c/", "directory"],
      ["b/c/deep.txt", "file"],
      ["top.txt", "file"],
    ]);
    for (const { header } of entries) expect([header.uid, header.gid]).toEqual([1000, 1000]);
    expect(entries.find((e) => e.header.name === "b/c/deep.txt")?.content.toString()).toBe("deep");
  });

  it("records a snapshot of what it packed: types, modes, sizes, hashes, targets and host facts", async () => {
    const root = tempDir();
    makeDirs(join(root, "dir"));
    writeFileSync(join(root, "dir/file"), "content");
    chmodSync(join(root, "dir/file"), 0o640);
    symlinkSync("../elsewhere", join(root, "dir/link"));
    const { snapshot } = await pack(root);
    const stat = lstatSync(join(root, "dir/file"));
    expect(snapshot.root).toBe(root);
    expect(snapshot.entries.map((e) => e.path)).toEqual(["dir", "dir/file", "dir/link"]);
    expect(snapshot.entries[1]).toEqual({
      path: "dir/file",
      type: "file",
      mode: 0o640,
      size: 7,
      sha256: sha256("content"),
      host: { mtimeMs: stat.mtimeMs, ino: stat.ino, dev: stat.dev, uid: stat.uid, gid: stat.gid },
    });
    expect(snapshot.entries[2]).toMatchObject({ type: "symlink", linkTarget: "../elsewhere" });
    // Plain data: it survives being written next to a job and read back.
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
  });

  it("never follows symlinks: they travel as symlinks with their raw targets", async () => {
    const outside = tempDir("perstack-outside-");
    writeFileSync(join(outside, "secret"), "secret");
    const root = tempDir();
    symlinkSync(outside, join(root, "to-outside"));
    symlinkSync("/etc/passwd", join(root, "abs"));
    symlinkSync("missing", join(root, "dangling"));
    const { entries } = await pack(root);
    expect(entries.map((e) => [e.header.name, e.header.type, e.header.linkname])).toEqual([
      ["abs", "symlink", "/etc/passwd"],
      ["dangling", "symlink", "missing"],
      ["to-outside", "symlink", outside],
    ]);
    expect(entries.some((e) => e.content.toString().includes("secret"))).toBe(false);
  });

  it("strips setuid, setgid and sticky bits from headers", async () => {
    const root = tempDir();
    writeFileSync(join(root, "suid"), "x");
    chmodSync(join(root, "suid"), 0o4755);
    makeDirs(join(root, "sticky"));
    chmodSync(join(root, "sticky"), 0o1777);
    const { entries, snapshot } = await pack(root);
    expect(entries.map((e) => [e.header.name, e.header.mode])).toEqual([
      ["sticky/", 0o777],
      ["suid", 0o755],
    ]);
    expect(snapshot.entries.map((e) => e.mode)).toEqual([0o777, 0o755]);
  });

  it("packs hardlinked files as independent files", async () => {
    const root = tempDir();
    writeFileSync(join(root, "one"), "shared");
    linkSync(join(root, "one"), join(root, "two"));
    const { entries } = await pack(root);
    expect(entries.map((e) => [e.header.name, e.header.type, e.content.toString()])).toEqual([
      ["one", "file", "shared"],
      ["two", "file", "shared"],
    ]);
  });

  it("leaves out excluded subtrees, the root itself, and copy-back leftovers; skips fifos and sockets", async () => {
    const root = tempDir();
    makeDirs(join(root, "perstack/jobs"), join(root, "src/generated"), join(root, ".perstack-copyback-0123/originals"));
    writeFileSync(join(root, "perstack/jobs/job.json"), "{}");
    writeFileSync(join(root, "src/generated/big"), "x");
    writeFileSync(join(root, "src/keep"), "k");
    execFileSync("mkfifo", [join(root, "pipe")]);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(root, "sock"), resolve));
    try {
      const { entries, snapshot } = await pack(root, { exclude: ["perstack", "./src/generated/"] });
      expect(entries.map((e) => e.header.name)).toEqual(["src/", "src/keep"]);
      expect(snapshot.excluded).toEqual(["perstack", "src/generated"]);
      expect(snapshot.skipped).toEqual([
        { path: ".perstack-copyback-0123", reason: "left over from an interrupted copy-back" },
        { path: "pipe", reason: "named pipes are not copied into the sandbox" },
        { path: "sock", reason: "sockets are not copied into the sandbox" },
      ]);
    } finally {
      server.close();
    }
  });

  it("skips names that are not valid UTF-8 instead of mangling them", async () => {
    const root = tempDir();
    writeFileSync(Buffer.from(`${root}/bad-\xff`, "latin1"), "x");
    writeFileSync(join(root, "good"), "x");
    const { entries, snapshot } = await pack(root);
    expect(entries.map((e) => e.header.name)).toEqual(["good"]);
    expect(snapshot.skipped).toEqual([{ path: "bad-\ufffd", reason: "its name is not valid UTF-8" }]);
  });

  it("packs the real directory behind a symlinked root", async () => {
    const root = tempDir();
    writeFileSync(join(root, "f"), "x");
    const alias = join(tempDir("perstack-alias-"), "ws");
    symlinkSync(root, alias);
    const { entries, snapshot } = await pack(alias);
    expect(entries.map((e) => e.header.name)).toEqual(["f"]);
    expect(snapshot.root).toBe(root);
  });

  it("settles the snapshot when the reader of the stream goes away mid-file", async () => {
    const root = tempDir();
    for (const name of ["a", "b", "c"]) writeFileSync(join(root, name), Buffer.alloc(4 * 1024 * 1024, 1));
    const packed = packWorkspace(root, IDS);
    packed.stream.once("data", () => packed.stream.destroy());
    await expect(packed.snapshot).rejects.toThrow(/the copy was cut off before it was complete/);
  });

  describe("limits", () => {
    function tree(): string {
      const root = tempDir();
      mkdirSync(join(root, "d"));
      writeFileSync(join(root, "d/a"), "x".repeat(600));
      writeFileSync(join(root, "d/b"), "y".repeat(600));
      return root;
    }

    const cases: Array<[string, PackWorkspaceOptions["limits"], RegExp]> = [
      ["maxEntries", { maxEntries: 2 }, /holds more than 2 entries \(limit maxEntries\)/],
      ["maxFileBytes", { maxFileBytes: 599 }, /holds a file larger than 599 bytes at d\/a \(limit maxFileBytes\)/],
      ["maxTotalBytes", { maxTotalBytes: 1000 }, /holds more than 1000 bytes of file content at d\/b \(limit maxTotalBytes\)/],
    ];
    for (const [limit, limits, message] of cases) {
      it(`fails on ${limit}, naming the workspace, and fails the stream too`, async () => {
        const root = tree();
        const packed = packWorkspace(root, { ...IDS, limits });
        await expect(readArchive(packed.stream)).rejects.toThrow(message);
        const error = await packed.snapshot.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WorkspaceCopyError);
        expect((error as Error).message).toMatch(message);
        expect((error as Error).message).toContain(`cannot copy ${root} into the sandbox`);
        expect((error as Error).message).toMatch(/Exclude large directories from the copy or raise the limit/);
      });
    }

    it("exactly at the limits is fine", async () => {
      const { snapshot } = await pack(tree(), { limits: { maxEntries: 3, maxFileBytes: 600, maxTotalBytes: 1200 } });
      expect(snapshot.entries).toHaveLength(3);
    });

    it("refuses an exclude entry that is not a relative path", async () => {
      const packed = packWorkspace(tempDir(), { ...IDS, exclude: ["../up"] });
      await expect(packed.snapshot).rejects.toThrow(/exclude entry "\.\.\/up" is not a relative path/);
      await expect(readArchive(packed.stream)).rejects.toThrow(WorkspaceCopyError);
    });
  });
});

import { chmodSync, chownSync, existsSync, linkSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkspaceCopyError } from "../../../src/errors.js";
import { copyBack, type CopyBackOptions } from "../../../src/workspace/copy-back.js";
import { packWorkspace } from "../../../src/workspace/pack-workspace.js";
import type { WorkspaceSnapshot } from "../../../src/workspace/workspace-snapshot.js";
import { contentsOf, craftTar, type CraftedEntry, dockerArchiveOf, extractLikeDocker, listTree, makeDirs, streamOf, tempDir } from "./workspace-fixtures.js";
import { rootOnly } from "../../support/docker.js";

const asRoot = process.getuid?.() === 0;
const rootTest = rootOnly();
const AGENT = { uid: 1000, gid: 1000 };
const OWNER = { uid: 1234, gid: 1234 };

interface Setup {
  workspace: string;
  /** Stand-in for the sandbox's /workspace volume, filled from the packed stream. */
  sandbox: string;
  keepDir: string;
  snapshot: WorkspaceSnapshot;
}

/** Packs the workspace and extracts it as Docker would, so the test can edit the agent's side. */
async function setUp(build: (workspace: string) => void, exclude: string[] = ["perstack"]): Promise<Setup> {
  const workspace = tempDir();
  build(workspace);
  const sandbox = tempDir("perstack-sandbox-");
  const packed = packWorkspace(workspace, { exclude, ...AGENT });
  await extractLikeDocker(packed.stream, sandbox);
  const snapshot = await packed.snapshot;
  return { workspace, sandbox, keepDir: join(tempDir("perstack-kept-"), "kept"), snapshot };
}

function run(setup: Setup, archive: Buffer, options: Partial<CopyBackOptions> = {}) {
  return copyBack({
    workspace: setup.workspace,
    snapshot: setup.snapshot,
    archive: streamOf(archive),
    archiveRoot: "workspace",
    protectedFiles: ["perstack.toml", ".env", ".env.local"],
    protectedTrees: ["perstack"],
    keepDir: setup.keepDir,
    owner: OWNER,
    ...options,
  });
}

/** The workspace as it was packed, in a Docker-style archive, plus the crafted entries. */
function withEntries(setup: Setup, extra: CraftedEntry[]): Buffer {
  const base = dockerArchiveOf(setup.sandbox);
  return Buffer.concat([base.subarray(0, base.length - 1024), craftTar(extra)]);
}

function sampleTree(workspace: string): void {
  makeDirs(join(workspace, "src/lib"), join(workspace, "docs"), join(workspace, "perstack/jobs"));
  writeFileSync(join(workspace, "README.md"), "readme\n");
  writeFileSync(join(workspace, "src/main.ts"), "main\n");
  writeFileSync(join(workspace, "src/lib/util.ts"), "util\n");
  writeFileSync(join(workspace, "docs/old.md"), "old\n");
  writeFileSync(join(workspace, "perstack.toml"), "model = 'a'\n");
  writeFileSync(join(workspace, ".env"), "KEY=1\n");
  writeFileSync(join(workspace, "perstack/jobs/job.json"), "{}\n");
  writeFileSync(join(workspace, "script.sh"), "#!/bin/sh\n");
  chmodSync(join(workspace, "script.sh"), 0o644);
  symlinkSync("src/main.ts", join(workspace, "link-to-main"));
}

function stagingLeftovers(workspace: string): string[] {
  return readdirSync(workspace).filter((name) => name.startsWith(".perstack-copyback-"));
}

async function refused(setup: Setup, archive: Buffer, message: RegExp, options: Partial<CopyBackOptions> = {}) {
  const before = listTree(setup.workspace);
  const error = await run(setup, archive, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkspaceCopyError);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message).toMatch(/nothing in the workspace was changed/);
  expect(listTree(setup.workspace)).toEqual(before);
  expect(existsSync(setup.keepDir)).toBe(false);
}

describe("copyBack: round trip", () => {
  it("applies exactly the agent's edits: create, modify, delete, rename, mode, symlinks, nested directories", async () => {
    const setup = await setUp(sampleTree);
    const before = listTree(setup.workspace);
    const { sandbox } = setup;
    writeFileSync(join(sandbox, "src/main.ts"), "main v2\n");
    rmSync(join(sandbox, "docs/old.md"));
    writeFileSync(join(sandbox, "docs/new.md"), "new\n");
    writeFileSync(join(sandbox, "src/lib/renamed.ts"), readFileSync(join(sandbox, "src/lib/util.ts")));
    rmSync(join(sandbox, "src/lib/util.ts"));
    chmodSync(join(sandbox, "script.sh"), 0o755);
    symlinkSync("/etc/passwd", join(sandbox, "abs-link"));
    makeDirs(join(sandbox, "a/b/c"));
    writeFileSync(join(sandbox, "a/b/c/deep.txt"), "deep\n");

    const result = await run(setup, dockerArchiveOf(sandbox));

    expect(result.created.sort()).toEqual(["a", "a/b", "a/b/c", "a/b/c/deep.txt", "abs-link", "docs/new.md", "src/lib/renamed.ts"]);
    expect(result.modified.sort()).toEqual(["script.sh", "src/main.ts"]);
    expect(result.deleted.sort()).toEqual(["docs/old.md", "src/lib/util.ts"]);
    expect(result.rejected).toEqual([]);
    expect(result.conflicts).toEqual([]);
    expect(result.skipped).toEqual([]);
    expect(result.leftovers).toEqual([]);
    expect(contentsOf(setup.workspace)).toEqual({
      ".env": "KEY=1\n",
      "README.md": "readme\n",
      a: "dir",
      "a/b": "dir",
      "a/b/c": "dir",
      "a/b/c/deep.txt": "deep\n",
      "abs-link": "-> /etc/passwd",
      docs: "dir",
      "docs/new.md": "new\n",
      "link-to-main": "-> src/main.ts",
      perstack: "dir",
      "perstack/jobs": "dir",
      "perstack/jobs/job.json": "{}\n",
      "perstack.toml": "model = 'a'\n",
      "script.sh": "#!/bin/sh\n",
      src: "dir",
      "src/lib": "dir",
      "src/lib/renamed.ts": "util\n",
      "src/main.ts": "main v2\n",
    });
    expect(lstatSync(join(setup.workspace, "abs-link")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(setup.workspace, "script.sh")).mode & 0o7777).toBe(0o755);
    // Unchanged files are not rewritten: same inode. A mode-only change keeps the inode too.
    const after = listTree(setup.workspace);
    const inode = (entries: typeof before, path: string) => entries.find((e) => e.path === path)?.ino;
    expect(inode(after, "README.md")).toBe(inode(before, "README.md"));
    expect(inode(after, "script.sh")).toBe(inode(before, "script.sh"));
    expect(inode(after, "src/main.ts")).not.toBe(inode(before, "src/main.ts"));
    expect(stagingLeftovers(setup.workspace)).toEqual([]);
    expect(existsSync(setup.keepDir)).toBe(false);
  });

  it("an unchanged sandbox changes nothing", async () => {
    const setup = await setUp(sampleTree);
    const before = listTree(setup.workspace);
    const result = await run(setup, dockerArchiveOf(setup.sandbox));
    expect(result).toEqual({ created: [], modified: [], deleted: [], rejected: [], conflicts: [], skipped: [], leftovers: [] });
    expect(listTree(setup.workspace)).toEqual(before);
  });
});

describe("copyBack: type changes", () => {
  it("file -> directory, directory -> symlink, symlink -> file, directory -> file", async () => {
    const setup = await setUp((w) => {
      writeFileSync(join(w, "f"), "file\n");
      makeDirs(join(w, "d/inner"), join(w, "e"));
      writeFileSync(join(w, "d/inner/x"), "x\n");
      writeFileSync(join(w, "e/y"), "y\n");
      symlinkSync("f", join(w, "s"));
    });
    const { sandbox } = setup;
    rmSync(join(sandbox, "f"));
    makeDirs(join(sandbox, "f"));
    writeFileSync(join(sandbox, "f/child"), "child\n");
    rmSync(join(sandbox, "d"), { recursive: true });
    symlinkSync("/tmp", join(sandbox, "d"));
    rmSync(join(sandbox, "s"));
    writeFileSync(join(sandbox, "s"), "now a file\n");
    rmSync(join(sandbox, "e"), { recursive: true });
    writeFileSync(join(sandbox, "e"), "e file\n");

    const result = await run(setup, dockerArchiveOf(sandbox));
    expect(result.modified.sort()).toEqual(["d", "e", "f", "s"]);
    expect(result.deleted.sort()).toEqual(["d/inner", "d/inner/x", "e/y"]);
    expect(result.created).toEqual(["f/child"]);
    expect(contentsOf(setup.workspace)).toEqual({ d: "-> /tmp", e: "e file\n", f: "dir", "f/child": "child\n", s: "now a file\n" });
  });
});

describe("copyBack: a hostile archive changes nothing", () => {
  const cases: Array<[string, CraftedEntry[], RegExp]> = [
    ["an absolute name", [{ name: "/etc/evil", content: "x" }], /is absolute/],
    ["a name with ..", [{ name: "workspace/../../etc/evil", content: "x" }], /contains "\.\."/],
    ["a name outside the archive root", [{ name: "other/evil", content: "x" }], /not inside workspace\//],
    ["a NUL in a (pax) name", [{ name: "workspace/a", pax: { path: "workspace/a\0b" }, content: "x" }], /NUL/],
    ["an empty segment", [{ name: "workspace/a//b", content: "x" }], /empty path segment/],
    ["a duplicate entry", [{ name: "workspace/new", content: "1" }, { name: "workspace/new", content: "2" }], /appears twice/],
    ["an entry under a symlink entry", [{ name: "workspace/l", type: "symlink", linkname: "/etc" }, { name: "workspace/l/passwd", content: "x" }], /sits under "l", which is not a directory/],
    ["an entry under a missing directory", [{ name: "workspace/nodir/x", content: "x" }], /not an earlier directory entry/],
    ["a hardlink to outside", [{ name: "workspace/h", type: "link", linkname: "../../etc/passwd" }], /not an earlier regular file/],
    ["a hardlink with an absolute target", [{ name: "workspace/h", type: "link", linkname: "/etc/passwd" }], /not an earlier regular file/],
    ["a hardlink escaping through ..", [{ name: "workspace/h", type: "link", linkname: "workspace/../../etc/passwd" }], /not an earlier regular file/],
    ["a hardlink to a later entry", [{ name: "workspace/h", type: "link", linkname: "workspace/later" }, { name: "workspace/later", content: "x" }], /not an earlier regular file/],
    ["a hardlink to a directory", [{ name: "workspace/h", type: "link", linkname: "workspace/src" }], /not an earlier regular file/],
    ["a symlink with an empty target", [{ name: "workspace/l", type: "symlink", linkname: "" }], /empty or NUL/],
  ];
  for (const [what, entries, message] of cases) {
    it(`refuses ${what}`, async () => {
      const setup = await setUp(sampleTree);
      writeFileSync(join(setup.sandbox, "README.md"), "the agent's change must not be applied\n");
      await refused(setup, withEntries(setup, entries), message);
    });
  }

  it("refuses an archive without the root entry, or whose root is not a directory", async () => {
    const setup = await setUp(sampleTree);
    await refused(setup, craftTar([]), /no workspace\/ directory entry/);
    await refused(setup, craftTar([{ name: "workspace", type: "symlink", linkname: "/" }]), /not a directory/);
  });

  it("refuses an archive cut short, between entries or inside one", async () => {
    const setup = await setUp(sampleTree);
    const archive = dockerArchiveOf(setup.sandbox);
    // Cut right after the first entry (the root directory): it would read as the agent deleting everything.
    await refused(setup, archive.subarray(0, 512), /cut short/);
    await refused(setup, archive.subarray(0, archive.length - 1024), /cut short/);
    await refused(setup, withEntries(setup, [{ name: "workspace/big", content: "x".repeat(2000) }]).subarray(0, archive.length + 100), /failed while reading the sandbox's \/workspace \(Unexpected end of data\)/);
  });

  it("refuses a corrupt header", async () => {
    const setup = await setUp(sampleTree);
    const archive = Buffer.from(dockerArchiveOf(setup.sandbox));
    archive.writeUInt8(archive.readUInt8(512 + 10) ^ 0xff, 512 + 10);
    await refused(setup, archive, /failed while reading.*(checksum|Invalid tar header)/);
  });

  it("treats a name that only looks like its staging directory as an ordinary entry", async () => {
    // The real staging name is random; refusing it is tested on the validator in archive-entry.test.ts.
    const setup = await setUp(sampleTree);
    const result = await run(setup, withEntries(setup, [{ name: "workspace/.perstack-copyback-guess/", type: "directory" }]));
    expect(result.created).toEqual([".perstack-copyback-guess"]);
  });
});

describe("copyBack: entry types", () => {
  it("skips fifos, devices and unknown types, and never creates them", async () => {
    const setup = await setUp(sampleTree);
    const result = await run(
      setup,
      withEntries(setup, [
        { name: "workspace/pipe", type: "fifo", mode: 0o10644 },
        { name: "workspace/null", type: "character-device", mode: 0o20666 },
        { name: "workspace/disk", type: "block-device", mode: 0o60660 },
        { name: "workspace/sparse", type: "sparse", content: "x" },
      ]),
    );
    expect(result.skipped).toEqual([
      { path: "pipe", reason: "named pipes are not copied back" },
      { path: "null", reason: "device files are not copied back" },
      { path: "disk", reason: "device files are not copied back" },
      { path: "sparse", reason: "entries of an unknown type are not copied back" },
    ]);
    expect(result.created).toEqual([]);
    for (const name of ["pipe", "null", "disk", "sparse"]) expect(existsSync(join(setup.workspace, name))).toBe(false);
  });

  it("materializes hardlinks as independent copies", async () => {
    const setup = await setUp(sampleTree);
    writeFileSync(join(setup.sandbox, "one"), "shared\n");
    linkSync(join(setup.sandbox, "one"), join(setup.sandbox, "two"));
    linkSync(join(setup.sandbox, "README.md"), join(setup.sandbox, "readme-link"));
    const archive = dockerArchiveOf(setup.sandbox);
    expect(archive.includes(Buffer.from("workspace/one"))).toBe(true);
    const result = await run(setup, archive);
    expect(result.created.sort()).toEqual(["one", "readme-link", "two"]);
    const one = lstatSync(join(setup.workspace, "one"));
    const two = lstatSync(join(setup.workspace, "two"));
    expect(one.ino).not.toBe(two.ino);
    expect(one.nlink).toBe(1);
    expect(two.nlink).toBe(1);
    expect(lstatSync(join(setup.workspace, "README.md")).nlink).toBe(1);
    expect(readFileSync(join(setup.workspace, "two"), "utf8")).toBe("shared\n");
    expect(readFileSync(join(setup.workspace, "readme-link"), "utf8")).toBe("readme\n");
  });

  it("strips setuid, setgid and sticky bits, and file-type bits in modes", async () => {
    const setup = await setUp(sampleTree);
    const result = await run(
      setup,
      withEntries(setup, [
        { name: "workspace/suid", mode: 0o104755, content: "#!/bin/sh\n" },
        { name: "workspace/sgid", mode: 0o102711, content: "x" },
        { name: "workspace/sticky/", type: "directory", mode: 0o41777 },
      ]),
    );
    expect(result.created.sort()).toEqual(["sgid", "sticky", "suid"]);
    expect(lstatSync(join(setup.workspace, "suid")).mode & 0o7777).toBe(0o755);
    expect(lstatSync(join(setup.workspace, "sgid")).mode & 0o7777).toBe(0o711);
    expect(lstatSync(join(setup.workspace, "sticky")).mode & 0o7777).toBe(0o777);
  });

  it("sets file mtimes from the archive unless told not to", async () => {
    const setup = await setUp(sampleTree);
    await run(setup, withEntries(setup, [{ name: "workspace/dated", content: "x", mtime: 1_600_000_000 }]));
    expect(lstatSync(join(setup.workspace, "dated")).mtimeMs).toBe(1_600_000_000_000);
    const other = await setUp(sampleTree);
    await run(other, withEntries(other, [{ name: "workspace/dated", content: "x", mtime: 1_600_000_000 }]), { restoreMtimes: false });
    expect(lstatSync(join(other.workspace, "dated")).mtimeMs).toBeGreaterThan(1_700_000_000_000);
  });

  it("applies a read-only directory mode after filling the directory", async () => {
    const setup = await setUp(sampleTree);
    const result = await run(setup, withEntries(setup, [{ name: "workspace/ro/", type: "directory", mode: 0o40555 }, { name: "workspace/ro/f", content: "x" }]), { runningAsRoot: false });
    expect(result.created).toEqual(["ro", "ro/f"]);
    expect(lstatSync(join(setup.workspace, "ro")).mode & 0o777).toBe(0o555);
  });
});

describe("copyBack: limits count what is actually read", () => {
  it("maxEntries", async () => {
    const setup = await setUp(sampleTree);
    const count = setup.snapshot.entries.length;
    await refused(setup, withEntries(setup, [{ name: "workspace/one-more", content: "x" }]), /more than \d+ entries \(limit maxEntries\)/, { limits: { maxEntries: count } });
    // The workspace root is not an entry: exactly the packed count passes.
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { limits: { maxEntries: count } })).resolves.toMatchObject({ created: [] });
  });

  it("maxFileBytes, from the header and from a pax size larger than the header's", async () => {
    const setup = await setUp(sampleTree);
    await refused(setup, withEntries(setup, [{ name: "workspace/big", content: "x".repeat(101) }]), /larger than 100 bytes at big \(limit maxFileBytes\)/, { limits: { maxFileBytes: 100 } });
    const lying = { name: "workspace/big", content: "x".repeat(2000), declaredSize: 10, pax: { size: "2000" } };
    await refused(setup, withEntries(setup, [lying]), /limit maxFileBytes/, { limits: { maxFileBytes: 1000 } });
  });

  it("maxTotalBytes, counting hardlinks as the copies they become and bytes on entries that carry none", async () => {
    const setup = await setUp(sampleTree);
    const packed = setup.snapshot.entries.reduce((sum, entry) => sum + (entry.type === "file" ? entry.size : 0), 0);
    const limits = { maxTotalBytes: packed + 1500 };
    await expect(run(setup, withEntries(setup, [{ name: "workspace/a", content: "x".repeat(1000) }]), { limits })).resolves.toMatchObject({ created: ["a"] });

    const fresh = await setUp(sampleTree);
    const links = [{ name: "workspace/b", content: "x".repeat(1000) }, { name: "workspace/c", type: "link" as const, linkname: "workspace/b" }];
    await refused(fresh, withEntries(fresh, links), /limit maxTotalBytes/, { limits });
    const dirWithBytes = [{ name: "workspace/pipe", type: "fifo" as const, content: "y".repeat(1600) }];
    await refused(fresh, withEntries(fresh, dirWithBytes), /limit maxTotalBytes/, { limits });
  });
});

describe("copyBack: protected files and trees", () => {
  it("keeps the agent's version of a modified, created or symlinked policy file and leaves the user's", async () => {
    const setup = await setUp(sampleTree);
    const { sandbox, keepDir } = setup;
    writeFileSync(join(sandbox, "perstack.toml"), "model = 'evil'\n");
    writeFileSync(join(sandbox, ".env.local"), "STOLEN=1\n");
    rmSync(join(sandbox, ".env"));
    symlinkSync("/etc/shadow", join(sandbox, ".env"));
    const result = await run(setup, dockerArchiveOf(sandbox));
    expect(result.rejected).toEqual([
      { path: ".env", change: "modified", keptAt: join(keepDir, "protected/.env"), reason: ".env is a protected policy file: the agent cannot change it" },
      { path: ".env.local", change: "created", keptAt: join(keepDir, "protected/.env.local"), reason: ".env.local is a protected policy file: the agent cannot create it" },
      { path: "perstack.toml", change: "modified", keptAt: join(keepDir, "protected/perstack.toml"), reason: "perstack.toml is a protected policy file: the agent cannot change it" },
    ]);
    expect(readFileSync(join(setup.workspace, "perstack.toml"), "utf8")).toBe("model = 'a'\n");
    expect(readFileSync(join(setup.workspace, ".env"), "utf8")).toBe("KEY=1\n");
    expect(existsSync(join(setup.workspace, ".env.local"))).toBe(false);
    expect(readFileSync(join(keepDir, "protected/perstack.toml"), "utf8")).toBe("model = 'evil'\n");
    expect(readFileSync(join(keepDir, "protected/.env.local"), "utf8")).toBe("STOLEN=1\n");
    // Kept as the symlink it was, never followed.
    expect(readlinkSync(join(keepDir, "protected/.env"))).toBe("/etc/shadow");
    if (asRoot) expect(lstatSync(join(keepDir, "protected/perstack.toml")).uid).toBe(OWNER.uid);
  });

  it("refuses deleting a policy file, and deleting or replacing a directory that holds one", async () => {
    const setup = await setUp((w) => {
      sampleTree(w);
      makeDirs(join(w, "config"), join(w, "other"));
      writeFileSync(join(w, "config/.env"), "NESTED=1\n");
      writeFileSync(join(w, "config/app.json"), "{}\n");
    });
    rmSync(join(setup.sandbox, "perstack.toml"));
    rmSync(join(setup.sandbox, "config"), { recursive: true });
    writeFileSync(join(setup.sandbox, "config"), "a file now\n");
    const result = await run(setup, dockerArchiveOf(setup.sandbox), { protectedFiles: ["perstack.toml", "config/.env"] });
    expect(result.rejected).toEqual([
      { path: "config", change: "modified", reason: "it contains the protected config/.env, so it cannot be replaced" },
      { path: "config/.env", change: "deleted", reason: "config/.env is a protected policy file: the agent cannot delete it" },
      { path: "perstack.toml", change: "deleted", reason: "perstack.toml is a protected policy file: the agent cannot delete it" },
    ]);
    expect(result.deleted).toEqual(["config/app.json"]);
    expect(contentsOf(join(setup.workspace, "config"))).toEqual({ ".env": "NESTED=1\n" });
    expect(existsSync(join(setup.workspace, "perstack.toml"))).toBe(true);
  });

  it("refuses deleting a directory that holds a policy file, and deletes the rest of its contents", async () => {
    const setup = await setUp((w) => {
      makeDirs(join(w, "config/sub"));
      writeFileSync(join(w, "config/.env"), "NESTED=1\n");
      writeFileSync(join(w, "config/sub/x"), "x\n");
    });
    rmSync(join(setup.sandbox, "config"), { recursive: true });
    const result = await run(setup, dockerArchiveOf(setup.sandbox), { protectedFiles: ["config/.env"] });
    expect(result.rejected.map((r) => [r.path, r.change, r.reason])).toEqual([
      ["config", "deleted", "it contains the protected config/.env, so it cannot be deleted"],
      ["config/.env", "deleted", "config/.env is a protected policy file: the agent cannot delete it"],
    ]);
    expect(result.deleted).toEqual(["config/sub/x", "config/sub"]);
    expect(contentsOf(setup.workspace)).toEqual({ config: "dir", "config/.env": "NESTED=1\n" });
  });

  it("refuses every change under a protected tree and keeps none of them", async () => {
    const setup = await setUp(sampleTree, []);
    const { sandbox } = setup;
    writeFileSync(join(sandbox, "perstack/jobs/job.json"), '{"forged":true}\n');
    writeFileSync(join(sandbox, "perstack/evil.toml"), "x\n");
    rmSync(join(sandbox, "perstack/jobs"), { recursive: true });
    const result = await run(setup, dockerArchiveOf(sandbox));
    expect(result.rejected.map((r) => [r.path, r.change, r.keptAt])).toEqual([
      ["perstack/evil.toml", "created", undefined],
      ["perstack/jobs", "deleted", undefined],
      ["perstack/jobs/job.json", "deleted", undefined],
    ]);
    expect(result.rejected[0]?.reason).toBe("perstack/ is protected: the agent cannot change anything in it");
    expect(readFileSync(join(setup.workspace, "perstack/jobs/job.json"), "utf8")).toBe("{}\n");
    expect(existsSync(join(setup.workspace, "perstack/evil.toml"))).toBe(false);
  });

  it("refuses what the agent put in an excluded tree it never saw", async () => {
    const setup = await setUp((w) => {
      sampleTree(w);
      makeDirs(join(w, "node_modules/pkg"));
      writeFileSync(join(w, "node_modules/pkg/index.js"), "user\n");
    }, ["perstack", "node_modules"]);
    makeDirs(join(setup.sandbox, "node_modules"));
    writeFileSync(join(setup.sandbox, "node_modules/evil.js"), "agent\n");
    const result = await run(setup, dockerArchiveOf(setup.sandbox));
    expect(result.rejected.map((r) => r.path)).toEqual(["node_modules", "node_modules/evil.js"]);
    expect(result.rejected[0]?.reason).toMatch(/node_modules was not copied into the sandbox/);
    expect(contentsOf(join(setup.workspace, "node_modules"))).toEqual({ pkg: "dir", "pkg/index.js": "user\n" });
  });

  it("refuses a keep directory inside the workspace but outside a protected tree", async () => {
    const setup = await setUp(sampleTree);
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { keepDir: join(setup.workspace, "kept") })).rejects.toThrow(/not inside a protected tree/);
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { keepDir: join(setup.workspace, "perstack/jobs/j/rejected") })).resolves.toMatchObject({ created: [] });
  });
});

describe("copyBack: conflicts with the user's own changes during the run", () => {
  it("skips the agent's change to a path the user changed, and keeps the agent's version", async () => {
    const setup = await setUp(sampleTree);
    const { sandbox, workspace, keepDir } = setup;
    writeFileSync(join(sandbox, "src/main.ts"), "agent\n");
    writeFileSync(join(sandbox, "README.md"), "agent readme\n");
    rmSync(join(sandbox, "docs/old.md"));
    writeFileSync(join(sandbox, "brand-new"), "agent new\n");
    makeDirs(join(sandbox, "both"));
    writeFileSync(join(sandbox, "both/agent.txt"), "agent\n");
    // The user, meanwhile:
    writeFileSync(join(workspace, "src/main.ts"), "user edit, longer\n");
    rmSync(join(workspace, "README.md"));
    writeFileSync(join(workspace, "docs/old.md"), "user rewrote it\n");
    writeFileSync(join(workspace, "brand-new"), "user new\n");
    makeDirs(join(workspace, "both"));
    writeFileSync(join(workspace, "both/user.txt"), "user\n");

    const result = await run(setup, dockerArchiveOf(sandbox));
    expect(result.conflicts).toEqual([
      { path: "docs/old.md", reason: "you changed it during the run (it was modified); your version was left in place" },
      { path: "README.md", keptAt: join(keepDir, "conflicts/README.md"), reason: "you deleted it during the run" },
      { path: "brand-new", keptAt: join(keepDir, "conflicts/brand-new"), reason: "something was created at this path on the host during the run; it was left in place" },
      { path: "src/main.ts", keptAt: join(keepDir, "conflicts/src/main.ts"), reason: "you changed it during the run (it was modified); your version was left in place" },
    ]);
    expect(result.created).toEqual(["both/agent.txt"]);
    expect(contentsOf(workspace)).toMatchObject({
      "src/main.ts": "user edit, longer\n",
      "docs/old.md": "user rewrote it\n",
      "brand-new": "user new\n",
      "both/user.txt": "user\n",
      "both/agent.txt": "agent\n",
    });
    expect(existsSync(join(workspace, "README.md"))).toBe(false);
    expect(contentsOf(join(keepDir, "conflicts"))).toEqual({ "README.md": "agent readme\n", "brand-new": "agent new\n", src: "dir", "src/main.ts": "agent\n" });
  });

  it("leaves a deleted directory that holds entries the snapshot did not know", async () => {
    const setup = await setUp(sampleTree);
    rmSync(join(setup.sandbox, "docs"), { recursive: true });
    writeFileSync(join(setup.workspace, "docs/user-added.md"), "mine\n");
    const result = await run(setup, dockerArchiveOf(setup.sandbox));
    expect(result.deleted).toEqual(["docs/old.md"]);
    expect(result.conflicts).toEqual([{ path: "docs", reason: expect.stringMatching(/still holds entries that were not deleted/) }]);
    expect(contentsOf(join(setup.workspace, "docs"))).toEqual({ "user-added.md": "mine\n" });
  });

  it("never writes through a directory the user replaced with a symlink during the run", async () => {
    const setup = await setUp(sampleTree);
    const outside = tempDir("perstack-outside-");
    writeFileSync(join(setup.sandbox, "src/lib/new.ts"), "agent\n");
    writeFileSync(join(setup.sandbox, "src/lib/util.ts"), "agent util\n");
    rmSync(join(setup.workspace, "src/lib"), { recursive: true });
    symlinkSync(outside, join(setup.workspace, "src/lib"));
    const result = await run(setup, dockerArchiveOf(setup.sandbox));
    expect(readdirSync(outside)).toEqual([]);
    expect(result.conflicts.map((c) => c.path).sort()).toEqual(["src/lib/new.ts", "src/lib/util.ts"]);
    expect(result.conflicts[0]?.reason).toMatch(/src\/lib is a symlink/);
  });
});

describe("copyBack: ownership", () => {
  it.skipIf(rootTest.skip)("new entries get the owner; a modified file keeps its own owner; replaced paths keep theirs", async () => {
    rootTest.check();
    const setup = await setUp((w) => {
      sampleTree(w);
      writeFileSync(join(w, "theirs"), "x\n");
      chownSync(join(w, "theirs"), 4321, 4321);
      writeFileSync(join(w, "typechange"), "x\n");
      chownSync(join(w, "typechange"), 5555, 5555);
    });
    const { sandbox, workspace } = setup;
    writeFileSync(join(sandbox, "theirs"), "changed\n");
    writeFileSync(join(sandbox, "new-file"), "n\n");
    makeDirs(join(sandbox, "new-dir"));
    symlinkSync("new-file", join(sandbox, "new-link"));
    rmSync(join(sandbox, "typechange"));
    makeDirs(join(sandbox, "typechange"));
    await run(setup, dockerArchiveOf(sandbox));
    const owner = (path: string) => {
      const stat = lstatSync(join(workspace, path));
      return [stat.uid, stat.gid];
    };
    expect(owner("theirs")).toEqual([4321, 4321]);
    expect(owner("new-file")).toEqual([OWNER.uid, OWNER.gid]);
    expect(owner("new-dir")).toEqual([OWNER.uid, OWNER.gid]);
    expect(owner("new-link")).toEqual([OWNER.uid, OWNER.gid]);
    expect(owner("typechange")).toEqual([5555, 5555]);
    expect(owner("README.md")).toEqual([0, 0]);
  });

  it("does not chown when not running as root", async () => {
    const setup = await setUp(sampleTree);
    writeFileSync(join(setup.sandbox, "new-file"), "n\n");
    await run(setup, dockerArchiveOf(setup.sandbox), { runningAsRoot: false });
    expect(lstatSync(join(setup.workspace, "new-file")).uid).toBe(process.getuid?.());
  });
});

describe("copyBack: its own arguments", () => {
  it("refuses a snapshot of another workspace, and a relative keep directory", async () => {
    const setup = await setUp(sampleTree);
    const other = await setUp(sampleTree);
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { snapshot: other.snapshot })).rejects.toThrow(/the snapshot was taken of .*, not of/);
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { keepDir: "relative/kept" })).rejects.toThrow(/must be an absolute path/);
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { protectedFiles: ["../outside"] })).rejects.toThrow(WorkspaceCopyError);
    expect(stagingLeftovers(setup.workspace)).toEqual([]);
  });

  it("accepts the workspace through a symlink to it", async () => {
    const setup = await setUp(sampleTree);
    const alias = join(tempDir("perstack-alias-"), "ws");
    symlinkSync(setup.workspace, alias);
    writeFileSync(join(setup.sandbox, "added"), "x\n");
    await expect(run(setup, dockerArchiveOf(setup.sandbox), { workspace: alias })).resolves.toMatchObject({ created: ["added"] });
  });
});

describe("copyBack: staging", () => {
  it("leaves no staging directory behind, after success or failure", async () => {
    const setup = await setUp(sampleTree);
    await run(setup, dockerArchiveOf(setup.sandbox));
    await run(setup, craftTar([])).catch(() => {});
    expect(stagingLeftovers(setup.workspace)).toEqual([]);
  });
});

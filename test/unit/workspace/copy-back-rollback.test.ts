// Copy-back is all or nothing: whichever file-system call fails, the workspace ends exactly as it was (types,
// modes, owners, inodes, contents, link targets), nothing is left in the keep directory, and no staging directory
// stays behind.
import { chmodSync, existsSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkspaceCopyError } from "../../../src/errors.js";
import { IncompleteRollbackError } from "../../../src/workspace/apply-journal.js";
import { copyBack } from "../../../src/workspace/copy-back.js";
import { packWorkspace } from "../../../src/workspace/pack-workspace.js";
import { nodeWorkspaceFs, type WorkspaceFs } from "../../../src/workspace/workspace-fs.js";
import { dockerArchiveOf, extractLikeDocker, listTree, makeDirs, streamOf, tempDir } from "./workspace-fixtures.js";

const MUTATING = new Set<keyof WorkspaceFs>(["mkdir", "mkdirp", "rmdir", "rename", "unlink", "symlink", "chmod", "lchown", "lutimes", "open", "copyFileExclusive"]);

interface Call {
  name: keyof WorkspaceFs;
  args: unknown[];
}

/** node:fs/promises, except that the mutating calls numbered in `fails` (1-based) throw EIO. */
function faultyFs(fails: (call: number) => boolean, removeTreeFails = false): { fs: WorkspaceFs; calls: Call[] } {
  const calls: Call[] = [];
  const fs = {} as Record<keyof WorkspaceFs, (...args: unknown[]) => Promise<unknown>>;
  for (const name of Object.keys(nodeWorkspaceFs) as Array<keyof WorkspaceFs>) {
    const real = nodeWorkspaceFs[name] as (...args: unknown[]) => Promise<unknown>;
    fs[name] = async (...args: unknown[]) => {
      if (name === "removeTree" && removeTreeFails) throw Object.assign(new Error("injected removeTree failure"), { code: "EBUSY" });
      if (MUTATING.has(name)) {
        calls.push({ name, args });
        if (fails(calls.length)) throw Object.assign(new Error(`injected failure of ${name} #${calls.length}`), { code: "EIO" });
      }
      return real(...args);
    };
  }
  return { fs: fs as unknown as WorkspaceFs, calls };
}

/** A run that exercises every kind of step: creates, modifies, deletes, type changes, modes, keeps, conflicts. */
async function busyRun() {
  const workspace = tempDir();
  makeDirs(join(workspace, "src/lib"), join(workspace, "docs"), join(workspace, "gone/deeper"), join(workspace, "ro"));
  writeFileSync(join(workspace, "src/main.ts"), "main\n");
  writeFileSync(join(workspace, "src/lib/util.ts"), "util\n");
  writeFileSync(join(workspace, "docs/a.md"), "a\n");
  writeFileSync(join(workspace, "gone/deeper/x"), "x\n");
  writeFileSync(join(workspace, "perstack.toml"), "model = 'a'\n");
  writeFileSync(join(workspace, "mode-only"), "same\n");
  writeFileSync(join(workspace, "to-dir"), "file\n");
  writeFileSync(join(workspace, "user-edits"), "before\n");
  symlinkSync("src/main.ts", join(workspace, "link"));
  const sandbox = tempDir("perstack-sandbox-");
  const packed = packWorkspace(workspace, { exclude: ["perstack"], uid: 1000, gid: 1000 });
  await extractLikeDocker(packed.stream, sandbox);
  const snapshot = await packed.snapshot;

  writeFileSync(join(sandbox, "src/main.ts"), "main v2\n");
  writeFileSync(join(sandbox, "src/new.ts"), "new\n");
  makeDirs(join(sandbox, "new/nested"));
  writeFileSync(join(sandbox, "new/nested/file"), "nested\n");
  rmSync(join(sandbox, "gone"), { recursive: true });
  chmodSync(join(sandbox, "mode-only"), 0o600);
  chmodSync(join(sandbox, "ro"), 0o555);
  rmSync(join(sandbox, "to-dir"));
  makeDirs(join(sandbox, "to-dir"));
  writeFileSync(join(sandbox, "to-dir/inside"), "inside\n");
  rmSync(join(sandbox, "link"));
  symlinkSync("/etc", join(sandbox, "link"));
  writeFileSync(join(sandbox, "perstack.toml"), "model = 'evil'\n");
  writeFileSync(join(sandbox, "user-edits"), "agent\n");
  writeFileSync(join(workspace, "user-edits"), "user, during the run\n");
  const archive = dockerArchiveOf(sandbox);
  const keepDir = join(tempDir("perstack-kept-"), "kept");
  const options = { workspace, snapshot, archiveRoot: "workspace", protectedFiles: ["perstack.toml"], protectedTrees: ["perstack"], keepDir, owner: { uid: 1234, gid: 1234 } };
  return { workspace, keepDir, archive, options };
}

function staging(workspace: string): string[] {
  return readdirSync(workspace).filter((name) => name.startsWith(".perstack-copyback-"));
}

describe("copyBack rollback", () => {
  it("fails each file-system call in turn and every time leaves the workspace exactly as before", async () => {
    const { workspace, keepDir, archive, options } = await busyRun();
    const before = listTree(workspace);
    let failAt = 1;
    for (; ; failAt++) {
      const { fs } = faultyFs((call) => call === failAt);
      const outcome = await copyBack({ ...options, archive: streamOf(archive), fs }).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      if ("result" in outcome) {
        expect(outcome.result).toMatchObject({
          created: ["new", "new/nested", "new/nested/file", "src/new.ts", "to-dir/inside"],
          modified: ["link", "mode-only", "src/main.ts", "to-dir", "ro"],
          deleted: ["gone/deeper/x", "gone/deeper", "gone"],
          rejected: [{ path: "perstack.toml", keptAt: join(keepDir, "protected/perstack.toml") }],
          conflicts: [{ path: "user-edits", keptAt: join(keepDir, "conflicts/user-edits") }],
        });
        break;
      }
      expect(outcome.error).toBeInstanceOf(WorkspaceCopyError);
      expect(outcome.error).not.toBeInstanceOf(IncompleteRollbackError);
      expect((outcome.error as Error).message).toMatch(new RegExp(`injected failure of \\w+ #${failAt}`));
      expect((outcome.error as Error).message).toMatch(/nothing in the workspace was changed|every change was undone/);
      expect(listTree(workspace), `after failing call #${failAt}`).toEqual(before);
      expect(existsSync(keepDir), `keep directory after failing call #${failAt}`).toBe(false);
      expect(staging(workspace)).toEqual([]);
    }
    // Every step of the busy run was failed once before it finally went through.
    expect(failAt).toBeGreaterThan(50);
    expect(listTree(workspace)).not.toEqual(before);
  });

  it("a successful run whose staging cannot be removed reports it instead of failing", async () => {
    const { workspace, archive, options } = await busyRun();
    const { fs } = faultyFs(() => false, true);
    const result = await copyBack({ ...options, archive: streamOf(archive), fs });
    expect(result.modified).toContain("src/main.ts");
    expect(result.leftovers).toEqual(staging(workspace).map((name) => join(workspace, name)));
    expect(result.leftovers).toHaveLength(1);
  });

  it("if undoing fails too, says where the originals are and leaves them there", async () => {
    const { archive, options } = await busyRun();
    const probe = faultyFs(() => false);
    await copyBack({ ...options, archive: streamOf(archive), fs: probe.fs });
    const firstMoveAside = probe.calls.findIndex((call) => call.name === "rename" && String(call.args[1]).includes("/originals/"));
    expect(firstMoveAside).toBeGreaterThan(0);

    const fresh = await busyRun();
    const { fs } = faultyFs((call) => call > firstMoveAside + 1);
    const error = await copyBack({ ...fresh.options, archive: streamOf(fresh.archive), fs }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompleteRollbackError);
    const { backupDir } = error as IncompleteRollbackError;
    expect((error as Error).message).toMatch(/could not be fully undone .*restore them by hand/);
    expect(readdirSync(backupDir)).toEqual(["0"]);
    expect(staging(fresh.workspace)).toHaveLength(1);
  });
});

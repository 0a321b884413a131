// The local workspace of `perstack run --server` on real temp trees, against perstack serve's own upload extraction
// and workspace packing (src/server/workspace-upload.ts): what is uploaded, what is applied back and what is not
// (conflicts, policy files, a hostile archive), modes the server normalizes, and a continuation's baseline.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { WorkspaceCopyError } from "../../../src/errors.js";
import { applyServerWorkspace, localSnapshot, packUpload, remoteWorkspace, serverBaseline, uploadedMode, type RemoteWorkspace } from "../../../src/remote/remote-workspace.js";
import { extractUpload, packWorkspace as serverPack } from "../../../src/server/workspace-upload.js";
import type { WorkspaceSnapshot } from "../../../src/workspace/workspace-snapshot.js";
import { contentsOf, craftTar, type CraftedEntry, listTree, tempDir } from "../workspace/workspace-fixtures.js";

const LIMITS = { maxCompressedBytes: 64 * 1024 ** 2, maxBytes: 64 * 1024 ** 2, maxEntries: 10_000, maxFileBytes: 64 * 1024 ** 2 };

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  made.push(dir);
  return dir;
}

function localTree(): string {
  const local = scratch("perstack-remote-local-");
  mkdirSync(join(local, "src"));
  mkdirSync(join(local, "private"), { mode: 0o700 });
  chmodSync(join(local, "private"), 0o700);
  mkdirSync(join(local, "perstack", "jobs"), { recursive: true });
  writeFileSync(join(local, "perstack.toml"), "model = 'a'\n");
  writeFileSync(join(local, ".env"), "ANTHROPIC_API_KEY=sk-local-secret\n");
  writeFileSync(join(local, ".env.local"), "OTHER=1\n");
  writeFileSync(join(local, "README.md"), "readme\n");
  writeFileSync(join(local, "src", "main.ts"), "main\n");
  writeFileSync(join(local, "src", "old.ts"), "old\n");
  writeFileSync(join(local, "secret.txt"), "mine\n", { mode: 0o600 });
  chmodSync(join(local, "secret.txt"), 0o600);
  writeFileSync(join(local, "private", "notes.txt"), "notes\n");
  writeFileSync(join(local, "perstack", "jobs", "job.json"), "{}\n");
  symlinkSync("src/main.ts", join(local, "link-to-main"));
  return local;
}

function workspaceOf(local: string): RemoteWorkspace {
  return remoteWorkspace({ cwd: local, configPath: join(local, "perstack.toml"), configExplicit: false, envPath: [".env", ".env.local"], perstackDir: join(local, "perstack") });
}

/** Uploads `local` as the CLI does and extracts it as the server does: the server's workspace directory. */
async function upload(local: string): Promise<{ workspace: RemoteWorkspace; snapshot: WorkspaceSnapshot; server: string }> {
  const workspace = workspaceOf(local);
  const packed = await packUpload(workspace);
  const server = join(scratch("perstack-remote-server-"), "workspace");
  try {
    await extractUpload(readFileSync(packed.file), server, LIMITS);
  } finally {
    await packed.dispose();
  }
  return { workspace, snapshot: packed.snapshot, server };
}

const keepDir = (local: string) => join(local, "perstack", "remote", "job1", `k${Math.random().toString(36).slice(2)}`);

describe("the upload", () => {
  it("leaves out perstack/, the env files perstack.toml names and symlinks; the server gets the rest", async () => {
    const { snapshot, server } = await upload(localTree());
    expect(Object.keys(contentsOf(server)).sort()).toEqual(["README.md", "perstack.toml", "private", "private/notes.txt", "secret.txt", "src", "src/main.ts", "src/old.ts"]);
    expect(JSON.stringify(contentsOf(server))).not.toContain("sk-local-secret");
    expect(snapshot.excluded.sort()).toEqual([".env", ".env.local", "link-to-main", "perstack"]);
  });

  it("names what perstack serve makes of an entry's mode", () => {
    expect(uploadedMode("file", 0o600)).toBe(0o644);
    expect(uploadedMode("file", 0o700)).toBe(0o755);
    expect(uploadedMode("directory", 0o700)).toBe(0o755);
  });
});

describe("applying the run's workspace", () => {
  it("applies what the agent created, modified and deleted; modes the server normalized are not changes", async () => {
    const local = localTree();
    const { workspace, snapshot, server } = await upload(local);
    writeFileSync(join(server, "README.md"), "readme by the agent\n");
    writeFileSync(join(server, "new.txt"), "new\n");
    mkdirSync(join(server, "made"));
    writeFileSync(join(server, "made", "deep.txt"), "deep\n");
    rmSync(join(server, "src", "old.ts"));
    const result = await applyServerWorkspace(workspace, snapshot, serverPack(server), keepDir(local));
    expect(result.created.sort()).toEqual(["made", "made/deep.txt", "new.txt"]);
    expect(result.modified).toEqual(["README.md"]);
    expect(result.deleted).toEqual(["src/old.ts"]);
    expect(result.conflicts).toEqual([]);
    expect(result.rejected).toEqual([]);
    expect(readFileSync(join(local, "README.md"), "utf8")).toBe("readme by the agent\n");
    expect(readFileSync(join(local, "made", "deep.txt"), "utf8")).toBe("deep\n");
    expect(existsSync(join(local, "src", "old.ts"))).toBe(false);
    // 0600 and 0700 went up as 0644 and 0755 and came back so: unchanged, so left as they were.
    expect(statSync(join(local, "secret.txt")).mode & 0o777).toBe(0o600);
    expect(statSync(join(local, "private")).mode & 0o777).toBe(0o700);
    // What was never uploaded is untouched.
    expect(readFileSync(join(local, ".env"), "utf8")).toContain("sk-local-secret");
    expect(existsSync(join(local, "link-to-main"))).toBe(true);
  });

  it("does not overwrite a file changed here meanwhile: a conflict, reported, the agent's version kept", async () => {
    const local = localTree();
    const { workspace, snapshot, server } = await upload(local);
    writeFileSync(join(server, "README.md"), "the agent's readme\n");
    writeFileSync(join(server, "src", "main.ts"), "the agent's main\n");
    writeFileSync(join(local, "README.md"), "my readme, edited during the run\n");
    const kept = keepDir(local);
    const result = await applyServerWorkspace(workspace, snapshot, serverPack(server), kept);
    expect(readFileSync(join(local, "README.md"), "utf8")).toBe("my readme, edited during the run\n");
    expect(result.conflicts).toHaveLength(1);
    expect(result.conflicts[0]).toMatchObject({ path: "README.md", reason: expect.stringMatching(/you changed it during the run/) });
    expect(readFileSync(result.conflicts[0]!.keptAt!, "utf8")).toBe("the agent's readme\n");
    // The other change still applies.
    expect(result.modified).toEqual(["src/main.ts"]);
  });

  it("refuses the agent's changes to perstack.toml, the env files and perstack/, keeping its perstack.toml aside", async () => {
    const local = localTree();
    const { workspace, snapshot, server } = await upload(local);
    writeFileSync(join(server, "perstack.toml"), "model = 'evil'\n");
    writeFileSync(join(server, ".env"), "ANTHROPIC_API_KEY=planted\n");
    mkdirSync(join(server, "perstack"));
    writeFileSync(join(server, "perstack", "planted.json"), "{}\n");
    const result = await applyServerWorkspace(workspace, snapshot, serverPack(server), keepDir(local));
    expect(readFileSync(join(local, "perstack.toml"), "utf8")).toBe("model = 'a'\n");
    expect(readFileSync(join(local, ".env"), "utf8")).toContain("sk-local-secret");
    expect(existsSync(join(local, "perstack", "planted.json"))).toBe(false);
    const rejected = new Map(result.rejected.map((r) => [r.path, r]));
    expect(rejected.get("perstack.toml")?.keptAt).toBeDefined();
    expect(readFileSync(rejected.get("perstack.toml")!.keptAt!, "utf8")).toBe("model = 'evil'\n");
    expect(rejected.has(".env")).toBe(true);
    expect([...rejected.keys()].some((path) => path.startsWith("perstack/") || path === "perstack")).toBe(true);
    expect(result.created).toEqual([]);
  });

  it("refuses a hostile archive whole: entries that leave the workspace, or pass through a link; nothing changes", async () => {
    const hostile: CraftedEntry[][] = [
      [{ name: "ok.txt", type: "file", content: "ok" }, { name: "../escape.txt", type: "file", content: "out" }],
      [{ name: "/tmp/perstack-absolute.txt", type: "file", content: "out" }],
      [{ name: "up", type: "symlink", linkname: ".." }, { name: "up/escape.txt", type: "file", content: "out" }],
      [{ name: "sub/file.txt", type: "file", content: "no parent entry" }],
      [{ name: "README.md", type: "file", content: "twice" }, { name: "README.md", type: "file", content: "twice" }],
    ];
    for (const entries of hostile) {
      const local = localTree();
      const { workspace, snapshot } = await upload(local);
      const before = listTree(local);
      const error = await applyServerWorkspace(workspace, snapshot, Readable.from([gzipSync(craftTar(entries))]), keepDir(local)).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error, JSON.stringify(entries.map((e) => e.name))).toBeInstanceOf(WorkspaceCopyError);
      expect((error as Error).message).toMatch(/not safe to apply|nothing in the workspace was changed/);
      expect(listTree(local)).toEqual(before);
      expect(existsSync(join(local, "..", "escape.txt"))).toBe(false);
    }
    expect(existsSync("/tmp/perstack-absolute.txt")).toBe(false);
  });

  it("refuses a download cut short or not gzip: nothing changes", { timeout: 30_000 }, async () => {
    const local = localTree();
    const { workspace, snapshot, server } = await upload(local);
    writeFileSync(join(server, "README.md"), "changed\n");
    const whole = Buffer.concat(await serverPack(server).toArray());
    const before = listTree(local);
    for (const archive of [whole.subarray(0, Math.floor(whole.length / 2)), Buffer.from("not a gzip")]) {
      await expect(applyServerWorkspace(workspace, snapshot, Readable.from([archive]), keepDir(local))).rejects.toBeInstanceOf(WorkspaceCopyError);
      expect(listTree(local)).toEqual(before);
    }
  });
});

describe("a continuation's baseline", () => {
  it("applies only what the continuation changed; a path that differs here from the server's is a conflict", async () => {
    const local = localTree();
    const first = await upload(local);
    // The first invocation changed README.md; its changes were applied here.
    writeFileSync(join(first.server, "README.md"), "first\n");
    await applyServerWorkspace(first.workspace, first.snapshot, serverPack(first.server), keepDir(local));
    expect(readFileSync(join(local, "README.md"), "utf8")).toBe("first\n");
    // Meanwhile, here: the user edits main.ts and adds a file of their own.
    writeFileSync(join(local, "src", "main.ts"), "main, edited here\n");
    writeFileSync(join(local, "mine.txt"), "only here\n");
    // Before the continuation: the baseline is the server's workspace as it is now.
    const workspace = workspaceOf(local);
    const baseline = await serverBaseline(serverPack(first.server), workspace, await localSnapshot(workspace));
    // The continuation changes README.md again, main.ts, and creates later.txt.
    writeFileSync(join(first.server, "README.md"), "second\n");
    writeFileSync(join(first.server, "src", "main.ts"), "main by the agent\n");
    writeFileSync(join(first.server, "later.txt"), "later\n");
    const result = await applyServerWorkspace(workspace, baseline, serverPack(first.server), keepDir(local));
    expect(readFileSync(join(local, "README.md"), "utf8")).toBe("second\n");
    expect(readFileSync(join(local, "later.txt"), "utf8")).toBe("later\n");
    expect(readFileSync(join(local, "src", "main.ts"), "utf8")).toBe("main, edited here\n");
    expect(result.conflicts.map((c) => c.path)).toEqual(["src/main.ts"]);
    expect(readFileSync(join(local, "mine.txt"), "utf8")).toBe("only here\n");
    // Unchanged on the server since the baseline: not touched here, whatever its mode.
    expect(statSync(join(local, "secret.txt")).mode & 0o777).toBe(0o600);
    expect(result.modified).toEqual(["README.md"]);
    expect(result.created).toEqual(["later.txt"]);
    expect(result.deleted).toEqual([]);
  });
});

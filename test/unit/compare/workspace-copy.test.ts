// copyWorkspace on real trees: a faithful copy of files, directories, modes and symlinks (as links), nothing
// special, nothing excluded, and never a write to the source.
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { copyWorkspace, excludedRelativePaths } from "../../../src/compare/workspace-copy.js";
import { diffWorkspaces } from "../../../src/compare/workspace-diff.js";
import { WorkspaceCopyError } from "../../../src/errors.js";

let dir: string;
let source: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "perstack-copy-test-"));
  source = join(dir, "source");
  mkdirSync(source);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function put(path: string, content: string | Buffer, mode?: number): void {
  const file = join(source, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
}

/** Every path under root with its type, mode and (for links) target, to compare trees. */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const stat = lstatSync(join(root, path));
      if (stat.isSymbolicLink()) out.push(`${path} -> ${readlinkSync(join(root, path))}`);
      else if (stat.isDirectory()) {
        out.push(`${path}/ ${(stat.mode & 0o7777).toString(8)}`);
        walk(path);
      } else out.push(`${path} ${(stat.mode & 0o7777).toString(8)} ${readFileSync(join(root, path)).toString("base64")}`);
    }
  };
  walk("");
  return out;
}

describe("copyWorkspace", () => {
  it("copies files, directories, modes and timestamps; symlinks stay links with their text unchanged", async () => {
    put("a.txt", "hello\n");
    put("bin/run.sh", "#!/bin/sh\n", 0o755);
    put("secret/ro.txt", "read only\n", 0o400);
    chmodSync(join(source, "secret"), 0o750);
    put("weird name\nwith newline", Buffer.from([0, 1, 2, 255]));
    symlinkSync("../a.txt", join(source, "bin/relative-link"));
    symlinkSync("/etc/passwd", join(source, "absolute-link"));
    symlinkSync("bin", join(source, "dir-link"));
    symlinkSync("missing", join(source, "dangling"));
    mkdirSync(join(source, "empty"));
    const old = new Date("2020-01-02T03:04:05Z");
    utimesSync(join(source, "a.txt"), old, old);

    const target = join(dir, "copy");
    const result = await copyWorkspace(source, target, { exclude: [] });
    expect(listing(target)).toEqual(listing(source));
    expect(statSync(join(target, "a.txt")).mtime.getTime()).toBe(old.getTime());
    // The link was copied as a link, not resolved: the copy holds no copy of /etc/passwd.
    expect(lstatSync(join(target, "absolute-link")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(target, "dir-link")).isSymbolicLink()).toBe(true);
    expect(result).toEqual({ copied: 11, skippedSpecial: 0 });
    expect((await diffWorkspaces(source, target)).files).toEqual([]);
  });

  it("skips FIFOs and sockets and counts them", async () => {
    put("a.txt", "x");
    execFileSync("mkfifo", [join(source, "pipe")]);
    mkdirSync(join(source, "sub"));
    execFileSync("mkfifo", [join(source, "sub/pipe2")]);
    execFileSync("python3", ["-c", `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(join(source, "sock"))})`]);
    const target = join(dir, "copy");
    const result = await copyWorkspace(source, target, { exclude: [] });
    expect(result).toEqual({ copied: 2, skippedSpecial: 3 });
    expect(readdirSync(target).sort()).toEqual(["a.txt", "sub"]);
    expect(readdirSync(join(target, "sub"))).toEqual([]);
  });

  it("skips a name that is not valid UTF-8 rather than failing", async () => {
    writeFileSync(Buffer.concat([Buffer.from(`${source}/bad-`), Buffer.from([0xff]), Buffer.from(".txt")]), "x");
    put("good.txt", "y");
    const result = await copyWorkspace(source, join(dir, "copy"), { exclude: [] });
    expect(result).toEqual({ copied: 1, skippedSpecial: 1 });
  });

  it("leaves out excluded directories, also when the target is inside the source", async () => {
    put("src/main.ts", "x");
    put("perstack/jobs/j/job.json", "{}");
    put("perstack/compare/c1/old.txt", "old");
    const target = join(source, "perstack/compare/c1/runs/r1/workspace");
    const result = await copyWorkspace(source, target, { exclude: [join(source, "perstack")] });
    expect(listing(target)).toEqual(["src/ 755", `src/main.ts 644 ${Buffer.from("x").toString("base64")}`]);
    expect(result.copied).toBe(2);
  });

  it("refuses a target inside the source that is not excluded (it would copy itself)", async () => {
    put("a.txt", "x");
    await expect(copyWorkspace(source, join(source, "copies/one"), { exclude: [] })).rejects.toThrow(WorkspaceCopyError);
    await expect(copyWorkspace(source, join(source, "copies/one"), { exclude: [] })).rejects.toThrow(/inside it/);
  });

  it("refuses an existing target rather than merging into it", async () => {
    put("a.txt", "x");
    mkdirSync(join(dir, "copy"));
    await expect(copyWorkspace(source, join(dir, "copy"), { exclude: [] })).rejects.toThrow(/already exists/);
  });

  it("drops setuid, setgid and sticky bits", async () => {
    put("tool", "#!/bin/sh\n", 0o4755);
    mkdirSync(join(source, "shared"));
    chmodSync(join(source, "shared"), 0o3777);
    const target = join(dir, "copy");
    await copyWorkspace(source, target, { exclude: [] });
    expect(lstatSync(join(target, "tool")).mode & 0o7777).toBe(0o755);
    expect(lstatSync(join(target, "shared")).mode & 0o7777).toBe(0o777);
  });

  it("never writes to the source", async () => {
    put("a.txt", "x", 0o444);
    put("d/b.txt", "y");
    chmodSync(join(source, "d"), 0o555);
    const before = listing(source);
    const mtimes = [source, join(source, "d"), join(source, "a.txt")].map((p) => lstatSync(p).mtimeMs);
    await copyWorkspace(source, join(dir, "copy"), { exclude: [] });
    expect(listing(source)).toEqual(before);
    expect([source, join(source, "d"), join(source, "a.txt")].map((p) => lstatSync(p).mtimeMs)).toEqual(mtimes);
    chmodSync(join(source, "d"), 0o755);
  });

  it("stops at its limits with a message naming the limit (a sparse file counts at its length)", async () => {
    const sparse = join(source, "sparse.bin");
    writeFileSync(sparse, "");
    execFileSync("truncate", ["-s", "10G", sparse]);
    await expect(copyWorkspace(source, join(dir, "copy"), { exclude: [], limits: { maxFileBytes: 1024 ** 3 } })).rejects.toThrow(
      /too big to copy: a file larger than 1073741824 bytes at sparse.bin \(limit maxFileBytes\)/,
    );
    rmSync(sparse);
    for (let i = 0; i < 5; i++) put(`f${i}`, "x");
    await expect(copyWorkspace(source, join(dir, "copy2"), { exclude: [], limits: { maxEntries: 3 } })).rejects.toThrow(/more than 3 entries/);
  });

  it("copies through a source named by a symlink", async () => {
    put("a.txt", "x");
    put("perstack/p.txt", "p");
    symlinkSync(source, join(dir, "alias"));
    const target = join(dir, "copy");
    await copyWorkspace(join(dir, "alias"), target, { exclude: [join(dir, "alias", "perstack")] });
    expect(readdirSync(target)).toEqual(["a.txt"]);
  });
});

describe("excludedRelativePaths", () => {
  it("keeps the excluded paths inside the workspace, relative and POSIX", () => {
    expect(excludedRelativePaths("/w", ["/w/perstack", "/w/out/c1/", "/elsewhere", "/w"])).toEqual(["perstack", "out/c1"]);
  });

  it("refuses a relative path", () => {
    expect(() => excludedRelativePaths("/w", ["perstack"])).toThrow(/not absolute/);
  });
});

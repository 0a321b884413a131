import { describe, expect, it } from "vitest";
import { describeHostDrift, type HostStat, hostTypeOf, type SnapshotEntry } from "../../../src/workspace/workspace-snapshot.js";

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;

function stat(mode: number, fields: Partial<Omit<HostStat, "mode">> = {}): HostStat {
  const type = mode & 0o170000;
  return {
    mode,
    size: 5,
    mtimeMs: 1000,
    ino: 7,
    dev: 1,
    isFile: () => type === S_IFREG,
    isDirectory: () => type === S_IFDIR,
    isSymbolicLink: () => type === S_IFLNK,
    ...fields,
  };
}

const host = { mtimeMs: 1000, ino: 7, dev: 1, uid: 0, gid: 0 };
const file: SnapshotEntry = { path: "f", type: "file", mode: 0o644, size: 5, sha256: "x", host };
const dir: SnapshotEntry = { path: "d", type: "directory", mode: 0o755, size: 4096, host };
const link: SnapshotEntry = { path: "l", type: "symlink", mode: 0o777, size: 5, linkTarget: "there", host };

describe("describeHostDrift", () => {
  it("an untouched path has no drift", () => {
    expect(describeHostDrift(file, stat(S_IFREG | 0o644))).toBeUndefined();
    expect(describeHostDrift(link, stat(S_IFLNK | 0o777))).toBeUndefined();
    // A setuid bit the user had all along is not a change.
    expect(describeHostDrift(file, stat(S_IFREG | 0o4644))).toBeUndefined();
  });

  it("notices type, identity, mode, size and mtime changes", () => {
    expect(describeHostDrift(file, stat(S_IFDIR | 0o755))).toBe("it was a file and is now a directory");
    expect(describeHostDrift(file, stat(S_IFIFO | 0o644))).toBe("it was a file and is now a special file");
    expect(describeHostDrift(file, stat(S_IFREG | 0o644, { ino: 8 }))).toBe("it was replaced");
    expect(describeHostDrift(file, stat(S_IFREG | 0o644, { dev: 2 }))).toBe("it was replaced");
    expect(describeHostDrift(file, stat(S_IFREG | 0o600))).toBe("its permissions changed");
    expect(describeHostDrift(file, stat(S_IFREG | 0o644, { size: 6 }))).toBe("it was modified");
    expect(describeHostDrift(file, stat(S_IFREG | 0o644, { mtimeMs: 1001 }))).toBe("it was modified");
    expect(describeHostDrift(link, stat(S_IFLNK | 0o777, { mtimeMs: 2 }))).toBe("it was modified");
  });

  it("a directory's size and mtime are not drift: entries inside it come and go", () => {
    expect(describeHostDrift(dir, stat(S_IFDIR | 0o755, { size: 8192, mtimeMs: 5 }))).toBeUndefined();
    expect(describeHostDrift(dir, stat(S_IFDIR | 0o700))).toBe("its permissions changed");
    expect(describeHostDrift(dir, stat(S_IFDIR | 0o755, { ino: 9 }))).toBe("it was replaced");
  });

  it("names host types", () => {
    expect(hostTypeOf(stat(S_IFREG))).toBe("file");
    expect(hostTypeOf(stat(S_IFDIR))).toBe("directory");
    expect(hostTypeOf(stat(S_IFLNK))).toBe("symlink");
    expect(hostTypeOf(stat(S_IFIFO))).toBe("other");
  });
});

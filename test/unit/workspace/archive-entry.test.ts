import { describe, expect, it } from "vitest";
import { type ArchiveHeader, ArchiveEntryValidator, IMPLICIT_ARCHIVE_ROOT } from "../../../src/workspace/archive-entry.js";

const ROOT: ArchiveHeader = { name: "workspace/", type: "directory", mode: 0o40755 };

/** A validator that has already accepted the root and these headers. */
function after(...headers: ArchiveHeader[]): ArchiveEntryValidator {
  const validator = new ArchiveEntryValidator("workspace", new Set([".perstack-copyback-1234"]));
  for (const header of [ROOT, ...headers]) {
    const verdict = validator.check(header);
    if (verdict.kind === "invalid") throw new Error(verdict.reason);
  }
  return validator;
}

const mtime = new Date(1_700_000_000_000);

describe("ArchiveEntryValidator: names", () => {
  const invalid: Array<[string, ArchiveHeader, string]> = [
    ["absolute", { name: "/etc/passwd", type: "file" }, 'entry name "/etc/passwd" is absolute'],
    ["dot-dot", { name: "workspace/../etc/passwd", type: "file" }, 'entry name "workspace/../etc/passwd" contains ".."'],
    ["dot-dot at the end", { name: "workspace/a/..", type: "directory" }, 'entry name "workspace/a/.." contains ".."'],
    ["dot", { name: "workspace/./a", type: "file" }, 'entry name "workspace/./a" contains "."'],
    ["NUL", { name: "workspace/a\0b", type: "file" }, 'entry name "workspace/a\\u0000b" contains a NUL byte'],
    ["empty segment", { name: "workspace//a", type: "file" }, 'entry name "workspace//a" has an empty path segment'],
    ["two trailing slashes", { name: "workspace/d//", type: "directory" }, 'entry name "workspace/d//" has an empty path segment'],
    ["trailing slash on a file", { name: "workspace/f/", type: "file" }, 'entry name "workspace/f/" ends in "/" but is not a directory'],
    ["outside the root", { name: "etc/passwd", type: "file" }, 'entry name "etc/passwd" is not inside workspace/'],
    ["a prefix of the root", { name: "workspaces/a", type: "file" }, 'entry name "workspaces/a" is not inside workspace/'],
    ["a leading ./", { name: "./workspace/a", type: "file" }, 'entry name "./workspace/a" contains "."'],
    ["empty", { name: "", type: "file" }, 'entry name "" has an empty path segment'],
  ];
  for (const [what, header, reason] of invalid) {
    it(`refuses ${what}`, () => {
      expect(after().check(header)).toEqual({ kind: "invalid", reason });
    });
  }

  it("strips the root and one trailing slash of a directory", () => {
    expect(after().check({ name: "workspace/sub/", type: "directory", mode: 0o40750, mtime })).toEqual({
      kind: "entry",
      entry: { type: "directory", path: "sub", mode: 0o750, mtime },
    });
    expect(after().check({ name: "workspace/sub", type: "directory", mode: 0o40750 })).toMatchObject({ kind: "entry", entry: { path: "sub" } });
  });

  it("refuses a top-level name copy-back reserves", () => {
    expect(after().check({ name: "workspace/.perstack-copyback-1234/", type: "directory" })).toEqual({
      kind: "invalid",
      reason: '"workspace/.perstack-copyback-1234/" takes a name copy-back reserves for itself',
    });
    expect(after({ name: "workspace/d/", type: "directory" }).check({ name: "workspace/d/.perstack-copyback-1234", type: "file" })).toMatchObject({ kind: "entry" });
  });

  it("refuses an archive root that is not a one-segment name", () => {
    for (const bad of [".", "..", "a/b", "a\0"]) expect(() => new ArchiveEntryValidator(bad)).toThrow(RangeError);
  });
});

describe("ArchiveEntryValidator: an implicit root (perstack serve's workspace download)", () => {
  it("takes names relative to the root, parents first, with no root entry", () => {
    const validator = new ArchiveEntryValidator(IMPLICIT_ARCHIVE_ROOT);
    expect(validator.sawRoot).toBe(true);
    expect(validator.check({ name: "a.txt", type: "file", mode: 0o644, size: 1 })).toMatchObject({ kind: "entry", entry: { type: "file", path: "a.txt" } });
    expect(validator.check({ name: "src/", type: "directory" })).toMatchObject({ kind: "entry", entry: { type: "directory", path: "src" } });
    expect(validator.check({ name: "src/b.ts", type: "file" })).toMatchObject({ kind: "entry", entry: { path: "src/b.ts" } });
  });

  it("refuses what would leave the root, and children before their directory", () => {
    const cases: Array<[string, RegExp]> = [
      ["../escape", /contains "\.\."/],
      ["/etc/passwd", /is absolute/],
      ["./a", /contains "\."/],
      ["a//b", /empty path segment/],
      ["dir/file", /not an earlier directory entry/],
    ];
    for (const [name, reason] of cases) {
      expect(new ArchiveEntryValidator(IMPLICIT_ARCHIVE_ROOT).check({ name, type: "file" }), name).toMatchObject({ kind: "invalid", reason: expect.stringMatching(reason) });
    }
  });
});

describe("ArchiveEntryValidator: structure", () => {
  it("wants the root first, once, as a directory", () => {
    const fresh = new ArchiveEntryValidator("workspace");
    expect(fresh.sawRoot).toBe(false);
    expect(fresh.check({ name: "workspace/a", type: "file" })).toEqual({ kind: "invalid", reason: '"workspace/a" comes before the archive root directory' });
    expect(new ArchiveEntryValidator("workspace").check({ name: "workspace", type: "symlink", linkname: "/" })).toEqual({
      kind: "invalid",
      reason: 'the archive root "workspace" is a symlink, not a directory',
    });
    const validator = new ArchiveEntryValidator("workspace");
    expect(validator.check(ROOT)).toEqual({ kind: "root" });
    expect(validator.sawRoot).toBe(true);
    expect(validator.check(ROOT)).toEqual({ kind: "invalid", reason: '"workspace/" repeats the archive root' });
  });

  it("remembers nothing about a refused entry", () => {
    const validator = after();
    expect(validator.check({ name: "workspace/../d/", type: "directory" })).toMatchObject({ kind: "invalid" });
    expect(validator.check({ name: "workspace/x/", type: "directory" })).toMatchObject({ kind: "entry" });
    expect(validator.check({ name: "workspace/d/a", type: "file" })).toMatchObject({ kind: "invalid" });
  });

  it("refuses duplicates, including a directory named twice with and without its slash", () => {
    expect(after({ name: "workspace/a", type: "file" }).check({ name: "workspace/a", type: "file" })).toEqual({
      kind: "invalid",
      reason: '"workspace/a" appears twice in the archive',
    });
    expect(after({ name: "workspace/d/", type: "directory" }).check({ name: "workspace/d", type: "directory" })).toMatchObject({ kind: "invalid" });
    expect(after({ name: "workspace/p", type: "fifo" }).check({ name: "workspace/p", type: "file" })).toMatchObject({ kind: "invalid" });
  });

  it("wants every parent to be an earlier directory entry", () => {
    expect(after().check({ name: "workspace/d/a", type: "file" })).toEqual({
      kind: "invalid",
      reason: '"workspace/d/a" sits under "d", which is not an earlier directory entry of the archive',
    });
    for (const parent of [
      { name: "workspace/d", type: "symlink", linkname: "/etc" },
      { name: "workspace/d", type: "file" },
      { name: "workspace/d", type: "fifo" },
      { name: "workspace/d", type: "link", linkname: "workspace/f" },
    ] satisfies ArchiveHeader[]) {
      const validator = after({ name: "workspace/f", type: "file" }, parent);
      expect(validator.check({ name: "workspace/d/a", type: "file" }), parent.type).toEqual({
        kind: "invalid",
        reason: '"workspace/d/a" sits under "d", which is not a directory of the archive',
      });
    }
    expect(after({ name: "workspace/d/", type: "directory" }).check({ name: "workspace/d/a", type: "file" })).toMatchObject({ kind: "entry" });
  });
});

describe("ArchiveEntryValidator: types", () => {
  it("files keep only permission bits and their size", () => {
    for (const [mode, expected] of [
      [0o104755, 0o755],
      [0o102711, 0o711],
      [0o101644, 0o644],
      [0o7777, 0o777],
      [undefined, 0o644],
    ] as const) {
      expect(after().check({ name: "workspace/f", type: "file", mode, size: 3 })).toEqual({ kind: "entry", entry: { type: "file", path: "f", mode: expected, size: 3 } });
    }
    expect(after().check({ name: "workspace/f", type: "contiguous-file", size: 1 })).toMatchObject({ kind: "entry", entry: { type: "file" } });
    expect(after().check({ name: "workspace/f", type: "file", size: -1 })).toMatchObject({ kind: "invalid" });
    expect(after().check({ name: "workspace/f", type: "file", size: Number.NaN })).toMatchObject({ kind: "invalid" });
  });

  it("directories default to 0o755 and drop sticky and setgid bits", () => {
    expect(after().check({ name: "workspace/d/", type: "directory", mode: 0o43777 })).toEqual({ kind: "entry", entry: { type: "directory", path: "d", mode: 0o777 } });
    expect(after().check({ name: "workspace/d/", type: "directory" })).toEqual({ kind: "entry", entry: { type: "directory", path: "d", mode: 0o755 } });
  });

  it("symlinks keep their raw target, wherever it points", () => {
    for (const target of ["/etc/passwd", "../../../../etc", "dangling", "a/b/../c"]) {
      expect(after().check({ name: "workspace/l", type: "symlink", linkname: target })).toEqual({ kind: "entry", entry: { type: "symlink", path: "l", linkTarget: target } });
    }
    expect(after().check({ name: "workspace/l", type: "symlink", linkname: "" })).toMatchObject({ kind: "invalid" });
    expect(after().check({ name: "workspace/l", type: "symlink", linkname: null })).toMatchObject({ kind: "invalid" });
    expect(after().check({ name: "workspace/l", type: "symlink", linkname: "a\0b" })).toMatchObject({ kind: "invalid" });
  });

  it("hardlinks must name an earlier regular file of the archive", () => {
    const validator = after({ name: "workspace/d/", type: "directory" }, { name: "workspace/d/f", type: "file" });
    expect(validator.check({ name: "workspace/h", type: "link", linkname: "workspace/d/f", mode: 0o100600 })).toEqual({
      kind: "entry",
      entry: { type: "hardlink", path: "h", mode: 0o600, linkedPath: "d/f" },
    });
    const refused = (linkname: string | null) => ({
      kind: "invalid",
      reason: `hardlink "workspace/x" points at ${JSON.stringify(linkname ?? "")}, which is not an earlier regular file of the archive`,
    });
    for (const linkname of ["../../etc/passwd", "/etc/passwd", "workspace/../../etc/passwd", "workspace/later", "workspace/d", "workspace/d/", "workspace", "workspace/h", "d/f", "", null]) {
      expect(validator.check({ name: "workspace/x", type: "link", linkname }), String(linkname)).toEqual(refused(linkname));
    }
  });

  it("skips fifos, devices and unknown types, and remembers them as non-directories", () => {
    expect(after().check({ name: "workspace/p", type: "fifo" })).toEqual({ kind: "skip", path: "p", reason: "named pipes are not copied back" });
    expect(after().check({ name: "workspace/c", type: "character-device" })).toEqual({ kind: "skip", path: "c", reason: "device files are not copied back" });
    expect(after().check({ name: "workspace/b", type: "block-device" })).toEqual({ kind: "skip", path: "b", reason: "device files are not copied back" });
    expect(after().check({ name: "workspace/u", type: null })).toEqual({ kind: "skip", path: "u", reason: "entries of an unknown type are not copied back" });
    expect(after().check({ name: "workspace/u" })).toEqual({ kind: "skip", path: "u", reason: "entries of an unknown type are not copied back" });
    // A skipped entry's path must still not be reused or entered.
    expect(after({ name: "workspace/p", type: "fifo" }).check({ name: "workspace/p/x", type: "file" })).toMatchObject({ kind: "invalid" });
  });

  it("an invalid mtime is dropped, a valid one kept", () => {
    expect(after().check({ name: "workspace/f", type: "file", size: 0, mtime: new Date(Number.NaN) })).toEqual({ kind: "entry", entry: { type: "file", path: "f", mode: 0o644, size: 0 } });
    expect(after().check({ name: "workspace/f", type: "file", size: 0, mtime })).toMatchObject({ entry: { mtime } });
  });
});

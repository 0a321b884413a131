import { describe, expect, it } from "vitest";
import {
  ancestorsOf,
  compareChildrenFirst,
  compareParentsFirst,
  depthOf,
  isSameOrUnder,
  isStrictlyUnder,
  normalizeRelativePath,
  parentOf,
} from "../../../src/workspace/relative-path.js";

describe("relative paths", () => {
  it("normalizes what users write and refuses what is not inside the workspace", () => {
    expect(normalizeRelativePath("perstack")).toBe("perstack");
    expect(normalizeRelativePath("./perstack/")).toBe("perstack");
    expect(normalizeRelativePath("a/b//")).toBe("a/b");
    for (const bad of ["", ".", "./", "/etc", "../x", "a/../b", "a//b", "a/./b", "a\0b", "/"]) expect(normalizeRelativePath(bad), bad).toBeUndefined();
  });

  it("parents, ancestors and depth", () => {
    expect(parentOf("a/b/c")).toBe("a/b");
    expect(parentOf("a")).toBe("");
    expect(ancestorsOf("a/b/c")).toEqual(["a", "a/b"]);
    expect(ancestorsOf("a")).toEqual([]);
    expect(depthOf("")).toBe(0);
    expect(depthOf("a/b")).toBe(2);
  });

  it("under: by whole segments, the root holds everything", () => {
    expect(isSameOrUnder("perstack/jobs", "perstack")).toBe(true);
    expect(isSameOrUnder("perstack", "perstack")).toBe(true);
    expect(isSameOrUnder("perstack.toml", "perstack")).toBe(false);
    expect(isSameOrUnder("anything", "")).toBe(true);
    expect(isStrictlyUnder("perstack", "perstack")).toBe(false);
    expect(isStrictlyUnder("perstack/x", "perstack")).toBe(true);
  });

  it("orders directories before their contents even when plain string order does not", () => {
    const paths = ["a/c", "a-b", "a", "b", "a/b/c", "a/b"];
    expect([...paths].sort(compareParentsFirst)).toEqual(["a", "a/b", "a/b/c", "a/c", "a-b", "b"]);
    expect([...paths].sort(compareChildrenFirst)).toEqual(["b", "a-b", "a/c", "a/b/c", "a/b", "a"]);
  });
});

import { describe, expect, it } from "vitest";
import { WorkspaceCopyError } from "../../../src/errors.js";
import { DEFAULT_WORKSPACE_LIMITS, describeExceededLimit, LimitTally, resolveLimits } from "../../../src/workspace/workspace-limits.js";

describe("workspace limits", () => {
  it("fills in defaults and refuses nonsense values", () => {
    expect(resolveLimits(undefined)).toEqual(DEFAULT_WORKSPACE_LIMITS);
    expect(resolveLimits({ maxEntries: 5 })).toEqual({ ...DEFAULT_WORKSPACE_LIMITS, maxEntries: 5 });
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => resolveLimits({ maxFileBytes: bad })).toThrow(WorkspaceCopyError);
    expect(() => resolveLimits({ maxFileBytes: -1 })).toThrow(/workspace copy limit maxFileBytes must be a non-negative whole number, got -1/);
  });

  it("counts entries", () => {
    const tally = new LimitTally({ maxEntries: 2, maxTotalBytes: 100, maxFileBytes: 100 });
    expect(tally.entry("a")).toBeUndefined();
    expect(tally.entry("b")).toBeUndefined();
    expect(tally.entry("c")).toEqual({ limit: "maxEntries", max: 2, path: "c" });
  });

  it("counts bytes as they are read, per file and in total", () => {
    const tally = new LimitTally({ maxEntries: 10, maxTotalBytes: 25, maxFileBytes: 10 });
    tally.entry("a");
    expect(tally.read(6)).toBeUndefined();
    expect(tally.read(4)).toBeUndefined();
    expect(tally.read(1)).toEqual({ limit: "maxFileBytes", max: 10, path: "a" });
    tally.entry("b");
    expect(tally.read(10)).toBeUndefined();
    tally.entry("c");
    expect(tally.read(4)).toBeUndefined();
    expect(tally.read(1)).toEqual({ limit: "maxTotalBytes", max: 25, path: "c" });
  });

  it("checks a declared size up front without counting it", () => {
    const tally = new LimitTally({ maxEntries: 10, maxTotalBytes: 15, maxFileBytes: 10 });
    tally.entry("a");
    expect(tally.declared(11)).toEqual({ limit: "maxFileBytes", max: 10, path: "a" });
    expect(tally.declared(10)).toBeUndefined();
    expect(tally.read(10)).toBeUndefined();
    tally.entry("b");
    expect(tally.declared(6)).toEqual({ limit: "maxTotalBytes", max: 15, path: "b" });
    expect(tally.declared(5)).toBeUndefined();
  });

  it("describes what was too big", () => {
    expect(describeExceededLimit({ limit: "maxEntries", max: 3, path: "x" })).toBe("more than 3 entries (limit maxEntries)");
    expect(describeExceededLimit({ limit: "maxTotalBytes", max: 9, path: "x" })).toBe("more than 9 bytes of file content at x (limit maxTotalBytes)");
    expect(describeExceededLimit({ limit: "maxFileBytes", max: 9 })).toBe("a file larger than 9 bytes (limit maxFileBytes)");
  });
});

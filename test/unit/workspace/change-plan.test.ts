import { describe, expect, it } from "vitest";
import { applyOrderOf, changeKindOf, planChanges, type ProtectionRules } from "../../../src/workspace/change-plan.js";
import type { StagedEntry } from "../../../src/workspace/staged-tree.js";
import type { SnapshotEntry } from "../../../src/workspace/workspace-snapshot.js";

const host = { mtimeMs: 1, ino: 1, dev: 1, uid: 0, gid: 0 };
const was = {
  file: (path: string, sha256 = "h1", mode = 0o644): SnapshotEntry => ({ path, type: "file", mode, size: 1, sha256, host }),
  dir: (path: string, mode = 0o755): SnapshotEntry => ({ path, type: "directory", mode, size: 4096, host }),
  link: (path: string, linkTarget: string): SnapshotEntry => ({ path, type: "symlink", mode: 0o777, size: linkTarget.length, linkTarget, host }),
};
const now = {
  file: (path: string, sha256 = "h1", mode = 0o644): StagedEntry => ({ path, type: "file", mode, size: 1, sha256, stagedAt: `/staging/${path}` }),
  dir: (path: string, mode = 0o755): StagedEntry => ({ path, type: "directory", mode }),
  link: (path: string, linkTarget: string): StagedEntry => ({ path, type: "symlink", linkTarget }),
};
const open: ProtectionRules = { protectedFiles: [], protectedTrees: [], excludedTrees: [] };
const policy: ProtectionRules = { protectedFiles: ["perstack.toml", ".env", "config/.env"], protectedTrees: ["perstack"], excludedTrees: ["node_modules"] };

function plan(before: SnapshotEntry[], after: StagedEntry[], rules = open) {
  return planChanges(before, new Map(after.map((entry) => [entry.path, entry])), rules);
}

function summary(before: SnapshotEntry[], after: StagedEntry[], rules = open) {
  const result = plan(before, after, rules);
  return {
    changes: result.changes.map((c) => `${c.action} ${c.path}`),
    rejected: result.rejected.map((r) => `${r.change} ${r.path}${r.keep ? " (kept)" : ""}`),
  };
}

describe("planChanges: what changed", () => {
  it("nothing, when both sides agree (a symlink's mode does not count)", () => {
    const before = [was.dir("d"), was.file("d/f"), was.link("l", "d/f")];
    const after = [now.dir("d"), now.file("d/f"), now.link("l", "d/f")];
    expect(plan(before, after)).toEqual({ changes: [], rejected: [] });
  });

  it("creates, deletes, content and mode modifications, retargeted symlinks", () => {
    const before = [was.file("same"), was.file("content"), was.file("mode"), was.dir("dirmode"), was.link("l", "a"), was.file("gone")];
    const after = [now.file("same"), now.file("content", "h2"), now.file("mode", "h1", 0o755), now.dir("dirmode", 0o700), now.link("l", "b"), now.file("new")];
    expect(summary(before, after).changes).toEqual(["modify content", "modify dirmode", "delete gone", "modify l", "modify mode", "create new"]);
  });

  it("every type change is a replace", () => {
    const types = { file: [was.file, now.file], dir: [was.dir, now.dir], link: [(p: string) => was.link(p, "t"), (p: string) => now.link(p, "t")] } as const;
    for (const [fromName, [from]] of Object.entries(types)) {
      for (const [toName, [, to]] of Object.entries(types)) {
        const result = plan([from("p")], [to("p")]);
        expect(result.changes.map((c) => c.action), `${fromName} -> ${toName}`).toEqual(fromName === toName ? [] : ["replace"]);
      }
    }
  });

  it("lists changes parents first and reports them as created, modified or deleted", () => {
    const result = plan([was.file("b"), was.dir("a"), was.file("a/x")], [now.dir("a-b"), now.dir("a"), now.file("a/x", "h2"), now.dir("b"), now.file("b/y")]);
    expect(result.changes.map((c) => `${changeKindOf(c)} ${c.path}`)).toEqual(["modified a/x", "created a-b", "modified b", "created b/y"]);
  });
});

describe("planChanges: policy", () => {
  it("refuses every change to a protected file, keeping the agent's file or symlink", () => {
    const before = [was.file("perstack.toml"), was.file(".env")];
    const after = [now.file("perstack.toml", "evil"), now.link(".env", "/etc/shadow"), now.file(".env.local")];
    const result = plan(before, after, policy);
    expect(result.changes.map((c) => c.path)).toEqual([".env.local"]);
    expect(result.rejected).toEqual([
      { path: ".env", change: "modified", reason: ".env is a protected policy file: the agent cannot change it", keep: now.link(".env", "/etc/shadow") },
      { path: "perstack.toml", change: "modified", reason: "perstack.toml is a protected policy file: the agent cannot change it", keep: now.file("perstack.toml", "evil") },
    ]);
  });

  it("refuses creating or deleting a protected file, and anything the agent put under its path", () => {
    expect(summary([], [now.file("perstack.toml")], policy).rejected).toEqual(["created perstack.toml (kept)"]);
    expect(summary([was.file("perstack.toml")], [], policy).rejected).toEqual(["deleted perstack.toml"]);
    expect(summary([], [now.dir(".env"), now.file(".env/x")], policy).rejected).toEqual(["created .env", "created .env/x (kept)"]);
  });

  it("refuses deleting or replacing a directory that holds a protected path, but not changing its mode", () => {
    const before = [was.dir("config"), was.file("config/.env"), was.file("config/app.json")];
    expect(summary(before, [], policy)).toEqual({ changes: ["delete config/app.json"], rejected: ["deleted config", "deleted config/.env"] });
    expect(summary(before, [now.file("config")], policy)).toEqual({ changes: ["delete config/app.json"], rejected: ["modified config", "deleted config/.env"] });
    expect(summary(before, [now.dir("config", 0o700), now.file("config/.env"), now.file("config/app.json")], policy).changes).toEqual(["modify config"]);
    expect(plan(before, [], policy).rejected[0]?.reason).toBe("it contains the protected config/.env, so it cannot be deleted");
  });

  it("refuses every change in a protected tree and keeps none", () => {
    const before = [was.dir("perstack"), was.dir("perstack/jobs"), was.file("perstack/jobs/j.json")];
    const after = [now.dir("perstack"), now.file("perstack/evil"), now.dir("perstack/jobs"), now.file("perstack/jobs/j.json", "forged")];
    expect(summary(before, after, policy)).toEqual({ changes: [], rejected: ["created perstack/evil", "modified perstack/jobs/j.json"] });
    expect(summary(before, [], policy).rejected).toEqual(["deleted perstack", "deleted perstack/jobs", "deleted perstack/jobs/j.json"]);
    expect(plan([], [now.file("perstack/x")], policy).rejected[0]?.reason).toBe("perstack/ is protected: the agent cannot change anything in it");
  });

  it("refuses what the agent put in an excluded tree", () => {
    const result = plan([], [now.dir("node_modules"), now.file("node_modules/x.js")], policy);
    expect(result.rejected.map((r) => r.path)).toEqual(["node_modules", "node_modules/x.js"]);
    expect(result.rejected[0]?.reason).toBe("node_modules was not copied into the sandbox, so the agent's version of it is not copied back");
  });

  it("does not confuse names that merely share a prefix", () => {
    expect(summary([], [now.file("perstack.toml.bak"), now.file("perstack2/x"), now.file(".envrc")], policy).rejected).toEqual([]);
  });
});

describe("applyOrderOf", () => {
  it("removes children before parents, places parents before children, sets directory modes last, deepest first", () => {
    const before = [was.dir("old"), was.dir("old/sub"), was.file("old/sub/f"), was.file("t"), was.dir("m"), was.file("edit"), was.dir("keep", 0o755)];
    const after = [now.dir("t"), now.file("t/inside"), now.dir("n", 0o555), now.dir("n/sub", 0o500), now.file("n/sub/f"), now.file("edit", "h2"), now.dir("keep", 0o700), now.link("m", "x")];
    const order = applyOrderOf(plan(before, after));
    expect(order.removals.map((c) => c.path)).toEqual(["t", "old/sub/f", "old/sub", "old", "m"]);
    expect(order.placements.map((c) => `${c.action} ${c.path}`)).toEqual(["modify edit", "replace m", "create n", "create n/sub", "create n/sub/f", "replace t", "create t/inside"]);
    expect(order.directoryModes.map((c) => c.path)).toEqual(["t", "n/sub", "n", "keep"]);
  });
});

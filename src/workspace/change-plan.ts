// Decides, from the snapshot taken before the run and the agent's staged tree, what copy-back should do to each
// path, and which of the agent's changes policy refuses. Nothing here looks at the host: whether the user changed
// a path meanwhile is checked while applying, right before each step.
import { compareChildrenFirst, compareParentsFirst, isSameOrUnder, isStrictlyUnder } from "./relative-path.js";
import type { StagedEntry } from "./staged-tree.js";
import type { SnapshotEntry } from "./workspace-snapshot.js";

export interface ProtectionRules {
  /** Policy files (perstack.toml, .env, ...): never changed by the agent; its version is kept for the user. */
  protectedFiles: readonly string[];
  /** Subtrees (perstack/) where every agent change is refused and nothing is kept. */
  protectedTrees: readonly string[];
  /** Subtrees left out of the copy: the agent's version of them is not the user's data. */
  excludedTrees: readonly string[];
}

export type ChangeKind = "created" | "modified" | "deleted";

export type PlannedChange =
  | { action: "create"; path: string; after: StagedEntry }
  /** Same type on both sides: new content or mode for a file, new mode for a directory, new target for a symlink. */
  | { action: "modify"; path: string; before: SnapshotEntry; after: StagedEntry }
  /** The type changed (file -> directory, directory -> symlink, ...): remove the old, then place the new. */
  | { action: "replace"; path: string; before: SnapshotEntry; after: StagedEntry }
  | { action: "delete"; path: string; before: SnapshotEntry };

export interface RejectedChange {
  path: string;
  change: ChangeKind;
  reason: string;
  /** The agent's version, to be kept aside for the user (files and symlinks of protected files only). */
  keep?: StagedEntry;
}

export interface ChangePlan {
  /** Allowed changes, parents before children. */
  changes: PlannedChange[];
  rejected: RejectedChange[];
}

export function changeKindOf(change: PlannedChange): ChangeKind {
  if (change.action === "create") return "created";
  if (change.action === "delete") return "deleted";
  return "modified";
}

export function planChanges(snapshot: readonly SnapshotEntry[], staged: ReadonlyMap<string, StagedEntry>, rules: ProtectionRules): ChangePlan {
  const before = new Map(snapshot.map((entry) => [entry.path, entry]));
  const paths = [...new Set([...before.keys(), ...staged.keys()])].sort(compareParentsFirst);
  const plan: ChangePlan = { changes: [], rejected: [] };
  for (const path of paths) {
    const change = changeAt(path, before.get(path), staged.get(path));
    if (change === undefined) continue;
    const refusal = refusalOf(change, rules);
    if (refusal === undefined) plan.changes.push(change);
    else plan.rejected.push(refusal);
  }
  return plan;
}

function changeAt(path: string, before: SnapshotEntry | undefined, after: StagedEntry | undefined): PlannedChange | undefined {
  if (before === undefined) return after === undefined ? undefined : { action: "create", path, after };
  if (after === undefined) return { action: "delete", path, before };
  if (before.type !== after.type) return { action: "replace", path, before, after };
  return isUnchanged(before, after) ? undefined : { action: "modify", path, before, after };
}

function isUnchanged(before: SnapshotEntry, after: StagedEntry): boolean {
  switch (after.type) {
    case "file":
      return before.sha256 === after.sha256 && before.mode === after.mode;
    case "directory":
      return before.mode === after.mode;
    case "symlink":
      // A symlink's own mode means nothing on Linux; only where it points matters.
      return before.linkTarget === after.linkTarget;
  }
}

function refusalOf(change: PlannedChange, rules: ProtectionRules): RejectedChange | undefined {
  const { path } = change;
  const kind = changeKindOf(change);
  const tree = rules.protectedTrees.find((root) => isSameOrUnder(path, root));
  if (tree !== undefined) return { path, change: kind, reason: `${tree}/ is protected: the agent cannot change anything in it` };
  const excluded = rules.excludedTrees.find((root) => isSameOrUnder(path, root));
  if (excluded !== undefined) return { path, change: kind, reason: `${excluded} was not copied into the sandbox, so the agent's version of it is not copied back` };

  const file = rules.protectedFiles.find((protectedPath) => isSameOrUnder(path, protectedPath));
  if (file !== undefined) {
    const after = change.action === "delete" ? undefined : change.after;
    const keep = after !== undefined && after.type !== "directory" ? { keep: after } : {};
    const verb = kind === "created" ? "create" : kind === "deleted" ? "delete" : "change";
    return { path, change: kind, reason: `${file} is a protected policy file: the agent cannot ${verb} it`, ...keep };
  }

  // Deleting or replacing a directory would take a protected path with it; the directory stays.
  if ((change.action === "delete" || change.action === "replace") && change.before.type === "directory") {
    const inside = [...rules.protectedFiles, ...rules.protectedTrees].find((protectedPath) => isStrictlyUnder(protectedPath, path));
    if (inside !== undefined) return { path, change: kind, reason: `it contains the protected ${inside}, so it cannot be ${kind === "deleted" ? "deleted" : "replaced"}` };
  }
  return undefined;
}

export type RemovalStep = Extract<PlannedChange, { action: "delete" | "replace" }>;
export type PlacementStep = Extract<PlannedChange, { action: "create" | "replace" | "modify" }>;

/** The order copy-back applies a plan in. */
export interface ApplyOrder {
  /** Old versions to move away: children before their directory, so a directory is empty when it goes. */
  removals: RemovalStep[];
  /** New and changed entries: directories before what goes into them. Directory mode changes are not here. */
  placements: PlacementStep[];
  /**
   * Directories whose final mode is set last, children first: an agent's read-only directory mode must not stop
   * copy-back from filling that directory.
   */
  directoryModes: PlacementStep[];
}

export function applyOrderOf(plan: ChangePlan): ApplyOrder {
  const removals: RemovalStep[] = [];
  const placements: PlacementStep[] = [];
  const directoryModes: PlacementStep[] = [];
  for (const change of plan.changes) {
    if (change.action === "delete" || change.action === "replace") removals.push(change);
    if (change.action === "delete") continue;
    if (change.after.type === "directory") directoryModes.push(change);
    if (change.action === "modify" && change.after.type === "directory") continue;
    placements.push(change);
  }
  removals.sort((a, b) => compareChildrenFirst(a.path, b.path));
  placements.sort((a, b) => compareParentsFirst(a.path, b.path));
  directoryModes.sort((a, b) => compareChildrenFirst(a.path, b.path));
  return { removals, placements, directoryModes };
}

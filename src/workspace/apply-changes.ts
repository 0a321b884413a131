// Applies a change plan to the host workspace, one journaled step at a time. Right before each step the host
// path is compared with the snapshot: if the user changed it during the run, the agent's change is skipped and
// its version kept aside instead of overwriting the user's work. Failure anywhere throws; the caller rolls the
// journal back.
import type { Stats } from "node:fs";
import { applyOrderOf, type ChangeKind, type ChangePlan, type PlacementStep } from "./change-plan.js";
import type { AgentVersionKeeper } from "./agent-version-keeper.js";
import type { ContainedWriter, Owner } from "./contained-writer.js";
import type { StagedEntry } from "./staged-tree.js";
import type { WorkspaceFs } from "./workspace-fs.js";
import { describeHostDrift } from "./workspace-snapshot.js";

export interface RejectedChangeReport {
  path: string;
  change: ChangeKind;
  /** Where the agent's version was kept, for protected files it wrote. */
  keptAt?: string;
  reason: string;
}

export interface ConflictReport {
  path: string;
  /** Where the agent's version was kept, when it had one (not for its deletions). */
  keptAt?: string;
  reason: string;
}

export interface AppliedChanges {
  created: string[];
  modified: string[];
  deleted: string[];
  rejected: RejectedChangeReport[];
  conflicts: ConflictReport[];
}

export interface ApplyContext {
  fs: WorkspaceFs;
  workspace: ContainedWriter;
  keepRejected: AgentVersionKeeper;
  keepConflicts: AgentVersionKeeper;
  /** Owner for new entries; undefined when the process cannot chown (not root), which also skips keeping owners. */
  newOwner: Owner | undefined;
  /** Set file mtimes from the archive. */
  restoreMtimes: boolean;
}

export async function applyChangePlan(plan: ChangePlan, context: ApplyContext): Promise<AppliedChanges> {
  const { workspace } = context;
  const applied: AppliedChanges = { created: [], modified: [], deleted: [], rejected: [], conflicts: [] };
  // Paths whose old version is still in place although the plan wanted it gone: nothing may be placed there.
  const blocked = new Set<string>();
  const madeDirectories = new Set<string>();
  const chown = context.newOwner !== undefined;

  const conflict = async (path: string, reason: string, agentVersion: StagedEntry | undefined): Promise<void> => {
    blocked.add(path);
    const keptAt = agentVersion === undefined ? {} : { keptAt: await context.keepConflicts.keep(agentVersion) };
    applied.conflicts.push({ path, reason, ...keptAt });
  };

  for (const refusal of plan.rejected) {
    const keptAt = refusal.keep === undefined ? {} : { keptAt: await context.keepRejected.keep(refusal.keep) };
    applied.rejected.push({ path: refusal.path, change: refusal.change, reason: refusal.reason, ...keptAt });
  }

  const order = applyOrderOf(plan);
  for (const step of order.removals) {
    const agentVersion = step.action === "replace" ? step.after : undefined;
    const problem = await workspace.parentProblem(step.path);
    if (problem !== undefined) {
      await conflict(step.path, `it can no longer be reached on the host (${problem})`, agentVersion);
      continue;
    }
    const stat = await workspace.inspect(step.path);
    if (stat === undefined) {
      // Gone on both sides: the agent's intent already holds.
      if (step.action === "delete") applied.deleted.push(step.path);
      continue;
    }
    const drift = describeHostDrift(step.before, stat);
    if (drift !== undefined) {
      await conflict(step.path, `you changed it during the run (${drift}); your version was left in place`, agentVersion);
      continue;
    }
    if (step.before.type === "directory" && (await workspace.list(step.path)).length > 0) {
      await conflict(step.path, "the directory still holds entries that were not deleted (ones you added, or ones left in place after a conflict); it was left in place", agentVersion);
      continue;
    }
    await workspace.moveAside(step.path);
    if (step.action === "delete") applied.deleted.push(step.path);
  }

  for (const step of order.placements) {
    if (blocked.has(step.path)) continue;
    const problem = await workspace.parentProblem(step.path);
    if (problem !== undefined) {
      await conflict(step.path, `its directory is not there to put it in (${problem})`, step.after);
      continue;
    }
    const stat = await workspace.inspect(step.path);
    if (step.action === "modify") {
      if (stat === undefined) {
        await conflict(step.path, "you deleted it during the run", step.after);
        continue;
      }
      const drift = describeHostDrift(step.before, stat);
      if (drift !== undefined) {
        await conflict(step.path, `you changed it during the run (${drift}); your version was left in place`, step.after);
        continue;
      }
      await modifyInPlace(step, stat, context);
      applied.modified.push(step.path);
      continue;
    }
    if (stat !== undefined) {
      // Both sides made the same new directory: its contents are merged entry by entry.
      if (step.action === "create" && step.after.type === "directory" && stat.isDirectory()) continue;
      await conflict(step.path, "something was created at this path on the host during the run; it was left in place", step.after);
      continue;
    }
    const owner = step.action === "replace" ? { uid: step.before.host.uid, gid: step.before.host.gid } : context.newOwner;
    await place(step.path, step.after, chown ? owner : undefined, context);
    if (step.after.type === "directory") madeDirectories.add(step.path);
    (step.action === "create" ? applied.created : applied.modified).push(step.path);
  }

  for (const step of order.directoryModes) {
    if (step.after.type !== "directory") continue;
    if (step.action !== "modify") {
      if (madeDirectories.has(step.path)) await workspace.changeMode(step.path, step.after.mode);
      continue;
    }
    const problem = await workspace.parentProblem(step.path);
    const stat = problem === undefined ? await workspace.inspect(step.path) : undefined;
    const drift = stat === undefined ? (problem ?? "it is gone") : describeHostDrift(step.before, stat);
    if (drift !== undefined) {
      await conflict(step.path, `the agent changed its permissions, but you changed it during the run (${drift})`, undefined);
      continue;
    }
    await workspace.changeMode(step.path, step.after.mode);
    applied.modified.push(step.path);
  }
  return applied;
}

/** A changed file or symlink that still is what was packed: replaced, keeping its owner. */
async function modifyInPlace(step: Extract<PlacementStep, { action: "modify" }>, stat: Stats, context: ApplyContext): Promise<void> {
  const { workspace } = context;
  const owner = context.newOwner === undefined ? undefined : { uid: stat.uid, gid: stat.gid };
  const { after, before } = step;
  if (after.type === "file" && after.sha256 === before.sha256) {
    // Only the mode changed: the file keeps its inode, and any other names the user gave it.
    await workspace.changeMode(step.path, after.mode);
    return;
  }
  if (after.type === "file") await prepareStagedFile(after, owner, context);
  await workspace.moveAside(step.path);
  if (after.type === "file") await workspace.placeFile(after.stagedAt, step.path);
  else if (after.type === "symlink") await workspace.makeSymlink(step.path, after.linkTarget, owner);
}

async function place(path: string, entry: StagedEntry, owner: Owner | undefined, context: ApplyContext): Promise<void> {
  switch (entry.type) {
    case "file":
      await prepareStagedFile(entry, owner, context);
      await context.workspace.placeFile(entry.stagedAt, path);
      return;
    case "directory":
      await context.workspace.makeDirectory(path, owner);
      return;
    case "symlink":
      await context.workspace.makeSymlink(path, entry.linkTarget, owner);
      return;
  }
}

/** Mode, owner and mtime are set on the staged copy, so the file appears complete in one rename. */
async function prepareStagedFile(entry: Extract<StagedEntry, { type: "file" }>, owner: Owner | undefined, context: ApplyContext): Promise<void> {
  await context.fs.chmod(entry.stagedAt, entry.mode);
  if (owner !== undefined) await context.fs.lchown(entry.stagedAt, owner.uid, owner.gid);
  if (context.restoreMtimes && entry.mtime !== undefined) await context.fs.lutimes(entry.stagedAt, entry.mtime, entry.mtime);
}

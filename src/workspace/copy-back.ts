// Copy-back: applies what the agent changed in the sandbox's /workspace to the host workspace it was copied from.
// Three stages, so a hostile or broken archive can never leave the workspace half-changed: read and check the
// whole archive into a staging directory; plan against the snapshot; apply as a journal that is rolled back on
// any failure.
import { randomBytes } from "node:crypto";
import { isAbsolute, join, relative, resolve } from "node:path";
import { Readable } from "node:stream";
import { WorkspaceCopyError } from "../errors.js";
import { AgentVersionKeeper } from "./agent-version-keeper.js";
import { applyChangePlan, type ConflictReport, type RejectedChangeReport } from "./apply-changes.js";
import { ApplyJournal, IncompleteRollbackError } from "./apply-journal.js";
import { planChanges } from "./change-plan.js";
import { ContainedWriter, type Owner } from "./contained-writer.js";
import { isSameOrUnder, normalizeRelativePath } from "./relative-path.js";
import { stageArchive } from "./stage-archive.js";
import type { StagedEntry } from "./staged-tree.js";
import { nodeWorkspaceFs, type WorkspaceFs } from "./workspace-fs.js";
import { resolveLimits, type WorkspaceLimits } from "./workspace-limits.js";
import { COPY_BACK_STAGING_PREFIX, type SkippedPath, type WorkspaceSnapshot } from "./workspace-snapshot.js";

export interface CopyBackOptions {
  /** The host workspace the snapshot was taken of. */
  workspace: string;
  snapshot: WorkspaceSnapshot;
  /** The tar stream of GET /containers/{id}/archive?path=/workspace (what dockerode's getArchive returns). */
  archive: Readable | NodeJS.ReadableStream;
  /**
   * The name every archive entry starts with; "workspace" for path=/workspace. IMPLICIT_ARCHIVE_ROOT
   * (archive-entry.ts): the names are relative to the workspace, with no entry of its own.
   */
  archiveRoot?: string;
  /**
   * The archive's tree was kept where modes are normalized (perstack serve stores an upload's files 0644 or 0755,
   * its directories 0755): an entry whose mode is what the snapshot's own mode normalizes to is taken as the
   * snapshot's mode, unchanged, so the normalization is never applied to the workspace as a change of the agent's.
   */
  normalizedMode?: (type: "file" | "directory", mode: number) => number;
  /** Policy files (perstack.toml, .env, .env.local): never changed; the agent's version is kept in keepDir. */
  protectedFiles?: readonly string[];
  /** Subtrees (perstack) where agent changes are refused and only reported. */
  protectedTrees?: readonly string[];
  /**
   * Absolute directory for agent versions that were not applied: keepDir/protected/<path> for protected files,
   * keepDir/conflicts/<path> for paths the user changed during the run. Outside the workspace, or inside a
   * protected tree.
   */
  keepDir: string;
  /** Owner of new files, directories and symlinks (the workspace root's owner); applied only when running as root. */
  owner: Owner;
  limits?: Partial<WorkspaceLimits>;
  /** Give placed files the mtime the archive records. Default true. */
  restoreMtimes?: boolean;
  /** For tests: the file-system calls to make. */
  fs?: WorkspaceFs;
  /** For tests: whether to chown. Default: the process runs as root. */
  runningAsRoot?: boolean;
}

export interface CopyBackResult {
  created: string[];
  /** Content, mode, link target or type changed. */
  modified: string[];
  deleted: string[];
  /** Agent changes policy refused. */
  rejected: RejectedChangeReport[];
  /** Agent changes skipped because the user changed the same path during the run. */
  conflicts: ConflictReport[];
  /** Archive entries of types that are never created on the host (fifos, devices, ...). */
  skipped: SkippedPath[];
  /** Copy-back's own directories it could not remove after succeeding; safe to delete. */
  leftovers: string[];
}

export async function copyBack(options: CopyBackOptions): Promise<CopyBackResult> {
  const fs = options.fs ?? nodeWorkspaceFs;
  const archive = options.archive instanceof Readable ? options.archive : new Readable().wrap(options.archive);
  let root: string;
  let staging: string;
  let limits: WorkspaceLimits;
  let protectedFiles: string[];
  let protectedTrees: string[];
  const stagingName = `${COPY_BACK_STAGING_PREFIX}${randomBytes(8).toString("hex")}`;
  try {
    limits = resolveLimits(options.limits);
    protectedFiles = relativePaths(options.protectedFiles ?? [], "protected file");
    protectedTrees = relativePaths(options.protectedTrees ?? [], "protected tree");
    root = await realWorkspaceRoot(fs, options, protectedTrees);
    staging = join(root, stagingName);
    await fs.mkdir(staging, 0o700);
  } catch (error) {
    archive.destroy();
    throw error instanceof WorkspaceCopyError ? error : new WorkspaceCopyError(`copy-back into ${options.workspace} failed (${messageOf(error)}); nothing in the workspace was changed. Fix the cause (permissions, disk space) and run again.`);
  }
  const runningAsRoot = options.runningAsRoot ?? process.getuid?.() === 0;
  const owner = runningAsRoot ? options.owner : undefined;
  const journal = new ApplyJournal();
  const incoming = join(staging, "incoming");
  const originals = join(staging, "originals");
  let applying = false;

  try {
    await fs.mkdir(incoming, 0o700);
    await fs.mkdir(originals, 0o700);
    const staged = await stageArchive({
      fs,
      archive,
      archiveRoot: options.archiveRoot ?? "workspace",
      stagingDir: incoming,
      limits,
      reservedNames: new Set([stagingName]),
      workspace: root,
    });
    if (options.normalizedMode) restoreNormalizedModes(options.snapshot, staged.entries, options.normalizedMode);
    const plan = planChanges(options.snapshot.entries, staged.entries, { protectedFiles, protectedTrees, excludedTrees: options.snapshot.excluded });
    applying = true;
    const applied = await applyChangePlan(plan, {
      fs,
      workspace: new ContainedWriter(fs, journal, root, originals),
      keepRejected: new AgentVersionKeeper(fs, journal, options.keepDir, "protected", owner),
      keepConflicts: new AgentVersionKeeper(fs, journal, options.keepDir, "conflicts", owner),
      newOwner: owner,
      restoreMtimes: options.restoreMtimes ?? true,
    });
    journal.commit();
    const leftovers = await removeStaging(fs, staging);
    return { ...applied, skipped: staged.skipped, leftovers };
  } catch (error) {
    archive.destroy();
    const failures = await journal.rollback();
    if (failures.length > 0) {
      const undone = failures.map((failure) => `${failure.description}: ${messageOf(failure.error)}`).join("; ");
      throw new IncompleteRollbackError(
        `copy-back into ${root} failed (${messageOf(error)}) and could not be fully undone (${undone}); ` +
          `the originals not put back are in ${originals}: restore them by hand, then delete ${staging}`,
        originals,
      );
    }
    await removeStaging(fs, staging);
    // Staging errors already say that nothing was changed.
    if (!applying && error instanceof WorkspaceCopyError) throw error;
    throw new WorkspaceCopyError(
      `copy-back into ${root} failed (${messageOf(error)}); every change was undone, so the workspace is as it was before copy-back. ` +
        "Fix the cause (disk space, permissions) and run again.",
    );
  }
}

function restoreNormalizedModes(snapshot: WorkspaceSnapshot, staged: Map<string, StagedEntry>, normalized: NonNullable<CopyBackOptions["normalizedMode"]>): void {
  for (const before of snapshot.entries) {
    const after = staged.get(before.path);
    if (after === undefined || after.type !== before.type || after.type === "symlink") continue;
    if (after.mode === normalized(after.type, before.mode)) after.mode = before.mode;
  }
}

async function realWorkspaceRoot(fs: WorkspaceFs, options: CopyBackOptions, protectedTrees: readonly string[]): Promise<string> {
  const root = await fs.realpath(options.workspace);
  if (!(await fs.lstat(root)).isDirectory()) throw new WorkspaceCopyError(`copy-back refused: the workspace ${options.workspace} is not a directory`);
  if (options.snapshot.root !== root) {
    throw new WorkspaceCopyError(`copy-back refused: the snapshot was taken of ${options.snapshot.root}, not of ${root}; copy back with the snapshot of this workspace`);
  }
  if (!isAbsolute(options.keepDir)) throw new WorkspaceCopyError(`copy-back refused: the directory for kept files must be an absolute path, got ${options.keepDir}`);
  // Kept files must not land where the agent's tree is being applied, or they would collide with it.
  for (const base of new Set([root, resolve(options.workspace)])) {
    const inside = relative(base, resolve(options.keepDir));
    if (inside === ".." || inside.startsWith("../") || isAbsolute(inside)) continue;
    if (!protectedTrees.some((tree) => inside !== "" && isSameOrUnder(inside, tree))) {
      throw new WorkspaceCopyError(`copy-back refused: the directory for kept files ${options.keepDir} is inside the workspace but not inside a protected tree; keep them outside it or under perstack/`);
    }
  }
  return root;
}

function relativePaths(paths: readonly string[], what: string): string[] {
  return paths.map((path) => {
    const normalized = normalizeRelativePath(path);
    if (normalized === undefined) throw new WorkspaceCopyError(`${what} ${JSON.stringify(path)} is not a relative path inside the workspace; fix the list`);
    return normalized;
  });
}

async function removeStaging(fs: WorkspaceFs, staging: string): Promise<string[]> {
  try {
    await fs.removeTree(staging);
    return [];
  } catch {
    return [staging];
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

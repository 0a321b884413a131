// EFFECTS: copies a workspace so that one run of a comparison (or one check) works on its own copy. Used both for
// the user's workspace (one copy per run) and for a run's final workspace, which the agent shaped: so nothing here
// follows a symlink, reads a FIFO or opens a device, and the source is only ever read.
import { constants as fsConstants } from "node:fs";
import { chmod, cp, lstat, mkdir, readdir, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { WorkspaceCopyError } from "../errors.js";
import { describeExceededLimit, LimitTally, resolveLimits, type ExceededLimit, type WorkspaceLimits } from "../workspace/workspace-limits.js";

export interface CopyWorkspaceOptions {
  /** Absolute paths to leave out with everything under them (the perstack/ directory, the comparison's output). */
  exclude: string[];
  /**
   * Bounds on what is copied, by lstat sizes (a sparse file counts at its full length, which is what a copy of it
   * takes on disk). Default: none, for the user's own workspace; an agent's workspace needs them.
   */
  limits?: Partial<WorkspaceLimits>;
}

export interface CopyWorkspaceResult {
  /** Files, directories and symlinks copied (the root not counted). */
  copied: number;
  /** Sockets, FIFOs, devices and names that cannot be read back (not valid UTF-8), left out. */
  skippedSpecial: number;
}

/** Setuid, setgid and sticky bits: a copy is a working tree, never a way to hand anyone privileges. */
const PRIVILEGE_BITS = 0o7000;

/**
 * Copies `source` to `target`, which must not exist yet. Regular files keep their permission bits and timestamps,
 * symlinks are recreated with their target text unchanged (never followed or resolved), directories are recreated;
 * anything else is skipped and counted.
 */
export async function copyWorkspace(source: string, target: string, options: CopyWorkspaceOptions): Promise<CopyWorkspaceResult> {
  const root = await realDirectory(source);
  const excluded = excludedRelativePaths(source, options.exclude, root);
  const targetPath = resolve(target);
  const targetRelative = relativeInside(root, await realParentPath(targetPath));
  if (targetRelative !== undefined && !excluded.some((path) => isSameOrUnder(targetRelative, path))) {
    throw new WorkspaceCopyError(`cannot copy the workspace ${root} into ${targetPath}, which is inside it; exclude that directory or pick a target outside it`);
  }

  const tally = options.limits ? new LimitTally(resolveLimits(options.limits)) : undefined;
  let exceeded: ExceededLimit | undefined;
  let copied = 0;
  let skippedSpecial = 0;
  const stripPrivileges: Array<{ path: string; mode: number }> = [];
  const filter = async (src: string, dest: string): Promise<boolean> => {
    const rel = relative(root, src).split(sep).join("/");
    if (excluded.some((path) => isSameOrUnder(rel, path))) return false;
    let stat;
    try {
      stat = await lstat(src);
    } catch {
      // readdir hands back names that are not valid UTF-8 in a lossy form that names no file: nothing to copy.
      skippedSpecial += 1;
      return false;
    }
    if (!stat.isFile() && !stat.isDirectory() && !stat.isSymbolicLink()) {
      skippedSpecial += 1;
      return false;
    }
    exceeded ??= tally?.entry(rel) ?? (stat.isFile() ? tally?.read(stat.size) : undefined);
    // Thrown inside cp's walk, so the copy stops at once; reported below.
    if (exceeded) throw new LimitReached();
    copied += 1;
    if (!stat.isSymbolicLink() && (stat.mode & PRIVILEGE_BITS) !== 0) stripPrivileges.push({ path: dest, mode: stat.mode & 0o777 });
    return true;
  };

  try {
    await mkdir(dirname(targetPath), { recursive: true });
    await mkdir(targetPath);
  } catch (error) {
    throw new WorkspaceCopyError(`cannot create ${targetPath} for a copy of the workspace: ${describe(error)}`);
  }
  try {
    // Entry by entry rather than the root at once: node's cp refuses a target under its source even when the
    // filter leaves that part out, and the comparison's output may well sit inside the workspace.
    for (const name of (await readdir(root)).sort()) {
      await cp(join(root, name), join(targetPath, name), {
        recursive: true,
        dereference: false,
        verbatimSymlinks: true,
        preserveTimestamps: true,
        errorOnExist: true,
        force: false,
        mode: fsConstants.COPYFILE_EXCL,
        filter,
      });
    }
    // Directories get their mode after their contents are in, so privilege bits go last.
    for (const entry of stripPrivileges) await chmod(entry.path, entry.mode);
    await chmod(targetPath, (await lstat(root)).mode & 0o777);
  } catch (error) {
    if (exceeded) throw new WorkspaceCopyError(`the workspace ${root} is too big to copy: ${describeExceededLimit(exceeded)}`);
    throw new WorkspaceCopyError(`copying the workspace ${root} to ${targetPath} failed: ${describe(error)}`);
  }
  return { copied, skippedSpecial };
}

/**
 * The excluded paths that lie inside the workspace, as workspace-relative POSIX paths ("perstack",
 * "out/compare-1"). The workspace may be named through a symlink, so both its given and its real path count.
 */
export function excludedRelativePaths(workspace: string, exclude: string[], realRoot?: string): string[] {
  const roots = [resolve(workspace), ...(realRoot ? [realRoot] : [])];
  const result = new Set<string>();
  for (const path of exclude) {
    if (!isAbsolute(path)) throw new WorkspaceCopyError(`excluded path ${path} is not absolute`);
    for (const root of roots) {
      const rel = relativeInside(root, resolve(path));
      if (rel !== undefined && rel !== "") result.add(rel);
    }
  }
  return [...result];
}

/** The POSIX path of `path` relative to `root`, "" for the root itself, undefined when it is outside. */
function relativeInside(root: string, path: string): string | undefined {
  const rel = relative(root, path);
  if (rel === "") return "";
  if (rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return rel.split(sep).join("/");
}

export function isSameOrUnder(path: string, base: string): boolean {
  return path === base || path.startsWith(`${base}/`);
}

async function realDirectory(path: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw new WorkspaceCopyError(`cannot read the workspace ${path}: ${describe(error)}`);
  }
  if (!(await lstat(real)).isDirectory()) throw new WorkspaceCopyError(`the workspace ${path} is not a directory`);
  return real;
}

/** The target does not exist yet: its nearest existing ancestor's real path, with the rest appended. */
async function realParentPath(path: string): Promise<string> {
  const rest: string[] = [];
  let current = path;
  for (;;) {
    try {
      return join(await realpath(current), ...rest.reverse());
    } catch {
      const parent = dirname(current);
      if (parent === current) return path;
      rest.push(current.slice(parent.length).replace(/^[/\\]+/, ""));
      current = parent;
    }
  }
}

class LimitReached extends Error {}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (e.code === "EEXIST") return `${e.path ?? "the target"} already exists`;
  if (e.code === "EACCES" || e.code === "EPERM") return `permission denied at ${e.path ?? "a path"}`;
  if (e.code === "ENOSPC") return "the disk is full";
  return e.message ?? String(error);
}

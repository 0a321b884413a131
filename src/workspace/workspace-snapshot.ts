// What the workspace looked like when it was copied into the sandbox. Copy-back diffs the agent's tree against it
// to find the agent's changes, and compares the host against it to find what the user changed meanwhile.

/**
 * Copy-back stages the agent's files and keeps the user's originals in a top-level directory named with this
 * prefix. One left by an interrupted copy-back may hold the only copy of the user's files, so packing never hands
 * it to the agent.
 */
export const COPY_BACK_STAGING_PREFIX = ".perstack-copyback-";

export type SnapshotEntryType = "file" | "directory" | "symlink";

/** lstat facts that change when anyone touches the path; used only to notice the user's own edits. */
export interface HostFacts {
  mtimeMs: number;
  ino: number;
  dev: number;
  uid: number;
  gid: number;
}

export interface SnapshotEntry {
  /** Workspace-relative posix path. */
  path: string;
  type: SnapshotEntryType;
  /** Permission bits only (0o777); setuid, setgid and sticky never reach the sandbox. */
  mode: number;
  size: number;
  /** Hex sha256 of the content, for files. */
  sha256?: string;
  /** The raw target, for symlinks. */
  linkTarget?: string;
  host: HostFacts;
}

export interface SkippedPath {
  path: string;
  reason: string;
}

/** Plain data (no Map), so it can be written to disk next to a job and read back. */
export interface WorkspaceSnapshot {
  /** Real path of the workspace root that was packed. */
  root: string;
  /** Parents before children, in the order they were packed. */
  entries: SnapshotEntry[];
  /** Host paths that were not copied (fifos, sockets, devices, unreadable names). */
  skipped: SkippedPath[];
  /** The subtrees left out on purpose; the agent never saw them, so it cannot have changed them. */
  excluded: string[];
}

/** The parts of an lstat result the drift check reads; node's Stats satisfies it. */
export interface HostStat {
  mode: number;
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

export function hostTypeOf(stat: HostStat): SnapshotEntryType | "other" {
  if (stat.isFile()) return "file";
  if (stat.isDirectory()) return "directory";
  if (stat.isSymbolicLink()) return "symlink";
  return "other";
}

/**
 * Says how the host path differs from what was packed, or undefined if it does not. A directory's size and mtime
 * are not compared: they change whenever an entry inside it is added or removed, including by copy-back itself;
 * what the user put inside it is found by listing it instead.
 */
export function describeHostDrift(entry: SnapshotEntry, stat: HostStat): string | undefined {
  const type = hostTypeOf(stat);
  if (type !== entry.type) return `it was a ${entry.type} and is now a ${type === "other" ? "special file" : type}`;
  if (stat.ino !== entry.host.ino || stat.dev !== entry.host.dev) return "it was replaced";
  if (type === "symlink") {
    if (stat.mtimeMs !== entry.host.mtimeMs) return "it was modified";
    return undefined;
  }
  if ((stat.mode & 0o777) !== entry.mode) return "its permissions changed";
  if (type === "directory") return undefined;
  if (stat.size !== entry.size || stat.mtimeMs !== entry.host.mtimeMs) return "it was modified";
  return undefined;
}

// Turns one header of the sandbox's /workspace archive into an entry that is safe to stage, or says why it is
// not. The archive is hostile input: the agent shaped the tree, and the parser must also survive a crafted
// archive. Anything that could name a path outside the workspace, alias another entry, or hide an entry under a
// non-directory makes the whole archive invalid; harmless but unsupported types are only skipped.
import { parentOf } from "./relative-path.js";

const PERMISSION_BITS = 0o777;
const DEFAULT_FILE_MODE = 0o644;
const DEFAULT_DIRECTORY_MODE = 0o755;

/** The header fields the validator reads, as tar-stream decodes them (type is null for unknown typeflags). */
export interface ArchiveHeader {
  name: string;
  type?: string | null;
  mode?: number;
  size?: number;
  mtime?: Date;
  linkname?: string | null;
}

interface EntryBase {
  /** Workspace-relative path, without the archive root. */
  path: string;
  mtime?: Date;
}

export type ArchiveEntry =
  | (EntryBase & { type: "file"; mode: number; size: number })
  | (EntryBase & { type: "directory"; mode: number })
  | (EntryBase & { type: "symlink"; linkTarget: string })
  /** A second name for an earlier regular file; it is materialized as an independent copy of that file. */
  | (EntryBase & { type: "hardlink"; mode: number; linkedPath: string });

export type ArchiveHeaderVerdict =
  | { kind: "root" }
  | { kind: "entry"; entry: ArchiveEntry }
  | { kind: "skip"; path: string; reason: string }
  | { kind: "invalid"; reason: string };

/**
 * The archive root of an archive whose names are relative to the root and that has no entry for the root itself
 * ("a.txt", "src/", "src/b.ts"): every entry's parents must still come first as entries of their own.
 */
export const IMPLICIT_ARCHIVE_ROOT = "";

/** What an earlier entry of the archive was, as far as later entries care. */
type SeenKind = "directory" | "file" | "other";

const SKIPPED_TYPES: Record<string, string> = {
  fifo: "named pipes are not copied back",
  "character-device": "device files are not copied back",
  "block-device": "device files are not copied back",
};

/**
 * Checks headers in archive order; it remembers what it has accepted, since duplicates, parents and hardlink
 * targets can only be judged against earlier entries.
 */
export class ArchiveEntryValidator {
  private readonly seen = new Map<string, SeenKind>();
  private rootSeen = false;

  /**
   * @param archiveRoot the single leading name every entry carries ("workspace" for GET archive?path=/workspace), or
   *   IMPLICIT_ARCHIVE_ROOT for an archive of a directory's contents with no entry for the directory itself (names
   *   relative to it, as perstack serve's GET /v1/runs/{jobId}/workspace packs them)
   * @param reservedNames top-level names the host uses during copy-back, which no entry may take
   */
  constructor(
    private readonly archiveRoot: string,
    private readonly reservedNames: ReadonlySet<string> = new Set(),
  ) {
    if (archiveRoot === IMPLICIT_ARCHIVE_ROOT) {
      this.rootSeen = true;
    } else if (archiveRoot === "." || archiveRoot === ".." || /[/\0]/.test(archiveRoot)) {
      throw new RangeError(`archive root must be one plain path segment, got ${JSON.stringify(archiveRoot)}`);
    }
  }

  /** Whether the archive's root directory entry has been accepted; an archive without one is not a workspace. */
  get sawRoot(): boolean {
    return this.rootSeen;
  }

  check(header: ArchiveHeader): ArchiveHeaderVerdict {
    const verdict = this.judge(header);
    if (verdict.kind === "root") this.rootSeen = true;
    if (verdict.kind === "entry") this.seen.set(verdict.entry.path, seenKindOf(verdict.entry));
    if (verdict.kind === "skip") this.seen.set(verdict.path, "other");
    return verdict;
  }

  private judge(header: ArchiveHeader): ArchiveHeaderVerdict {
    // tar-stream reports typeflags it does not know (sparse files, GNU dumpdirs, ...) as null; they must never be
    // mistaken for regular files.
    const type = header.type ?? "unknown";
    const named = this.relativePathOf(header.name, type === "directory");
    if ("invalid" in named) return { kind: "invalid", reason: named.invalid };
    const path = named.path;

    if (path === "") {
      if (this.archiveRoot === IMPLICIT_ARCHIVE_ROOT) return { kind: "invalid", reason: `${JSON.stringify(header.name)} names the archive root, which this archive has no entry for` };
      if (this.rootSeen) return { kind: "invalid", reason: `${JSON.stringify(header.name)} repeats the archive root` };
      if (type !== "directory") return { kind: "invalid", reason: `the archive root ${JSON.stringify(header.name)} is a ${type}, not a directory` };
      return { kind: "root" };
    }
    if (!this.rootSeen) return { kind: "invalid", reason: `${JSON.stringify(header.name)} comes before the archive root directory` };
    if (this.seen.has(path)) return { kind: "invalid", reason: `${JSON.stringify(header.name)} appears twice in the archive` };
    const parent = parentOf(path);
    if (parent !== "" && this.seen.get(parent) !== "directory") {
      const what = this.seen.has(parent) ? "is not a directory" : "is not an earlier directory entry";
      return { kind: "invalid", reason: `${JSON.stringify(header.name)} sits under ${JSON.stringify(parent)}, which ${what} of the archive` };
    }
    if (parent === "" && this.reservedNames.has(path)) {
      return { kind: "invalid", reason: `${JSON.stringify(header.name)} takes a name copy-back reserves for itself` };
    }

    const mtime = header.mtime instanceof Date && !Number.isNaN(header.mtime.getTime()) ? { mtime: header.mtime } : {};
    switch (type) {
      case "file":
      case "contiguous-file": {
        const size = header.size ?? 0;
        if (!Number.isSafeInteger(size) || size < 0) return { kind: "invalid", reason: `${JSON.stringify(header.name)} declares an impossible size ${String(size)}` };
        return { kind: "entry", entry: { type: "file", path, mode: permissionsOf(header.mode, DEFAULT_FILE_MODE), size, ...mtime } };
      }
      case "directory":
        return { kind: "entry", entry: { type: "directory", path, mode: permissionsOf(header.mode, DEFAULT_DIRECTORY_MODE), ...mtime } };
      case "symlink": {
        const target = header.linkname ?? "";
        if (target === "" || target.includes("\0")) return { kind: "invalid", reason: `symlink ${JSON.stringify(header.name)} has an empty or NUL-containing target` };
        return { kind: "entry", entry: { type: "symlink", path, linkTarget: target, ...mtime } };
      }
      case "link": {
        const linked = this.relativePathOf(header.linkname ?? "", false);
        if ("invalid" in linked || linked.path === "" || this.seen.get(linked.path) !== "file") {
          return { kind: "invalid", reason: `hardlink ${JSON.stringify(header.name)} points at ${JSON.stringify(header.linkname ?? "")}, which is not an earlier regular file of the archive` };
        }
        return { kind: "entry", entry: { type: "hardlink", path, mode: permissionsOf(header.mode, DEFAULT_FILE_MODE), linkedPath: linked.path, ...mtime } };
      }
      default:
        return { kind: "skip", path, reason: SKIPPED_TYPES[type] ?? (type === "unknown" ? "entries of an unknown type are not copied back" : `entries of type ${type} are not copied back`) };
    }
  }

  /** Strips the archive root from an entry name; "" is the root itself. */
  private relativePathOf(name: string, isDirectory: boolean): { path: string } | { invalid: string } {
    const quoted = JSON.stringify(name);
    if (name.includes("\0")) return { invalid: `entry name ${quoted} contains a NUL byte` };
    if (name.startsWith("/")) return { invalid: `entry name ${quoted} is absolute` };
    // Docker writes directories with one trailing slash; anything else ending in "/" is malformed.
    let trimmed = name;
    if (trimmed.endsWith("/")) {
      if (!isDirectory) return { invalid: `entry name ${quoted} ends in "/" but is not a directory` };
      trimmed = trimmed.slice(0, -1);
    }
    const segments = trimmed.split("/");
    if (segments.some((segment) => segment === "")) return { invalid: `entry name ${quoted} has an empty path segment` };
    if (segments.some((segment) => segment === "..")) return { invalid: `entry name ${quoted} contains ".."` };
    if (segments.some((segment) => segment === ".")) return { invalid: `entry name ${quoted} contains "."` };
    if (this.archiveRoot === IMPLICIT_ARCHIVE_ROOT) return { path: segments.join("/") };
    if (segments[0] !== this.archiveRoot) return { invalid: `entry name ${quoted} is not inside ${this.archiveRoot}/` };
    return { path: segments.slice(1).join("/") };
  }
}

function permissionsOf(mode: number | undefined, fallback: number): number {
  // Headers may carry file-type and setuid/setgid/sticky bits; only plain permissions ever reach the host.
  return mode === undefined || !Number.isFinite(mode) ? fallback : mode & PERMISSION_BITS;
}

function seenKindOf(entry: ArchiveEntry): SeenKind {
  if (entry.type === "directory") return "directory";
  if (entry.type === "file") return "file";
  return "other";
}

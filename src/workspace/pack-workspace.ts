// Packs the host workspace into the tar stream that is extracted into the sandbox's /workspace volume, and
// records what was packed so copy-back can later tell the agent's changes from the user's. The walk never follows
// a symlink: symlinks travel as symlinks, and files are opened with O_NOFOLLOW and checked to be what lstat saw.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, readlink, realpath } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import tar from "tar-stream";
import type { Pack } from "tar-stream";
import { WorkspaceCopyError } from "../errors.js";
import { normalizeRelativePath } from "./relative-path.js";
import { type ExceededLimit, LimitExceededError, LimitTally, resolveLimits, type WorkspaceLimits } from "./workspace-limits.js";
import { COPY_BACK_STAGING_PREFIX, type SnapshotEntry, type WorkspaceSnapshot } from "./workspace-snapshot.js";

export type { WorkspaceSnapshot } from "./workspace-snapshot.js";

const CHUNK_BYTES = 64 * 1024;
// O_NONBLOCK: if a fifo took the file's place after lstat, open must not hang waiting for a writer.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export interface PackWorkspaceOptions {
  /** Relative posix paths whose whole subtree is left out (e.g. "perstack"). */
  exclude?: readonly string[];
  /** Written into every header: the ids the agent runs as, so it owns its copy. */
  uid: number;
  gid: number;
  limits?: Partial<WorkspaceLimits>;
  /**
   * Leave symlinks out (perstack serve takes uploads of files and directories only). Each one is listed in the
   * snapshot's `excluded`, so copy-back refuses an agent's version of its path instead of taking it for a new file.
   */
  leaveOutSymlinks?: boolean;
}

export interface PackedWorkspace {
  /** The tar, entry names relative to the root ("a.txt", "sub/"), to extract into /workspace. */
  stream: Readable;
  /**
   * Resolves once the last entry has been read from `stream`; rejects with WorkspaceCopyError if a limit was
   * exceeded or the workspace could not be read (the stream then fails too).
   */
  snapshot: Promise<WorkspaceSnapshot>;
}

export function packWorkspace(root: string, options: PackWorkspaceOptions): PackedWorkspace {
  const pack = tar.pack();
  const snapshot = packInto(pack, root, options).then(
    (result) => {
      pack.finalize();
      return result;
    },
    (error: unknown) => {
      const failure = pack.destroying
        ? new WorkspaceCopyError(`cannot copy ${root} into the sandbox: the copy was cut off before it was complete (whoever read the archive stopped reading)`)
        : asCopyError(error, root);
      pack.destroy(failure);
      throw failure;
    },
  );
  // The stream reports the same failure; an unobserved rejection must not crash the process meanwhile.
  snapshot.catch(() => {});
  return { stream: Readable.from(pack, { objectMode: false }), snapshot };
}

async function packInto(pack: Pack, givenRoot: string, options: PackWorkspaceOptions): Promise<WorkspaceSnapshot> {
  const limits = resolveLimits(options.limits);
  const excluded = (options.exclude ?? []).map((path) => {
    const normalized = normalizeRelativePath(path);
    if (normalized === undefined) throw new WorkspaceCopyError(`cannot copy ${givenRoot} into the sandbox: exclude entry ${JSON.stringify(path)} is not a relative path inside it`);
    return normalized;
  });
  const root = await realpath(givenRoot);
  if (!(await lstat(root)).isDirectory()) throw new WorkspaceCopyError(`cannot copy ${givenRoot} into the sandbox: it is not a directory`);
  const snapshot: WorkspaceSnapshot = { root, entries: [], skipped: [], excluded };
  const walker = new WorkspaceWalker(pack, root, new Set(excluded), new LimitTally(limits), options, snapshot);
  await walker.directory("");
  return snapshot;
}

class WorkspaceWalker {
  constructor(
    private readonly pack: Pack,
    private readonly root: string,
    private readonly excluded: ReadonlySet<string>,
    private readonly tally: LimitTally,
    private readonly options: Pick<PackWorkspaceOptions, "uid" | "gid" | "leaveOutSymlinks">,
    private readonly snapshot: WorkspaceSnapshot,
  ) {}

  /** Packs what the directory holds (not the directory itself), in name order so archives are reproducible. */
  async directory(path: string): Promise<void> {
    const absolute = join(this.root, path);
    const before = await lstat(absolute);
    const names = (await readdir(absolute, { encoding: "buffer" })).sort(Buffer.compare);
    const after = await lstat(absolute);
    // readdir follows symlinks: make sure it listed the directory lstat saw.
    if (!after.isDirectory() || after.ino !== before.ino || after.dev !== before.dev) throw new ChangedWhileCopying(path);
    for (const raw of names) {
      const name = raw.toString("utf8");
      const child = path === "" ? name : `${path}/${name}`;
      if (!Buffer.from(name, "utf8").equals(raw)) {
        this.snapshot.skipped.push({ path: child, reason: "its name is not valid UTF-8" });
        continue;
      }
      if (this.excluded.has(child)) continue;
      if (path === "" && name.startsWith(COPY_BACK_STAGING_PREFIX)) {
        this.snapshot.skipped.push({ path: child, reason: "left over from an interrupted copy-back" });
        continue;
      }
      await this.entry(child);
    }
  }

  private async entry(path: string): Promise<void> {
    const absolute = join(this.root, path);
    let stat: Stats;
    try {
      stat = await lstat(absolute);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      this.snapshot.skipped.push({ path, reason: "it disappeared while the workspace was being copied" });
      return;
    }
    const special = specialFileKind(stat);
    if (special !== undefined) {
      this.snapshot.skipped.push({ path, reason: `${special} are not copied into the sandbox` });
      return;
    }
    this.limit(this.tally.entry(path));
    const mode = stat.mode & 0o777;
    const header = { mode, uid: this.options.uid, gid: this.options.gid, mtime: stat.mtime };
    const host = { mtimeMs: stat.mtimeMs, ino: stat.ino, dev: stat.dev, uid: stat.uid, gid: stat.gid };

    if (stat.isDirectory()) {
      await this.add({ ...header, name: `${path}/`, type: "directory" });
      this.snapshot.entries.push({ path, type: "directory", mode, size: stat.size, host });
      await this.directory(path);
    } else if (stat.isSymbolicLink()) {
      if (this.options.leaveOutSymlinks) {
        this.snapshot.excluded.push(path);
        return;
      }
      const target = await readlink(absolute, { encoding: "buffer" });
      const linkTarget = target.toString("utf8");
      if (!Buffer.from(linkTarget, "utf8").equals(target)) {
        this.snapshot.skipped.push({ path, reason: "its symlink target is not valid UTF-8" });
        return;
      }
      await this.add({ ...header, name: path, type: "symlink", linkname: linkTarget });
      this.snapshot.entries.push({ path, type: "symlink", mode, size: stat.size, linkTarget, host });
    } else {
      this.snapshot.entries.push(await this.file(path, stat, header, host));
    }
  }

  private async file(path: string, stat: Stats, header: { mode: number; uid: number; gid: number; mtime: Date }, host: SnapshotEntry["host"]): Promise<SnapshotEntry> {
    const handle = await open(join(this.root, path), READ_FLAGS);
    try {
      const opened = await handle.stat();
      if (!opened.isFile() || opened.ino !== stat.ino || opened.dev !== stat.dev) throw new ChangedWhileCopying(path);
      const size = opened.size;
      this.limit(this.tally.declared(size));
      const hash = createHash("sha256");
      // The entry's callback settles when the entry is written or the pack is torn down (the consumer went away),
      // so waiting on it as well as on "drain" cannot hang.
      let finished: (error?: Error | null) => void = () => {};
      const written = new Promise<void>((resolve, reject) => {
        finished = (error) => (error ? reject(error) : resolve());
      });
      written.catch(() => {});
      const sink = this.pack.entry({ ...header, name: path, type: "file", size }, (error) => finished(error));
      sink.on("error", () => {});
      let remaining = size;
      while (remaining > 0) {
        const { buffer, bytesRead } = await handle.read(Buffer.alloc(Math.min(CHUNK_BYTES, remaining)), 0, Math.min(CHUNK_BYTES, remaining), null);
        if (bytesRead === 0) throw new ChangedWhileCopying(path);
        const chunk = buffer.subarray(0, bytesRead);
        this.limit(this.tally.read(bytesRead));
        hash.update(chunk);
        remaining -= bytesRead;
        if (!sink.write(chunk)) await Promise.race([once(sink, "drain"), written]);
      }
      sink.end(undefined);
      await written;
      return { path, type: "file", mode: header.mode, size, sha256: hash.digest("hex"), host };
    } finally {
      await handle.close();
    }
  }

  private add(header: Parameters<Pack["entry"]>[0]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry(header, (error) => (error ? reject(error) : resolve()));
    });
  }

  private limit(exceeded: ExceededLimit | undefined): void {
    if (exceeded !== undefined) throw new LimitExceededError(exceeded);
  }
}

function specialFileKind(stat: Stats): string | undefined {
  if (stat.isFIFO()) return "named pipes";
  if (stat.isSocket()) return "sockets";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "device files";
  return undefined;
}

class ChangedWhileCopying extends Error {
  constructor(readonly path: string) {
    super(`${path} changed while it was being copied`);
  }
}


function asCopyError(error: unknown, root: string): WorkspaceCopyError {
  if (error instanceof WorkspaceCopyError) return error;
  if (error instanceof LimitExceededError) {
    return new WorkspaceCopyError(
      `cannot copy ${root} into the sandbox: it holds ${error.message}. Exclude large directories from the copy or raise the limit.`,
    );
  }
  if (error instanceof ChangedWhileCopying) {
    return new WorkspaceCopyError(`cannot copy ${root} into the sandbox: ${error.message}; run again when nothing is writing to the workspace`);
  }
  const code = (error as NodeJS.ErrnoException).code;
  const path = (error as NodeJS.ErrnoException).path;
  const message = error instanceof Error ? error.message : String(error);
  if (code === "EACCES" || code === "EPERM") {
    return new WorkspaceCopyError(`cannot copy ${root} into the sandbox: ${path ?? "a path"} is not readable (${code}); make it readable or exclude it`);
  }
  return new WorkspaceCopyError(`cannot copy ${root} into the sandbox: ${message}`);
}

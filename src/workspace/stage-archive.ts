// Reads the sandbox's /workspace archive to its end, checking every header, counting every byte against the
// limits and writing file contents to the staging directory, before anything in the workspace is touched.
// Content is hashed on the way so unchanged files are recognized without reading them again.
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import tar, { type Header } from "tar-stream";
import { WorkspaceCopyError } from "../errors.js";
import { ArchiveEntryValidator } from "./archive-entry.js";
import type { StagedEntry, StagedTree } from "./staged-tree.js";
import type { WorkspaceFs } from "./workspace-fs.js";
import { type ExceededLimit, LimitExceededError, LimitTally, type WorkspaceLimits } from "./workspace-limits.js";

const BLOCK = 512;
const END_OF_ARCHIVE = 2 * BLOCK;
/** One entry as tar-stream's extract iterates it: its header, then its content. */
type Entry = AsyncIterable<Buffer> & { header: Header };

const STAGED_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export interface StageArchiveOptions {
  fs: WorkspaceFs;
  archive: Readable;
  /** The name every entry starts with: "workspace" for GET /containers/{id}/archive?path=/workspace. */
  archiveRoot: string;
  /** An empty directory on the workspace's filesystem. */
  stagingDir: string;
  limits: WorkspaceLimits;
  /** Top-level names no entry may take (copy-back's own staging directory). */
  reservedNames: ReadonlySet<string>;
  /** The host workspace, for error messages. */
  workspace: string;
}

/** An archive failed a check; everything about it is in the message. */
class RefusedArchive extends Error {}

export async function stageArchive(options: StageArchiveOptions): Promise<StagedTree> {
  const { archive, workspace } = options;
  const validator = new ArchiveEntryValidator(options.archiveRoot, options.reservedNames);
  const tally = new LimitTally(options.limits);
  const ending = new ArchiveEnding();
  const extract = tar.extract();
  archive.on("data", (chunk: Buffer) => ending.observe(chunk));
  archive.once("error", (error) => extract.destroy(error));
  // An entry stream only says it "was destroyed"; the extractor's own error says why (a cut or corrupt archive).
  let extractError: unknown;
  extract.once("error", (error: unknown) => {
    extractError = error;
  });
  archive.pipe(extract);

  const tree: StagedTree = { entries: new Map(), skipped: [] };
  let stagedFiles = 0;
  let endOfEntries = 0;
  try {
    for await (const source of extract) {
      const entry = source as unknown as Entry;
      const { header } = entry;
      endOfEntries = dataOffsetOf(entry) + (header.type === "directory" ? 0 : paddedSize(header.size ?? 0));
      const verdict = validator.check(header);
      if (verdict.kind === "invalid") throw new RefusedArchive(verdict.reason);
      if (verdict.kind === "root") {
        await drainCounting(entry, tally);
        continue;
      }
      const path = verdict.kind === "entry" ? verdict.entry.path : verdict.path;
      refuseIfExceeded(tally.entry(path));
      if (verdict.kind === "skip") {
        await drainCounting(entry, tally);
        tree.skipped.push({ path, reason: verdict.reason });
        continue;
      }

      const staged = verdict.entry;
      const mtime = staged.mtime === undefined ? {} : { mtime: staged.mtime };
      switch (staged.type) {
        case "file": {
          refuseIfExceeded(tally.declared(staged.size));
          const stagedAt = join(options.stagingDir, String(stagedFiles++));
          const { sha256, size } = await writeStagedFile(options.fs, entry, stagedAt, tally);
          tree.entries.set(path, { type: "file", path, mode: staged.mode, size, sha256, stagedAt, ...mtime });
          break;
        }
        case "hardlink": {
          // Materialized as a copy so the host never gains a hard link; the copy counts against the limits.
          const linked = tree.entries.get(staged.linkedPath) as Extract<StagedEntry, { type: "file" }>;
          await drainCounting(entry, tally);
          refuseIfExceeded(tally.read(linked.size));
          const stagedAt = join(options.stagingDir, String(stagedFiles++));
          await options.fs.copyFileExclusive(linked.stagedAt, stagedAt);
          tree.entries.set(path, { type: "file", path, mode: linked.mode, size: linked.size, sha256: linked.sha256, stagedAt, ...mtime });
          break;
        }
        case "directory":
          await drainCounting(entry, tally);
          tree.entries.set(path, { type: "directory", path, mode: staged.mode, ...mtime });
          break;
        case "symlink":
          await drainCounting(entry, tally);
          tree.entries.set(path, { type: "symlink", path, linkTarget: staged.linkTarget, ...mtime });
          break;
      }
    }
    if (!validator.sawRoot) throw new RefusedArchive(`it has no ${options.archiveRoot}/ directory entry`);
    // Without the end-of-archive blocks, a stream cut between two entries would read as the agent having
    // deleted everything after the cut.
    if (!ending.endsWithMarkerAfter(endOfEntries)) throw new RefusedArchive("it ends without the end-of-archive marker, so it was cut short");
    return tree;
  } catch (error) {
    archive.unpipe(extract);
    archive.destroy();
    extract.destroy();
    const ours = error instanceof WorkspaceCopyError || error instanceof LimitExceededError || error instanceof RefusedArchive;
    throw asCopyError(ours ? error : (extractError ?? error), workspace);
  }
}

function refuseIfExceeded(exceeded: ExceededLimit | undefined): void {
  if (exceeded !== undefined) throw new LimitExceededError(exceeded);
}

async function writeStagedFile(fs: WorkspaceFs, entry: Entry, stagedAt: string, tally: LimitTally): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  const handle = await fs.open(stagedAt, STAGED_FILE_FLAGS, 0o600);
  try {
    for await (const chunk of entry) {
      const exceeded = tally.read(chunk.length);
      if (exceeded !== undefined) throw new LimitExceededError(exceeded);
      hash.update(chunk);
      size += chunk.length;
      for (let offset = 0; offset < chunk.length; ) offset += (await handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest("hex"), size };
}

/** Entries that carry no content may still carry bytes in a crafted archive; they count all the same. */
async function drainCounting(entry: Entry, tally: LimitTally): Promise<void> {
  for await (const chunk of entry) {
    const exceeded = tally.read(chunk.length);
    if (exceeded !== undefined) throw new LimitExceededError(exceeded);
  }
}


function asCopyError(error: unknown, workspace: string): WorkspaceCopyError {
  if (error instanceof WorkspaceCopyError) return error;
  if (error instanceof LimitExceededError) {
    return new WorkspaceCopyError(
      `copy-back into ${workspace} refused: the sandbox's /workspace holds ${error.message}; nothing in the workspace was changed. ` +
        "Have the agent remove what it does not need to keep, or raise the limit.",
    );
  }
  if (error instanceof RefusedArchive) {
    return new WorkspaceCopyError(`copy-back into ${workspace} refused: the sandbox's /workspace archive is not safe to apply (${error.message}); nothing in the workspace was changed.`);
  }
  const message = error instanceof Error ? error.message : String(error);
  if ((error as NodeJS.ErrnoException).code !== undefined) {
    return new WorkspaceCopyError(`copy-back into ${workspace} failed while staging the sandbox's /workspace (${message}); nothing in the workspace was changed. Check free disk space and permissions, then run again.`);
  }
  return new WorkspaceCopyError(`copy-back into ${workspace} failed while reading the sandbox's /workspace (${message}); nothing in the workspace was changed. Run again; if it keeps failing, the archive from the sandbox is damaged.`);
}

function paddedSize(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/** Where the entry's data starts in the raw archive; tar-stream records it on the header it hands out. */
function dataOffsetOf(entry: Entry): number {
  const offset = (entry.header as { byteOffset?: unknown }).byteOffset;
  return typeof offset === "number" ? offset : Number.NaN;
}

/** Watches the raw bytes so the end of the archive can be checked for its two zero blocks. */
class ArchiveEnding {
  private total = 0;
  private tail: Buffer = Buffer.alloc(0);

  observe(chunk: Buffer): void {
    this.total += chunk.length;
    this.tail = chunk.length >= END_OF_ARCHIVE ? chunk.subarray(chunk.length - END_OF_ARCHIVE) : Buffer.concat([this.tail, chunk]).subarray(-END_OF_ARCHIVE);
  }

  endsWithMarkerAfter(endOfEntries: number): boolean {
    return Number.isFinite(endOfEntries) && this.total - endOfEntries >= END_OF_ARCHIVE && this.tail.length === END_OF_ARCHIVE && this.tail.every((byte) => byte === 0);
  }
}

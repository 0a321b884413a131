// The workspace a tenant of `perstack serve` uploads with a run, and the workspace and diff the API hands back.
// The upload is hostile input from an untrusted tenant. Only regular files and directories are ever created; every
// name is checked before anything is written; content is counted against the limits while it streams, so an
// archive that inflates without end stops at the limit instead of after it; on any refusal nothing stays on disk.
//
// The sandbox's own archive has a validator (workspace/archive-entry.ts), but it expects one named root directory
// entry before everything, explicit parent entries, and accepts symlinks and hardlinks; tenant archives made with
// `tar -czf ws.tgz -C dir .` or `tar -czf ws.tgz src README.md` need none of that and may hold no links, so the name
// checks here are their own. The limit counting (LimitTally), the packer and the tree diff are shared.
import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline, Readable, Transform } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import { FILE_HEADERS_ONLY, formatPatch } from "diff";
import tar, { type Header } from "tar-stream";
import type { FileChange } from "../compare/comparison.js";
import { diffWorkspaces } from "../compare/workspace-diff.js";
import { BadUploadError } from "../errors.js";
import { packWorkspace as packTar } from "../workspace/pack-workspace.js";
import { type ExceededLimit, LimitTally } from "../workspace/workspace-limits.js";

export interface UploadLimits {
  /** Bytes of the tar.gz as sent. */
  maxCompressedBytes: number;
  /** Content bytes of all files together, once inflated. */
  maxBytes: number;
  /** Files and directories, including directories only implied by a file's path. */
  maxEntries: number;
  maxFileBytes: number;
}

type Entry = AsyncIterable<Buffer> & { header: Header };
/** What a path already is: "implied" directories were created for a file's path before (or without) their entry. */
type Kind = "file" | "directory" | "implied" | "skipped";

const FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const MAX_PATH_BYTES = 1024;
/** NAME_MAX on Linux file systems. */
const MAX_SEGMENT_BYTES = 255;
/** Inflated tar bytes allowed per entry beyond its content: header block, pax/long-name records, padding. */
const TAR_OVERHEAD_PER_ENTRY = 4096;
const SKIPPED_TYPES = new Set(["fifo", "character-device", "block-device"]);
const WHAT_TO_DO_LIMIT = "upload less, or ask the server's operator to raise the limit";

/**
 * Extracts a tenant's tar.gz into `destDir`, which must not exist (it is created with mode 0700; its parent must
 * exist) or be an empty directory. Refused, naming the entry: symlinks, hardlinks, entries of unknown types,
 * absolute names, "..", backslashes, control characters, names over 1024 bytes (or a segment over 255), an entry
 * that repeats a path or sits under a file, and anything past a limit. Named pipes and device files are skipped.
 * Files are written 0644, or 0755 when the archive gives them any exec bit; directories 0755; all owned by the
 * server's user.
 */
export async function extractUpload(archive: Buffer | Readable, destDir: string, limits: UploadLimits): Promise<{ files: number; bytes: number }> {
  const created = await prepareDestination(destDir);
  // Each stage fails in its own words; the first failure is the cause, the rest are the pipeline tearing down.
  let failure: Error | undefined;
  const fail = (error: Error): void => {
    failure ??= error;
  };
  const source = Buffer.isBuffer(archive) ? Readable.from([archive]) : archive;
  const compressed = byteCap(limits.maxCompressedBytes, `the upload is larger than ${limits.maxCompressedBytes} bytes compressed (limit maxCompressedBytes); ${WHAT_TO_DO_LIMIT}`, fail);
  source.once("error", (error) => {
    fail(error);
    compressed.destroy(error);
  });
  // Piped, not in the pipeline: a refusal stops reading the caller's stream without destroying it, so an HTTP
  // handler can still answer the request it came with.
  source.pipe(compressed);
  const gunzip = createGunzip();
  gunzip.once("error", () => fail(refusal("the upload is not gzip-compressed, or it is damaged or cut short; send the output of `tar -czf`")));
  const extract = tar.extract();
  extract.once("error", () => fail(refusal("the upload is not a tar archive, or it is damaged or cut short; send the output of `tar -czf`")));
  // Headers, pax records and zero blocks are not file content, yet cost inflating too: a stream of nothing but
  // zero blocks would otherwise inflate forever.
  const maxTarBytes = limits.maxBytes + (limits.maxEntries + 2) * TAR_OVERHEAD_PER_ENTRY;
  const inflated = byteCap(maxTarBytes, `the upload inflates to more than ${maxTarBytes} bytes of tar data (limit maxBytes plus headers); ${WHAT_TO_DO_LIMIT}`, fail);
  pipeline(compressed, gunzip, inflated, extract, () => {});
  const writer = new UploadWriter(destDir, limits);
  try {
    for await (const entry of extract) await writer.add(entry as unknown as Entry);
    return { files: writer.files, bytes: writer.bytes };
  } catch (error) {
    source.unpipe(compressed);
    compressed.destroy();
    await (created ? rm(destDir, { recursive: true, force: true }) : emptyDirectory(destDir));
    if (error instanceof BadUploadError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    // O_EXCL refusing a name no earlier entry took: the file system folds case or Unicode forms together.
    if (code === "EEXIST" || code === "ENAMETOOLONG") throw refusal(`${writer.current} collides with another entry or is too long on this server's file system; rename it`);
    throw failure ?? error;
  }
}

class UploadWriter {
  files = 0;
  bytes = 0;
  /** The entry being written, quoted, for messages. */
  current = "an entry";
  private readonly kinds = new Map<string, Kind>();
  private readonly tally: LimitTally;

  constructor(
    private readonly root: string,
    private readonly limits: UploadLimits,
  ) {
    this.tally = new LimitTally({ maxEntries: limits.maxEntries, maxTotalBytes: limits.maxBytes, maxFileBytes: limits.maxFileBytes });
  }

  async add(entry: Entry): Promise<void> {
    const { header } = entry;
    const quoted = (this.current = `entry ${JSON.stringify(header.name)}`);
    const path = normalizedPath(header.name, quoted);
    const type = header.type ?? "unknown";
    if (type === "symlink" || type === "link") {
      const kind = type === "symlink" ? "a symlink" : "a hardlink";
      throw refusal(`${quoted} is ${kind} (to ${JSON.stringify(header.linkname ?? "")}); uploads hold only files and directories, so archive copies instead (tar -h / --hard-dereference)`);
    }
    if (path === "") {
      // "./" is the workspace itself, which exists already.
      if (type !== "directory") throw refusal(`${quoted} names the workspace root but is a ${type}; it must be a directory`);
    } else if (type === "file" || type === "contiguous-file") {
      await this.file(path, quoted, entry);
      return;
    } else if (type === "directory") {
      await this.directory(path, quoted);
    } else if (SKIPPED_TYPES.has(type)) {
      this.claim(path, quoted);
      await this.parents(path, quoted);
      this.limit(this.tally.entry(path), quoted);
      this.kinds.set(path, "skipped");
    } else {
      throw refusal(`${quoted} is an entry of type ${type}; uploads hold only files and directories, so leave it out`);
    }
    // Entries without content may still carry bytes in a crafted archive; they are read and counted all the same.
    for await (const chunk of entry) this.limit(this.tally.read(chunk.length), quoted);
  }

  private async file(path: string, quoted: string, entry: Entry): Promise<void> {
    this.claim(path, quoted);
    await this.parents(path, quoted);
    this.limit(this.tally.entry(path), quoted);
    this.limit(this.tally.declared(entry.header.size ?? 0), quoted);
    this.kinds.set(path, "file");
    const mode = ((entry.header.mode ?? 0) & 0o111) === 0 ? 0o644 : 0o755;
    const handle = await open(join(this.root, path), FILE_FLAGS, mode);
    try {
      await handle.chmod(mode); // the process umask must not change what the tenant gets back
      for await (const chunk of entry) {
        this.limit(this.tally.read(chunk.length), quoted);
        for (let offset = 0; offset < chunk.length; ) offset += (await handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
        this.bytes += chunk.length;
      }
      // Kept so build tools that compare timestamps see the tenant's tree as the tenant left it.
      const mtime = entry.header.mtime;
      if (mtime instanceof Date && Number.isFinite(mtime.getTime())) await handle.utimes(mtime, mtime);
    } finally {
      await handle.close();
    }
    this.files += 1;
  }

  private async directory(path: string, quoted: string): Promise<void> {
    // Tools list a directory after its contents at times; only a second explicit entry is a duplicate.
    if (this.kinds.get(path) === "implied") {
      this.kinds.set(path, "directory");
      return;
    }
    this.claim(path, quoted);
    await this.parents(path, quoted);
    this.limit(this.tally.entry(path), quoted);
    await this.makeDirectory(path);
    this.kinds.set(path, "directory");
  }

  /** Creates missing parents ourselves, so no path is ever resolved through something the archive made. */
  private async parents(path: string, quoted: string): Promise<void> {
    const segments = path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/");
      const kind = this.kinds.get(dir);
      if (kind === "directory" || kind === "implied") continue;
      if (kind !== undefined) throw refusal(`${quoted} sits under ${JSON.stringify(dir)}, which an earlier entry made a ${kind === "file" ? "file" : "special file"}; remove one of them`);
      this.limit(this.tally.entry(dir), quoted);
      await this.makeDirectory(dir);
      this.kinds.set(dir, "implied");
    }
  }

  private async makeDirectory(path: string): Promise<void> {
    const absolute = join(this.root, path);
    await mkdir(absolute, { mode: 0o755 });
    await chmod(absolute, 0o755);
  }

  private claim(path: string, quoted: string): void {
    const kind = this.kinds.get(path);
    if (kind === undefined) return;
    const earlier = kind === "implied" ? "a directory holding earlier entries" : `a ${kind === "skipped" ? "special file" : kind}`;
    throw refusal(`${quoted} repeats a path the upload already holds as ${earlier}; each path may appear once`);
  }

  private limit(exceeded: ExceededLimit | undefined, quoted: string): void {
    if (exceeded === undefined) return;
    if (exceeded.limit === "maxEntries") throw refusal(`it holds more than ${exceeded.max} files and directories (limit maxEntries), reached at ${quoted}; ${WHAT_TO_DO_LIMIT}`);
    if (exceeded.limit === "maxFileBytes") throw refusal(`${quoted} is larger than ${exceeded.max} bytes (limit maxFileBytes); ${WHAT_TO_DO_LIMIT}`);
    throw refusal(`its files hold more than ${this.limits.maxBytes} bytes (limit maxBytes), reached at ${quoted}; ${WHAT_TO_DO_LIMIT}`);
  }
}

/** The entry's workspace-relative path ("" for the root): "./a//b/" and "a/./b" both become "a/b". */
function normalizedPath(name: string, quoted: string): string {
  // Control characters (NUL, newlines) would corrupt the diff's headers; a backslash is a separator elsewhere.
  if (/\p{Cc}/u.test(name)) throw refusal(`${quoted} has a control character in its name; rename it`);
  if (name.includes("\\")) throw refusal(`${quoted} has a backslash in its name; use "/" between directories`);
  if (name.startsWith("/")) throw refusal(`${quoted} is an absolute path; archive paths relative to the workspace (tar -C dir .)`);
  const segments = name.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) throw refusal(`${quoted} contains ".."; every path must stay inside the workspace`);
  const path = segments.join("/");
  if (Buffer.byteLength(path) > MAX_PATH_BYTES || segments.some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)) {
    throw refusal(`${quoted} has a name longer than ${MAX_PATH_BYTES} bytes (or a part over ${MAX_SEGMENT_BYTES}); shorten it`);
  }
  return path;
}

function refusal(reason: string): BadUploadError {
  return new BadUploadError(`workspace upload refused: ${reason}`);
}

function byteCap(max: number, message: string, fail: (error: Error) => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen <= max) return callback(null, chunk);
      const error = refusal(message);
      fail(error);
      callback(error);
    },
  });
}

/** Whether the directory was created here (and so is removed whole on a refusal). */
async function prepareDestination(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: 0o700 });
    await chmod(dir, 0o700);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  if (!(await lstat(dir)).isDirectory() || (await readdir(dir)).length > 0) throw new Error(`extractUpload needs a new or empty directory, and ${dir} is not one`);
  return false;
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/**
 * A tar.gz of the directory: files and directories, symlinks as symlinks (never followed), named pipes and devices
 * left out; names relative without "./" (directories end in "/"), siblings in byte order, owner 0:0. A failure
 * while reading the tree fails the stream.
 */
export function packWorkspace(dir: string): Readable {
  const { stream } = packTar(dir, { uid: 0, gid: 0 });
  // pipeline destroys the gzip stream with a packing error and stops packing when the reader goes away.
  return pipeline(stream, createGzip(), () => {});
}

/**
 * A unified diff of `afterDir` against `beforeDir` (which must exist; an empty directory when nothing was
 * uploaded), sorted by path. Text files are diffed in git's form (`diff --git`, `--- a/x` / `+++ b/x`, /dev/null
 * for created and deleted files); binary files (a NUL byte, or not UTF-8) are one `Binary files a/x and b/x differ`
 * line; files over 1 MiB and symlinks or special files get a similar line. Cut at a line end so it stays within
 * maxBytes, with a final line saying so. Line diffs are bounded in time (they run on the event loop), so
 * compute it once per run and keep it rather than on every request.
 */
export async function workspaceDiff(beforeDir: string, afterDir: string, options: { maxBytes: number }): Promise<string> {
  const changes = await diffWorkspaces(beforeDir, afterDir, { limits: { maxPatchBytes: options.maxBytes, fileDiffMs: 200, totalDiffMs: 2000 } });
  // The patch holds the text changes only, one section per file in the order of `files`. A hunk line always starts
  // with " ", "+", "-", "@" or "\", so "diff --git " at a line start can only begin a section.
  const sections = changes.patch.split(/^(?=diff --git )/m).filter((section) => section !== "");
  const parts: string[] = [];
  let bytes = 0;
  let cut = false;
  let next = 0;
  for (const file of changes.files) {
    const text = file.kind === "text" ? sections[next++] : notShown(file);
    if (text === undefined) {
      cut = true; // the patch ran out of room before this file
      break;
    }
    const room = options.maxBytes - bytes;
    const size = Buffer.byteLength(text);
    if (size > room) {
      // Cutting at a newline byte never splits a UTF-8 character.
      const head = Buffer.from(text).subarray(0, room);
      parts.push(head.subarray(0, head.lastIndexOf(0x0a) + 1).toString("utf8"));
      cut = true;
      break;
    }
    parts.push(text);
    bytes += size;
    if (file.kind === "text" && changes.patchTruncated && next === sections.length) {
      cut = true;
      break;
    }
  }
  if (cut) parts.push(`[diff cut at ${options.maxBytes} bytes (limit maxBytes); download the workspace for every change]\n`);
  if (changes.note !== undefined) parts.push(`[not compared in full: ${changes.note}]\n`);
  return parts.join("");
}

function notShown(file: FileChange): string {
  const before = file.status === "added" ? "/dev/null" : `a/${file.path}`;
  const after = file.status === "deleted" ? "/dev/null" : `b/${file.path}`;
  const header = `diff --git ${quote(`a/${file.path}`)} ${quote(`b/${file.path}`)}\n`;
  const names = `${quote(before)} and ${quote(after)}`;
  if (file.kind === "binary") return `${header}Binary files ${names} differ\n`;
  if (file.kind === "too-large") return `${header}Files ${names} differ (too large to show as text)\n`;
  return `${header}Files ${names} differ (a symlink or special file, not shown)\n`;
}

/** A name as the diff library quotes it in `---` lines (C-style, as git does); its quoting is not exported alone. */
function quote(name: string): string {
  const headers = formatPatch({ oldFileName: name, newFileName: name, oldHeader: undefined, newHeader: undefined, hunks: [] }, FILE_HEADERS_ONLY);
  return headers.slice(4, headers.indexOf("\n"));
}

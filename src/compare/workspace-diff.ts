// EFFECTS (reads only): what a run changed in its copy of the workspace, as comparison.json's WorkspaceChanges.
// The final tree is the agent's work and hostile: it is walked with lstat only, symlinks are never followed, FIFOs
// and devices are never opened, file contents are read up to a cap, and the walk itself is bounded, so a tree of a
// million entries, a 100 GB sparse file or a symlink to /etc costs no more than a small honest workspace.
import { constants as fsConstants } from "node:fs";
import { lstat, open, opendir, readlink, realpath } from "node:fs/promises";
import { join } from "node:path";
import { formatPatch, structuredPatch, type StructuredPatch, type StructuredPatchHunk } from "diff";
import { MAX_PATCH_BYTES, type FileChange, type WorkspaceChanges } from "./comparison.js";
import { excludedRelativePaths, isSameOrUnder } from "./workspace-copy.js";

export interface DiffLimits {
  /** Entries listed per tree (files, directories, symlinks, others); the rest of a bigger tree is not compared. */
  maxEntries: number;
  /** Directories this many levels down are recorded but not entered. */
  maxDepth: number;
  /** A file larger than this is "too-large": compared byte for byte, never shown. */
  maxTextBytes: number;
  maxPatchBytes: number;
  /** How long one file's line diff may take before it is shown as a whole-file rewrite. */
  fileDiffMs: number;
  /** How long all line diffs together may take; after that every text change is a whole-file rewrite. */
  totalDiffMs: number;
}

export const DEFAULT_DIFF_LIMITS: DiffLimits = {
  maxEntries: 100_000,
  maxDepth: 64,
  maxTextBytes: 1024 ** 2,
  maxPatchBytes: MAX_PATCH_BYTES,
  fileDiffMs: 500,
  totalDiffMs: 10_000,
};

export interface DiffWorkspacesOptions {
  /** Absolute paths left out of both trees, as given to copyWorkspace (resolved against `originalDir`). */
  exclude?: string[];
  limits?: Partial<DiffLimits>;
}

/** Lines of context around each change, as git shows them. */
const CONTEXT_LINES = 3;
const COMPARE_CHUNK = 64 * 1024;
/** File-system calls in flight at once: each is a thread-pool round trip, and sequential ones dominate the time. */
const COMPARE_CONCURRENCY = 16;

type EntryType = "file" | "directory" | "symlink" | "special";

interface TreeEntry {
  type: EntryType;
  size: number;
  executable: boolean;
  /** What kind of special file, so a FIFO that became a socket counts as a change. */
  special?: string;
}

interface Tree {
  root: string;
  entries: Map<string, TreeEntry>;
  /** Set when the walk stopped at maxEntries: the directory it did not list ("" for the root). */
  stoppedAfter?: string;
  /** Directories that could not be listed: what is under them is unknown, not absent. */
  unlisted: string[];
  tooDeep: number;
}

export async function diffWorkspaces(originalDir: string, finalDir: string, options: DiffWorkspacesOptions = {}): Promise<WorkspaceChanges> {
  const limits = { ...DEFAULT_DIFF_LIMITS, ...options.limits };
  const originalRoot = await realpath(originalDir);
  const excluded = excludedRelativePaths(originalDir, options.exclude ?? [], originalRoot);
  const [before, after] = await Promise.all([walkTree(originalRoot, excluded, limits), walkTree(await realpath(finalDir), excluded, limits)]);

  const notes: string[] = [];
  if (before.stoppedAfter !== undefined || after.stoppedAfter !== undefined) {
    notes.push(`a workspace holds more than ${limits.maxEntries} entries: only the first ${limits.maxEntries} (in path order) were compared`);
  }
  if (before.tooDeep + after.tooDeep > 0) notes.push(`directories nested deeper than ${limits.maxDepth} levels were not compared`);
  const unlisted = new Set([...before.unlisted, ...after.unlisted]);
  if (unlisted.size > 0) notes.push(`${unlisted.size} director${unlisted.size === 1 ? "y" : "ies"} could not be listed and were not compared`);

  const known = (path: string): boolean => covered(before, path) && covered(after, path) && !ancestorsOf(path).some((dir) => unlisted.has(dir));
  const paths = new Set<string>();
  for (const tree of [before, after]) {
    for (const [path, entry] of tree.entries) if (entry.type !== "directory" && known(path)) paths.add(path);
  }

  // Deciding what changed reads every file of both trees: in parallel. Only text changes are read again, in order,
  // for the patch, so the contents of all the files are never held at once.
  const unreadable: string[] = [];
  const verdicts = await mapLimited([...paths].sort(byCodeUnits), COMPARE_CONCURRENCY, (path) => compareEntry(path, before, after, limits, unreadable));
  const patch = new PatchBuilder(limits.maxPatchBytes);
  const budget = { deadline: Date.now() + limits.totalDiffMs, rewrites: 0 };
  const files: FileChange[] = [];
  for (const change of verdicts) {
    if (!change) continue;
    files.push(change.kind === "text" ? await withTextPatch(change, before, after, limits, patch, budget) : change);
  }
  if (budget.rewrites > 0) notes.push(`${budget.rewrites} text file(s) took too long to diff line by line: shown and counted as whole-file rewrites`);
  if (unreadable.length > 0) notes.push(`${unreadable.length} file(s) could not be read and were compared by size and mode only`);

  return { files, patch: patch.text(), patchTruncated: patch.truncated, ...(notes.length > 0 ? { note: notes.join("; ") } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Walking.

/**
 * Depth first, parents before children, siblings in code-unit order: the walk's order is the order
 * compareParentsFirst defines, so a walk cut short has seen exactly the paths up to where it stopped. It stops
 * before listing a directory would take it past maxEntries known entries, so neither a huge tree nor one huge
 * directory is ever held in memory.
 */
async function walkTree(root: string, excluded: string[], limits: DiffLimits): Promise<Tree> {
  const tree: Tree = { root, entries: new Map(), unlisted: [], tooDeep: 0 };
  // Listed but not yet walked; the next in walk order on top.
  const stack: Array<{ path: string; entry: TreeEntry }> = [];
  let listed = 0;
  const expand = async (dir: string): Promise<boolean> => {
    const paths = await listDirectory(root, dir, tree, excluded, limits.maxEntries - listed);
    if (paths === undefined) {
      tree.stoppedAfter = dir;
      return false;
    }
    listed += paths.length;
    const entries = await mapLimited(paths, COMPARE_CONCURRENCY, (path) => describeEntry(join(root, path)));
    for (let i = paths.length - 1; i >= 0; i--) stack.push({ path: paths[i]!, entry: entries[i]! });
    return true;
  };
  if (!(await expand(""))) return tree;
  while (stack.length > 0) {
    const { path, entry } = stack.pop()!;
    tree.entries.set(path, entry);
    if (entry.type !== "directory") continue;
    if (depthOf(path) >= limits.maxDepth) {
      tree.tooDeep += 1;
      continue;
    }
    if (!(await expand(path))) break;
  }
  return tree;
}

/** The directory's paths in walk order, or undefined when it holds more than `room` (excluded paths aside). */
async function listDirectory(root: string, rel: string, tree: Tree, excluded: string[], room: number): Promise<string[] | undefined> {
  const paths: string[] = [];
  try {
    const dir = await opendir(join(root, rel), { bufferSize: 256 });
    for await (const entry of dir) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (excluded.some((base) => isSameOrUnder(path, base))) continue;
      paths.push(path);
      // Leaving the loop closes the directory.
      if (paths.length > room) return undefined;
    }
  } catch {
    tree.unlisted.push(rel);
    return [];
  }
  return paths.sort(byCodeUnits);
}

async function describeEntry(path: string): Promise<TreeEntry> {
  let stat;
  try {
    stat = await lstat(path);
  } catch {
    // A name that is not valid UTF-8 comes back from readdir in a lossy form that names nothing: it is there, but
    // it cannot be opened by that name, so it is shown and never read.
    return { type: "special", size: 0, executable: false, special: "unreadable name" };
  }
  const executable = (stat.mode & 0o111) !== 0;
  if (stat.isFile()) return { type: "file", size: stat.size, executable };
  if (stat.isDirectory()) return { type: "directory", size: 0, executable };
  if (stat.isSymbolicLink()) return { type: "symlink", size: stat.size, executable: false };
  const kind = stat.isFIFO() ? "fifo" : stat.isSocket() ? "socket" : stat.isCharacterDevice() ? "char" : stat.isBlockDevice() ? "block" : "other";
  return { type: "special", size: 0, executable: false, special: `${kind}:${stat.rdev}` };
}

/** Runs `fn` over `items` with at most `concurrency` at a time; results in the items' order. */
async function mapLimited<T, R>(items: T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Whether the walk of `tree` reached `path` (every path does, unless the walk stopped at maxEntries). */
function covered(tree: Tree, path: string): boolean {
  return tree.stoppedAfter === undefined || compareParentsFirst(path, tree.stoppedAfter) <= 0;
}

function depthOf(path: string): number {
  return path.split("/").length;
}

/** "a/b/c" -> ["a", "a/b"]. */
function ancestorsOf(path: string): string[] {
  const segments = path.split("/");
  return segments.slice(1).map((_, i) => segments.slice(0, i + 1).join("/"));
}

function compareParentsFirst(left: string, right: string): number {
  const a = left.split("/");
  const b = right.split("/");
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing one path.

interface DiffBudget {
  deadline: number;
  rewrites: number;
}

/** What changed at `path`, without line counts; undefined when nothing did. */
async function compareEntry(path: string, before: Tree, after: Tree, limits: DiffLimits, unreadable: string[]): Promise<FileChange | undefined> {
  const a = fileLevel(before.entries.get(path));
  const b = fileLevel(after.entries.get(path));
  if (!a && !b) return undefined;
  const status: FileChange["status"] = !a ? "added" : !b ? "deleted" : "modified";
  const sizes = { ...(a?.type === "file" ? { bytesBefore: a.size } : {}), ...(b?.type === "file" ? { bytesAfter: b.size } : {}) };
  const sameShape = a !== undefined && b !== undefined && a.size === b.size && a.executable === b.executable;

  if ((a && a.type !== "file") || (b && b.type !== "file")) {
    if (a && b && !(await specialChanged(path, a, b, before.root, after.root))) return undefined;
    return { path, status, kind: "special", ...sizes };
  }

  if ((a?.size ?? 0) > limits.maxTextBytes || (b?.size ?? 0) > limits.maxTextBytes) {
    if (sameShape) {
      const same = await sameBytes(join(before.root, path), join(after.root, path)).catch(() => {
        unreadable.push(path);
        return true;
      });
      if (same) return undefined;
    }
    return { path, status, kind: "too-large", ...sizes };
  }

  const contents = await readBoth(path, before, after, a, b, limits);
  if (!contents) {
    unreadable.push(path);
    return sameShape ? undefined : { path, status, kind: "binary", ...sizes };
  }
  if (sameShape && contents.oldBytes!.equals(contents.newBytes!)) return undefined;
  const text = contents.oldText !== undefined && contents.newText !== undefined;
  return { path, status, kind: text ? "text" : "binary", ...sizes };
}

interface Contents {
  oldBytes?: Buffer;
  newBytes?: Buffer;
  /** The content as text ("" when the side is absent); undefined when it is binary. */
  oldText: string | undefined;
  newText: string | undefined;
}

/** Both sides' contents (each at most maxTextBytes); undefined when one cannot be read. */
async function readBoth(path: string, before: Tree, after: Tree, a: TreeEntry | undefined, b: TreeEntry | undefined, limits: DiffLimits): Promise<Contents | undefined> {
  try {
    const oldBytes = a ? await readCapped(join(before.root, path), limits.maxTextBytes) : undefined;
    const newBytes = b ? await readCapped(join(after.root, path), limits.maxTextBytes) : undefined;
    return { oldBytes, newBytes, oldText: oldBytes ? asText(oldBytes) : "", newText: newBytes ? asText(newBytes) : "" };
  } catch {
    return undefined;
  }
}

/** Adds a text change's diff to the patch and its line counts to the change. */
async function withTextPatch(change: FileChange, before: Tree, after: Tree, limits: DiffLimits, patch: PatchBuilder, budget: DiffBudget): Promise<FileChange> {
  const a = fileLevel(before.entries.get(change.path));
  const b = fileLevel(after.entries.get(change.path));
  const contents = await readBoth(change.path, before, after, a, b, limits);
  // Read a moment ago; only a tree changing under us makes it fail or turn binary now.
  if (contents?.oldText === undefined || contents.newText === undefined) return { ...change, kind: "binary" };
  const filePatch = textPatch(change.path, change.status, contents.oldText, contents.newText, a, b, limits, budget);
  patch.add(formatPatch(filePatch));
  let added = 0;
  let removed = 0;
  for (const hunk of filePatch.hunks) {
    for (const line of hunk.lines) {
      if (line.startsWith("+")) added += 1;
      else if (line.startsWith("-")) removed += 1;
    }
  }
  return { ...change, added, removed };
}

/** A directory on one side is, for the file list, nothing: its files are compared one by one. */
function fileLevel(entry: TreeEntry | undefined): TreeEntry | undefined {
  return entry?.type === "directory" ? undefined : entry;
}

async function specialChanged(path: string, a: TreeEntry, b: TreeEntry, beforeRoot: string, afterRoot: string): Promise<boolean> {
  if (a.type !== b.type || a.special !== b.special) return true;
  if (a.type !== "symlink") return false;
  // The link's own text, never what it points at.
  const [from, to] = await Promise.all([readlink(join(beforeRoot, path)).catch(() => ""), readlink(join(afterRoot, path)).catch(() => "")]);
  return from !== to;
}

/** The file's bytes, at most `cap`; refuses anything that is not (or stopped being) a regular file. */
async function readCapped(path: string, cap: number): Promise<Buffer> {
  // O_NONBLOCK: should a FIFO have been swapped in since the walk, opening it must not wait for a writer.
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
    const buffer = Buffer.alloc(Math.min(stat.size, cap));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  } finally {
    await handle.close();
  }
}

/** Compares two large files chunk by chunk, stopping at the first difference. */
async function sameBytes(left: string, right: string): Promise<boolean> {
  const flags = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
  const a = await open(left, flags);
  try {
    const b = await open(right, flags);
    try {
      if (!(await a.stat()).isFile() || !(await b.stat()).isFile()) return false;
      const x = Buffer.alloc(COMPARE_CHUNK);
      const y = Buffer.alloc(COMPARE_CHUNK);
      for (let position = 0; ; position += COMPARE_CHUNK) {
        const [ra, rb] = await Promise.all([a.read(x, 0, COMPARE_CHUNK, position), b.read(y, 0, COMPARE_CHUNK, position)]);
        if (ra.bytesRead !== rb.bytesRead) return false;
        if (ra.bytesRead === 0) return true;
        if (!x.subarray(0, ra.bytesRead).equals(y.subarray(0, rb.bytesRead))) return false;
      }
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The content as text, or undefined when it is binary: a NUL byte, or not valid UTF-8. */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The patch.

/**
 * One file's change in git's form: `diff --git`, new/deleted file and mode lines, `---`/`+++` with a/ and b/ (or
 * /dev/null), names C-quoted as git quotes them, so names with newlines or quotes cannot break the format and
 * `git apply` takes the result.
 */
function textPatch(
  path: string,
  status: FileChange["status"],
  oldText: string,
  newText: string,
  a: TreeEntry | undefined,
  b: TreeEntry | undefined,
  limits: DiffLimits,
  budget: DiffBudget,
): StructuredPatch {
  const oldName = status === "added" ? "/dev/null" : `a/${path}`;
  const newName = status === "deleted" ? "/dev/null" : `b/${path}`;
  const timeout = Math.min(limits.fileDiffMs, budget.deadline - Date.now());
  // An added or deleted file is one hunk anyway; only a modification needs the (quadratic at worst) line diff.
  let computed = status === "modified" && timeout > 0 ? structuredPatch(oldName, newName, oldText, newText, undefined, undefined, { context: CONTEXT_LINES, timeout }) : undefined;
  if (status === "modified" && !computed) budget.rewrites += 1;
  computed ??= { oldFileName: oldName, newFileName: newName, oldHeader: undefined, newHeader: undefined, hunks: wholeFileHunks(oldText, newText) };
  return {
    ...computed,
    oldHeader: undefined,
    newHeader: undefined,
    isGit: true,
    ...(status === "added" ? { isCreate: true, newMode: gitMode(b!) } : {}),
    ...(status === "deleted" ? { isDelete: true, oldMode: gitMode(a!) } : {}),
    ...(status === "modified" && a!.executable !== b!.executable ? { oldMode: gitMode(a!), newMode: gitMode(b!) } : {}),
  };
}

function gitMode(entry: TreeEntry): string {
  return entry.executable ? "100755" : "100644";
}

/** Every old line removed and every new line added, in one hunk: what a rewrite, an addition or a deletion is. */
function wholeFileHunks(oldText: string, newText: string): StructuredPatchHunk[] {
  const oldLines = splitLines(oldText);
  const newLines = splitLines(newText);
  if (oldLines.length === 0 && newLines.length === 0) return [];
  const lines: string[] = [];
  const push = (sign: string, source: string[], text: string): void => {
    for (const line of source) lines.push(sign + line);
    if (source.length > 0 && !text.endsWith("\n")) lines.push("\\ No newline at end of file");
  };
  push("-", oldLines, oldText);
  push("+", newLines, newText);
  return [{ oldStart: 1, oldLines: oldLines.length, newStart: 1, newLines: newLines.length, lines }];
}

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (text.endsWith("\n")) lines.pop();
  return lines;
}

/** Appends per-file patches until the cap; the one that crosses it is cut at a line end, and nothing follows. */
class PatchBuilder {
  private readonly parts: string[] = [];
  private bytes = 0;
  truncated = false;

  constructor(private readonly maxBytes: number) {}

  add(text: string): void {
    if (this.truncated) return;
    const size = Buffer.byteLength(text);
    if (this.bytes + size <= this.maxBytes) {
      this.parts.push(text);
      this.bytes += size;
      return;
    }
    this.truncated = true;
    const room = Buffer.from(text).subarray(0, this.maxBytes - this.bytes);
    // Cutting at a newline byte never splits a UTF-8 character.
    const cut = room.lastIndexOf(0x0a);
    if (cut >= 0) this.parts.push(room.subarray(0, cut + 1).toString("utf8"));
  }

  text(): string {
    return this.parts.join("");
  }
}

// EFFECTS (host files): keeps the files that define the next run's sandbox (perstack.toml, the envPath files) out
// of the agent's reach when the workspace is bind-mounted.
//
// - Before the run, each policy file that exists is read, and a private copy (a "shadow") is mounted over it in the
//   container: the agent can read and even write it, but its writes land in the shadow, never in the user's file.
// - Policy files that do not exist yet cannot be mounted over without leaving a placeholder on the host, and a
//   directory holding one can be renamed away; so after the run every policy path is compared with what it was.
//   Whatever the agent changed is moved into the run's `rejected/` directory and the original is put back.
// The caller reports each change to the user: what was attempted and where the agent's version is kept
// (keepDir/protected/<path>, as in copy mode).
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, chown, copyFile, lstat, mkdir, mkdtemp, open, readFile, readlink, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { insideRoot } from "../plan/policy-files.js";

/** A policy file as it was before the run. Files are small (perstack.toml, .env); larger ones are still kept whole. */
export type PolicyState =
  | { kind: "missing" }
  | { kind: "file"; content: Buffer; mode: number; uid: number; gid: number }
  | { kind: "symlink"; target: string }
  /** A directory or anything else: left alone, but a change to it is still reported. */
  | { kind: "other"; type: string };

export interface PolicySnapshot {
  workspace: string;
  states: Map<string, PolicyState>;
}

export interface PolicyChange {
  /** Relative to the workspace, posix separators. */
  path: string;
  change: "created" | "modified" | "deleted" | "replaced";
  /** Where the agent's version is kept (absolute), when there was one to keep. */
  keptAt?: string;
  /** Where the change happened: in the user's file, or only in the sandbox's shadow copy of it. */
  where: "workspace" | "sandbox";
}

export interface Shadows {
  dir: string;
  /** Bind mounts for the agent container: the shadow of each existing policy file at its /workspace path. */
  mounts: Array<{ source: string; target: string }>;
  /** Relative path -> shadow file. */
  files: Map<string, string>;
}

const MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads the policy files. A policy file that is a symlink into the workspace makes its target a policy file too:
 * the agent could otherwise change the target and the next run would read it through the link.
 */
export async function snapshotPolicy(workspace: string, files: readonly string[]): Promise<PolicySnapshot> {
  const states = new Map<string, PolicyState>();
  const queue = [...files];
  while (queue.length > 0) {
    const rel = queue.shift()!;
    if (states.has(rel)) continue;
    const state = await readState(workspace, rel);
    states.set(rel, state);
    if (state.kind === "symlink") {
      const target = insideRoot(workspace, join(workspace, dirname(rel), state.target));
      if (target !== undefined && !states.has(target)) queue.push(target);
    }
  }
  return { workspace, states };
}

/** Private copies of the existing policy files, writable by the agent's uid, in a directory only we can list. */
export async function createShadows(snapshot: PolicySnapshot, agent: { uid: number; gid: number }): Promise<Shadows> {
  const dir = await mkdtemp(join(tmpdir(), "perstack-policy-"));
  const shadows: Shadows = { dir, mounts: [], files: new Map() };
  let index = 0;
  for (const [rel, state] of snapshot.states) {
    if (state.kind !== "file") continue;
    const path = join(dir, `${++index}`);
    await writeFile(path, state.content, { mode: 0o600, flag: "wx" });
    if (process.getuid?.() === 0) await chown(path, agent.uid, agent.gid);
    shadows.files.set(rel, path);
    shadows.mounts.push({ source: path, target: posix.join("/workspace", rel) });
  }
  return shadows;
}

export async function removeShadows(shadows: Shadows | undefined): Promise<void> {
  if (shadows) await rm(shadows.dir, { recursive: true, force: true });
}

/**
 * After the run: every policy path is compared with its snapshot and with its shadow. The agent's versions are moved
 * or copied into `keepDir` (mode 0600: an edited .env may hold secrets); originals are put back.
 */
export async function restorePolicy(snapshot: PolicySnapshot, shadows: Shadows | undefined, keepDir: string): Promise<PolicyChange[]> {
  const changes: PolicyChange[] = [];
  for (const [rel, before] of snapshot.states) {
    const shadow = shadows?.files.get(rel);
    if (shadow && before.kind === "file") {
      const edited = await readFile(shadow).catch(() => undefined);
      if (edited !== undefined && !edited.equals(before.content)) {
        const keptAt = await keepBytes(join(keepDir, "protected", ...rel.split("/")), edited);
        changes.push({ path: rel, change: "modified", keptAt, where: "sandbox" });
      }
    }
    const displaced = await clearAncestors(snapshot.workspace, rel, keepDir);
    const now = await readState(snapshot.workspace, rel);
    if (!displaced && sameState(before, now)) continue;
    const change: PolicyChange["change"] =
      before.kind === "missing" ? "created" : now.kind === "missing" ? "deleted" : before.kind === now.kind ? "modified" : "replaced";
    const keptAt = now.kind === "missing" ? undefined : await keepEntry(snapshot.workspace, rel, keepDir);
    await putBack(snapshot.workspace, rel, before);
    changes.push({ path: rel, change: displaced && now.kind === "missing" && before.kind !== "missing" ? "replaced" : change, ...(keptAt ? { keptAt } : {}), where: "workspace" });
  }
  return changes;
}

async function readState(workspace: string, rel: string): Promise<PolicyState> {
  const path = join(workspace, ...rel.split("/"));
  if (!(await parentsAreDirectories(workspace, rel))) return { kind: "missing" };
  let stat;
  try {
    stat = await lstat(path);
  } catch {
    return { kind: "missing" };
  }
  if (stat.isSymbolicLink()) return { kind: "symlink", target: await readlink(path) };
  if (!stat.isFile()) return { kind: "other", type: stat.isDirectory() ? "directory" : "special file" };
  if (stat.size > MAX_POLICY_FILE_BYTES) return { kind: "other", type: `file over ${MAX_POLICY_FILE_BYTES} bytes` };
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return { kind: "file", content: await handle.readFile(), mode: stat.mode & 0o777, uid: stat.uid, gid: stat.gid };
  } finally {
    await handle.close();
  }
}

function sameState(a: PolicyState, b: PolicyState): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "file" && b.kind === "file") return a.content.equals(b.content) && a.mode === b.mode;
  if (a.kind === "symlink" && b.kind === "symlink") return a.target === b.target;
  if (a.kind === "other" && b.kind === "other") return a.type === b.type;
  return true;
}

/** Whether every directory between the workspace and `rel` is a real directory (not a symlink, not a file). */
async function parentsAreDirectories(workspace: string, rel: string): Promise<boolean> {
  const parts = rel.split("/").slice(0, -1);
  let path = workspace;
  for (const part of parts) {
    path = join(path, part);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat?.isDirectory()) return false;
  }
  return true;
}

/**
 * An ancestor directory of a policy file that the agent replaced (by a symlink or a file) is moved aside, so that
 * putting the original back never writes through a link. Returns whether it did so.
 */
async function clearAncestors(workspace: string, rel: string, keepDir: string): Promise<boolean> {
  const parts = rel.split("/").slice(0, -1);
  let path = workspace;
  let displaced = false;
  for (let i = 0; i < parts.length; i++) {
    path = join(path, parts[i]!);
    const stat = await lstat(path).catch(() => undefined);
    if (stat === undefined || stat.isDirectory()) continue;
    await keepEntry(workspace, parts.slice(0, i + 1).join("/"), keepDir);
    displaced = true;
  }
  return displaced;
}

/** Moves the agent's entry at `rel` into keepDir (copying when rename cannot cross file systems). */
async function keepEntry(workspace: string, rel: string, keepDir: string): Promise<string> {
  const from = join(workspace, ...rel.split("/"));
  let to = join(keepDir, "protected", ...rel.split("/"));
  await mkdir(dirname(to), { recursive: true, mode: 0o700 });
  if (await lstat(to).catch(() => undefined)) to = `${to}.${randomBytes(3).toString("hex")}`;
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    const stat = await lstat(from);
    if (stat.isSymbolicLink()) await symlink(await readlink(from), to);
    else if (stat.isFile()) await copyFile(from, to, constants.COPYFILE_EXCL);
    else throw error;
    await rm(from, { recursive: true, force: true });
  }
  const stat = await lstat(to);
  if (stat.isFile()) await chmod(to, 0o600);
  return to;
}

async function keepBytes(path: string, content: Buffer): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const target = (await lstat(path).catch(() => undefined)) ? `${path}.${randomBytes(3).toString("hex")}` : path;
  await writeFile(target, content, { mode: 0o600, flag: "wx" });
  return target;
}

/** Writes the original back at `rel`: a fresh file (never through a link), or the original symlink. */
async function putBack(workspace: string, rel: string, before: PolicyState): Promise<void> {
  if (before.kind === "missing" || before.kind === "other") return;
  const parts = rel.split("/");
  let dir = workspace;
  for (const part of parts.slice(0, -1)) {
    dir = join(dir, part);
    await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  }
  const path = join(workspace, ...parts);
  if (!(await parentsAreDirectories(workspace, rel))) throw new Error(`cannot restore ${rel}: a parent is not a directory`);
  await unlink(path).catch(() => {});
  if (before.kind === "symlink") {
    await symlink(before.target, path);
    return;
  }
  const temp = `${path}.perstack-${randomBytes(4).toString("hex")}`;
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, before.mode);
  try {
    await handle.writeFile(before.content);
    await handle.chmod(before.mode);
    if (process.getuid?.() === 0) await handle.chown(before.uid, before.gid);
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

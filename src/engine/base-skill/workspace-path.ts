import { lstat, readlink, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { PerstackError } from "../../errors.js";

/** A tool asked for a path the base skill must not touch: outside the workspace, or missing when it must exist. */
export class WorkspacePathError extends PerstackError {}

export interface ResolveOptions {
  /** The path may not exist yet (it is about to be created): only its deepest existing ancestor must. */
  forWrite?: boolean;
  /**
   * Resolve a symlink in the last component (default true). Tools that act on the link itself (deleteFile,
   * moveFile's source) pass false: removing or renaming a link never touches its target.
   */
  followFinal?: boolean;
}

// Linux gives up after 40 nested links (ELOOP); so do we.
const MAX_LINK_DEPTH = 40;

/** True when `candidate` is `root` or lies beneath it; both must already be absolute and normalized. */
export function isInside(root: string, candidate: string): boolean {
  const rel = relative(root, candidate);
  return rel === "" || (!isAbsolute(rel) && rel !== ".." && !rel.startsWith(`..${sep}`));
}

/**
 * Map a path a model asked for to an absolute path inside the workspace, or throw WorkspacePathError.
 *
 * `..` is applied lexically before anything touches the disk, so `link/..` never lets the kernel walk out through
 * a symlinked directory. Each existing component is then checked with lstat; every symlink met on the way (parent
 * directories and, unless `followFinal` is false, the last component) must really resolve inside the workspace,
 * and a dangling one is followed lexically so a write through it cannot create a file outside. The returned path
 * has no symlinks in its existing part, so callers can open it with O_NOFOLLOW to close the race where a link is
 * planted between this check and the open.
 */
export async function resolveInWorkspace(root: string, requested: string, options: ResolveOptions = {}): Promise<string> {
  if (typeof requested !== "string" || requested.trim() === "") {
    throw new WorkspacePathError("A path is required: give one relative to the workspace, e.g. \"notes.txt\".");
  }
  if (requested.includes("\0")) {
    throw new WorkspacePathError(`Path ${JSON.stringify(requested)} contains a NUL byte.`);
  }
  const rootReal = await realpath(root);
  let candidate: string;
  if (isAbsolute(requested)) {
    const lexical = resolve(requested);
    // Accept the root as the caller named it (/workspace) and as the kernel knows it (its realpath).
    const base = isInside(resolve(root), lexical) ? resolve(root) : rootReal;
    candidate = join(rootReal, relative(base, lexical));
    if (!isInside(base, lexical)) throw outside(requested, root);
  } else {
    candidate = resolve(rootReal, requested);
  }
  if (!isInside(rootReal, candidate)) throw outside(requested, root);
  return walk(rootReal, root, requested, candidate, options, 0);
}

async function walk(
  rootReal: string,
  root: string,
  requested: string,
  candidate: string,
  options: ResolveOptions,
  depth: number,
): Promise<string> {
  if (depth > MAX_LINK_DEPTH) {
    throw tooManyLinks(requested);
  }
  const followFinal = options.followFinal ?? true;
  const components = relative(rootReal, candidate).split(sep).filter((c) => c !== "");
  let current = rootReal;
  for (let i = 0; i < components.length; i++) {
    const next = join(current, components[i] as string);
    const isLast = i === components.length - 1;
    let info;
    try {
      info = await lstat(next);
    } catch (error) {
      if (!isErrno(error, "ENOENT")) throw error;
      if (!options.forWrite) {
        throw new WorkspacePathError(`Path ${JSON.stringify(requested)} does not exist in the workspace.`);
      }
      return join(current, ...components.slice(i));
    }
    if (info.isSymbolicLink() && (!isLast || followFinal)) {
      let target: string;
      try {
        target = await realpath(next);
      } catch (error) {
        if (isErrno(error, "ELOOP")) throw tooManyLinks(requested);
        if (!isErrno(error, "ENOENT")) throw error;
        // Dangling: follow the link text itself so a write cannot create its target outside the workspace.
        const pointsTo = resolve(dirname(next), await readlink(next));
        if (!isInside(rootReal, pointsTo)) throw throughLink(requested, root, next, rootReal, pointsTo);
        const rest = components.slice(i + 1);
        return walk(rootReal, root, requested, join(pointsTo, ...rest), options, depth + 1);
      }
      if (!isInside(rootReal, target)) throw throughLink(requested, root, next, rootReal, target);
      current = target;
      continue;
    }
    if (!isLast && !info.isDirectory() && !info.isSymbolicLink()) {
      throw new WorkspacePathError(`Path ${JSON.stringify(requested)}: ${JSON.stringify(components.slice(0, i + 1).join("/"))} is not a directory.`);
    }
    current = next;
  }
  return current;
}

function tooManyLinks(requested: string): WorkspacePathError {
  return new WorkspacePathError(`Path ${JSON.stringify(requested)} goes through too many symbolic links (a loop?).`);
}

function outside(requested: string, root: string): WorkspacePathError {
  return new WorkspacePathError(
    `Path ${JSON.stringify(requested)} is outside the workspace ${root}: use a path inside it (relative paths are resolved from the workspace).`,
  );
}

function throughLink(requested: string, root: string, link: string, rootReal: string, target: string): WorkspacePathError {
  const linkRel = relative(rootReal, link);
  return new WorkspacePathError(
    `Path ${JSON.stringify(requested)} is outside the workspace ${root}: the symbolic link ${JSON.stringify(linkRel)} points to ${target}.`,
  );
}

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

// Workspace-relative paths are plain posix strings ("sub/a.txt", never "./", "/" or ".."), so every module can
// compare them as strings. The workspace root itself is "".

/** Returns the canonical form of a user- or integrator-given relative path, or undefined if it is not one. */
export function normalizeRelativePath(input: string): string | undefined {
  let path = input;
  while (path.startsWith("./")) path = path.slice(2);
  while (path.endsWith("/")) path = path.slice(0, -1);
  if (path === "" || path.startsWith("/") || path.includes("\0")) return undefined;
  const segments = path.split("/");
  if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) return undefined;
  return path;
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? "" : path.slice(0, slash);
}

/** The proper ancestors of a path, shallowest first, without the root: "a/b/c" -> ["a", "a/b"]. */
export function ancestorsOf(path: string): string[] {
  const segments = path.split("/");
  const ancestors: string[] = [];
  for (let i = 1; i < segments.length; i++) ancestors.push(segments.slice(0, i).join("/"));
  return ancestors;
}

export function depthOf(path: string): number {
  return path === "" ? 0 : path.split("/").length;
}

export function isSameOrUnder(path: string, base: string): boolean {
  return base === "" || path === base || path.startsWith(`${base}/`);
}

export function isStrictlyUnder(path: string, base: string): boolean {
  return path !== base && isSameOrUnder(path, base);
}

/**
 * Orders paths so that every directory comes before what it contains. Plain string order does not: "a-b" sorts
 * between "a" and "a/c" because "-" < "/".
 */
export function compareParentsFirst(left: string, right: string): number {
  const a = left.split("/");
  const b = right.split("/");
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Children before their directory, so a directory is only removed once its contents are gone. */
export function compareChildrenFirst(left: string, right: string): number {
  return compareParentsFirst(right, left);
}

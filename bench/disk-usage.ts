// Bytes of files under a directory, for the benchmarks that weigh what a run leaves on disk.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { lstatSync, readdirSync, type Dirent } from "node:fs";
import { join } from "node:path";

/**
 * Total size of the regular files under `dir` (symlinks not followed), and of those named `name` among them. Files
 * may come and go while it looks (a writer's temporary files): those gone are not counted.
 */
export function bytesUnder(dir: string, name?: string): { total: number; named: number } {
  let total = 0;
  let named = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { total, named };
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = bytesUnder(path, name);
      total += inner.total;
      named += inner.named;
    } else if (entry.isFile()) {
      const size = lstatSync(path, { throwIfNoEntry: false })?.size ?? 0;
      total += size;
      if (entry.name === name) named += size;
    }
  }
  return { total, named };
}

// Templates and recipes ship beside the code; this finds them both from src/ (tests) and from dist/src/ (built).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "templates"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`perstack: cannot find its templates above ${start}; reinstall the package`);
    dir = parent;
  }
}

export const PACKAGE_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

export const packagePath = (...parts: string[]): string => join(PACKAGE_ROOT, ...parts);

// The built-in engine's files for the agent image: the compiled modules the engine and its base skill import
// (their relative import closure in dist/, nothing else of this package) and a package.json pinning the npm
// packages they import to the versions installed here, so the image runs exactly the code that was built.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, posix } from "node:path";
import { PerstackError } from "../errors.js";
import type { ContextFile } from "../plan/sandbox-plan.js";
import { PACKAGE_ROOT } from "../package-root.js";

/** The engine's entry points, relative to dist/. */
export const ENGINE_ENTRIES = ["src/engine/main.js", "src/engine/base-skill/server.js"] as const;
/** Where the engine lives in the agent image; context files sit under `engine/` with the same layout. */
export const ENGINE_IMAGE_DIR = "/opt/perstack/engine";
export const ENGINE_CONTEXT_DIR = "engine";

/** The engine's compiled files (dist/) are missing or incomplete: the package must be built. */
export class EngineNotBuiltError extends PerstackError {}

const STATIC_IMPORT = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every module specifier a compiled ES module imports statically or with a literal dynamic import(). */
export function importSpecifiers(source: string): string[] {
  const out = new Set<string>();
  for (const pattern of [STATIC_IMPORT, SIDE_EFFECT_IMPORT, DYNAMIC_IMPORT]) {
    for (const match of source.matchAll(pattern)) out.add(match[1]!);
  }
  return [...out];
}

/** The npm package a bare specifier names ("@scope/pkg/sub.js" -> "@scope/pkg"); undefined for Node built-ins. */
export function packageOfSpecifier(specifier: string): string | undefined {
  if (specifier.startsWith("node:")) return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
  return builtinModules.includes(name) ? undefined : name;
}

export interface EngineClosure {
  /** dist-relative POSIX paths of the modules, sorted. */
  files: string[];
  /** Bare packages the modules import, sorted. */
  packages: string[];
}

/** The relative-import closure of `entries` (dist-relative paths) inside `distRoot`. */
export function engineClosure(distRoot: string, entries: readonly string[]): EngineClosure {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = entries.map((entry) => ({ path: entry, from: "" }));
  while (queue.length > 0) {
    const { path, from } = queue.shift()!;
    if (files.has(path)) continue;
    const absolute = join(distRoot, ...path.split("/"));
    if (!existsSync(absolute)) {
      throw new EngineNotBuiltError(
        `the built-in engine is not built: ${absolute} is missing${from ? ` (imported by ${from})` : ""}; run npm run build`,
      );
    }
    files.add(path);
    for (const specifier of importSpecifiers(readFileSync(absolute, "utf8"))) {
      if (specifier.startsWith(".")) {
        queue.push({ path: posix.normalize(posix.join(posix.dirname(path), specifier)), from: path });
      } else if (specifier.startsWith("/")) {
        throw new EngineNotBuiltError(`${absolute} imports the absolute path ${specifier}; the engine must import relatively`);
      } else {
        const name = packageOfSpecifier(specifier);
        if (name) packages.add(name);
      }
    }
  }
  return { files: [...files].sort(), packages: [...packages].sort() };
}

/** The installed version of `name`, found the way Node resolves it: node_modules of `from` or an ancestor. */
export function installedVersion(name: string, from: string): string {
  let dir = from;
  for (;;) {
    const manifest = join(dir, "node_modules", ...name.split("/"), "package.json");
    if (existsSync(manifest)) {
      const version = (JSON.parse(readFileSync(manifest, "utf8")) as { version?: unknown }).version;
      if (typeof version === "string") return version;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new EngineNotBuiltError(`the engine imports ${name}, which is not installed next to ${from}; run npm install`);
    }
    dir = parent;
  }
}

/** engine/package.json and engine/<dist-relative path> for each module of the closure. */
export function engineContextFiles(
  distRoot: string = join(PACKAGE_ROOT, "dist"),
  entries: readonly string[] = ENGINE_ENTRIES,
): ContextFile[] {
  if (!existsSync(distRoot)) {
    throw new EngineNotBuiltError(`the built-in engine is not built: ${distRoot} is missing; run npm run build`);
  }
  const closure = engineClosure(distRoot, entries);
  const dependencies = Object.fromEntries(closure.packages.map((name) => [name, installedVersion(name, distRoot)]));
  const manifest = { name: "perstack-engine", private: true, type: "module", dependencies };
  return [
    { path: `${ENGINE_CONTEXT_DIR}/package.json`, content: `${JSON.stringify(manifest, null, 2)}\n` },
    ...closure.files.map((path) => ({
      path: `${ENGINE_CONTEXT_DIR}/${path}`,
      content: readFileSync(join(distRoot, ...path.split("/")), "utf8"),
    })),
  ];
}

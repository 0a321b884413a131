// The built-in engine's files for the agent image: the compiled modules the engine and its base skill import
// (their relative import closure in dist/, nothing else of this package), a package.json pinning the npm
// packages they import to the versions installed here, and a package-lock.json cut from this package's lockfile
// for exactly those packages and what they depend on. `npm ci` in the image then installs the very versions this
// package was tested with, transitive ones included, and the image tag changes whenever any of them does.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, posix } from "node:path";
import { PerstackError } from "../errors.js";
import type { ContextFile } from "../plan/context-file.js";
import { PACKAGE_ROOT } from "../package-root.js";
import { GATEWAY_CONTEXT_DIR, GATEWAY_ENTRY } from "../plan/gateway-image.js";

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

/**
 * engine/package.json and engine/<dist-relative path> for each module of the closure. Other programs of this
 * package that run in an image of their own (the provider gateway) use the same with their entries and directory.
 */
export function engineContextFiles(
  distRoot: string = join(PACKAGE_ROOT, "dist"),
  entries: readonly string[] = ENGINE_ENTRIES,
  contextDir: string = ENGINE_CONTEXT_DIR,
): ContextFile[] {
  if (!existsSync(distRoot)) {
    throw new EngineNotBuiltError(`the built-in engine is not built: ${distRoot} is missing; run npm run build`);
  }
  const closure = engineClosure(distRoot, entries);
  const dependencies = Object.fromEntries(closure.packages.map((name) => [name, installedVersion(name, distRoot)]));
  const manifest = { name: ENGINE_PACKAGE_NAME, private: true, type: "module", dependencies };
  const lockPath = join(dirname(distRoot), "package-lock.json");
  if (!existsSync(lockPath)) throw new EngineNotBuiltError(`${lockPath} is missing; run npm install to create it`);
  const lock = engineLockfile(JSON.parse(readFileSync(lockPath, "utf8")) as Lockfile, dependencies);
  return [
    { path: `${contextDir}/package.json`, content: `${JSON.stringify(manifest, null, 2)}\n` },
    { path: `${contextDir}/package-lock.json`, content: `${JSON.stringify(lock, null, 2)}\n` },
    ...closure.files.map((path) => ({
      path: `${contextDir}/${path}`,
      content: readFileSync(join(distRoot, ...path.split("/")), "utf8"),
    })),
  ];
}

const ENGINE_PACKAGE_NAME = "perstack-engine";

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  dev?: boolean;
  devOptional?: boolean;
  [key: string]: unknown;
}

export interface Lockfile {
  lockfileVersion?: number;
  packages?: Record<string, LockEntry>;
}

/**
 * A lockfile (v2/v3) for a package whose dependencies are `dependencies` (exact versions): the entries of `lock`
 * those packages resolve to from the root, and everything they need, resolved the way Node does (the nearest
 * node_modules up the tree). Throws when a package is missing or at another version than installed.
 */
export function engineLockfile(lock: Lockfile, dependencies: Record<string, string>): Required<Lockfile> & { name: string; requires: true } {
  const packages = lock.packages;
  if (!packages || (lock.lockfileVersion ?? 0) < 2) {
    throw new EngineNotBuiltError("package-lock.json is not a lockfile v2 or v3; run npm install with npm 7 or newer");
  }
  const resolve = (name: string, from: string): string | undefined => {
    for (let base = from; ; ) {
      const candidate = `${base ? `${base}/` : ""}node_modules/${name}`;
      if (packages[candidate]) return candidate;
      if (!base) return undefined;
      const cut = base.lastIndexOf("/node_modules/");
      base = cut < 0 ? "" : base.slice(0, cut);
    }
  };
  const included = new Map<string, LockEntry>();
  const queue: string[] = [];
  for (const [name, version] of Object.entries(dependencies)) {
    const path = resolve(name, "");
    if (!path || packages[path]!.version !== version) {
      throw new EngineNotBuiltError(`package-lock.json does not hold ${name}@${version}; run npm install`);
    }
    queue.push(path);
  }
  while (queue.length > 0) {
    const path = queue.shift()!;
    if (included.has(path)) continue;
    const entry = packages[path]!;
    const { dev: _dev, devOptional: _devOptional, ...kept } = entry;
    included.set(path, kept);
    const optionalPeers = new Set(Object.entries(entry.peerDependenciesMeta ?? {}).filter(([, m]) => m.optional).map(([n]) => n));
    const wanted = [
      ...Object.keys(entry.dependencies ?? {}).map((name) => ({ name, required: true })),
      ...Object.keys(entry.optionalDependencies ?? {}).map((name) => ({ name, required: false })),
      ...Object.keys(entry.peerDependencies ?? {}).map((name) => ({ name, required: !optionalPeers.has(name) })),
    ];
    for (const { name, required } of wanted) {
      const target = resolve(name, path);
      if (target) queue.push(target);
      else if (required) throw new EngineNotBuiltError(`package-lock.json has no ${name} for ${path}; run npm install`);
    }
  }
  const sorted = [...included.keys()].sort();
  return {
    name: ENGINE_PACKAGE_NAME,
    lockfileVersion: 3,
    requires: true,
    packages: {
      "": { name: ENGINE_PACKAGE_NAME, dependencies },
      ...Object.fromEntries(sorted.map((path) => [path, included.get(path)!])),
    },
  };
}

/** The provider gateway's program for its image: its import closure and manifests, and the shipped price table. */
export function gatewayContextFiles(distRoot: string = join(PACKAGE_ROOT, "dist")): ContextFile[] {
  const prices = join(dirname(distRoot), "pricing", "prices.json");
  if (!existsSync(prices)) throw new EngineNotBuiltError(`${prices} is missing; reinstall the package`);
  return [
    ...engineContextFiles(distRoot, [GATEWAY_ENTRY], GATEWAY_CONTEXT_DIR),
    { path: `${GATEWAY_CONTEXT_DIR}/pricing/prices.json`, content: readFileSync(prices, "utf8") },
    compileCacheWarmer(GATEWAY_CONTEXT_DIR),
  ];
}

/**
 * The build-time script that fills Node's compile cache for a program (templates/files/warm-compile-cache.mjs),
 * placed in the program's directory of the build context.
 */
export function compileCacheWarmer(contextDir: string = ENGINE_CONTEXT_DIR, packageRoot: string = PACKAGE_ROOT): ContextFile {
  return { path: `${contextDir}/warm-compile-cache.mjs`, content: readFileSync(join(packageRoot, "templates", "files", "warm-compile-cache.mjs"), "utf8") };
}

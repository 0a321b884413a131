// PURE: which paths inside the workspace define the sandbox of the NEXT run, so the agent must not change them:
// the perstack.toml in use, the envPath files it names (.env, .env.local by default, whether they exist yet or
// not), any perstack.toml the agent could plant closer to where perstack was started (the walk up from the current
// directory would find it first), and the perstack/ directory the collector writes.
import { isAbsolute, join, posix, relative, resolve, sep } from "node:path";

export interface PolicyPaths {
  /** Files, relative to the workspace (posix separators): never changed by the agent; its versions are kept aside. */
  files: string[];
  /** Directories, relative to the workspace: nothing under them is ever changed by the agent. */
  trees: string[];
}

export interface PolicyInput {
  workspace: string;
  /** Directory perstack was started in: the walk up for perstack.toml begins here. */
  cwd: string;
  configPath: string;
  /** --config was given: the next run names the file again, so no walk up can find another one. */
  configExplicit: boolean;
  /** envPath entries as written in perstack.toml, relative to the config's directory. */
  envPath: readonly string[];
  perstackDir: string;
}

/** `path` relative to `root` with posix separators, or undefined when it is `root` itself or outside it. */
export function insideRoot(root: string, path: string): string | undefined {
  const rel = relative(resolve(root), resolve(path));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return rel.split(sep).join(posix.sep);
}

export function policyPaths(input: PolicyInput): PolicyPaths {
  const files = new Set<string>();
  const add = (path: string) => {
    const rel = insideRoot(input.workspace, path);
    if (rel !== undefined) files.add(rel);
  };
  add(input.configPath);
  const configDir = resolve(input.configPath, "..");
  for (const entry of input.envPath) add(resolve(configDir, entry));
  if (!input.configExplicit) {
    // Every directory from cwd up to the config's own: a perstack.toml there would win the next walk up.
    let dir = resolve(input.cwd);
    while (dir !== configDir && insideRoot(configDir, dir) !== undefined) {
      add(join(dir, "perstack.toml"));
      dir = resolve(dir, "..");
    }
  }
  const perstackTree = insideRoot(input.workspace, input.perstackDir);
  return { files: [...files].sort(), trees: perstackTree !== undefined ? [perstackTree] : [] };
}

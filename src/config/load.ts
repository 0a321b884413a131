// Reading perstack.toml: find it, parse it (smol-toml), validate it (zod). Every failure is one line naming file,
// key path or value. Delegates are checked when an expert is resolved (resolve.ts): like Perstack, a file whose one
// expert names a missing delegate still serves its other experts.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigNotFoundError, ConfigSchemaError, ConfigSyntaxError } from "../errors.js";
import { formatIssue, formatKeyPath, formatStrayKey, strayPathKey, type StrayKeys } from "./issue-path.js";
import { PERSTACK_ONLY_KEYS, perstackConfigSchema, type PerstackConfigFile } from "./schema.js";

export const CONFIG_FILE_NAME = "perstack.toml";

export interface LoadedConfig {
  /** Absolute path of the file read. */
  path: string;
  /** Directory of the file: relative paths in it (envPath) resolve from here. */
  dir: string;
  file: PerstackConfigFile;
  /** One line each: keys Perstack accepts that this project does not act on yet, stray keys dropped, keys moved. */
  warnings: string[];
  /** The same, about one expert's table: shown only when that expert takes part in the run. */
  expertWarnings: Record<string, string[]>;
}

/** Walks up from `startDir` to the first directory holding perstack.toml. */
export function findConfigFile(startDir: string): string | undefined {
  let dir = resolve(startDir);
  for (;;) {
    const candidate = join(dir, CONFIG_FILE_NAME);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export function loadConfig(options: { configPath?: string; cwd: string }): LoadedConfig {
  const path = options.configPath ? resolve(options.cwd, options.configPath) : findConfigFile(options.cwd);
  if (!path) {
    throw new ConfigNotFoundError(
      `no ${CONFIG_FILE_NAME} found in ${options.cwd} or any parent directory; create one (see perstack.toml.example) or pass --config <file>`,
    );
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigNotFoundError(
      code === "ENOENT" ? `${path}: file not found; check the --config path` : `${path}: cannot read (${code ?? error})`,
    );
  }
  return parseConfigText(text, path);
}

/** More passes than any document needs: each pass removes at least one stray key, or ends. */
const MAX_STRAY_PASSES = 32;

export function parseConfigText(text: string, path: string): LoadedConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "syntax error";
      throw new ConfigSyntaxError(`${path}:${error.line}:${error.column}: TOML syntax error: ${reason}`);
    }
    throw error;
  }
  const warnings: string[] = [];
  const expertWarnings: Record<string, string[]> = {};
  const warn = (path: ReadonlyArray<PropertyKey>, message: string) => {
    const expert = path[0] === "experts" && path.length > 1 ? String(path[1]) : undefined;
    if (expert === undefined) warnings.push(message);
    else (expertWarnings[expert] ??= []).push(message);
  };
  const doc = structuredClone(raw) as Record<string, unknown>;
  relocateProviderEnvPath(doc, warnings);
  // Perstack strips keys it does not know and its own files rely on it; here each stray key is dropped with a
  // warning, and kept in mind: a required key that turns out missing may be the stray one misspelt.
  const strays: StrayKeys = new Map();
  for (let pass = 0; ; pass++) {
    const parsed = perstackConfigSchema.safeParse(doc);
    if (parsed.success) {
      const file = parsed.data;
      notePerstackOnlyKeys(file, warn);
      return { path, dir: dirname(path), file, warnings, expertWarnings };
    }
    const unknown = parsed.error.issues.filter((issue) => issue.code === "unrecognized_keys");
    if (unknown.length === 0 || pass >= MAX_STRAY_PASSES) {
      const lines = parsed.error.issues.filter((issue) => issue.code !== "unrecognized_keys").map((issue) => formatIssue(issue, doc, strays));
      // Report the first problem on one line; the rest would usually follow from fixing it.
      const more = lines.length > 1 ? ` (and ${lines.length - 1} more problem${lines.length > 2 ? "s" : ""})` : "";
      throw new ConfigSchemaError(`${path}: ${lines[0] ?? "not a valid perstack.toml"}${more}`);
    }
    for (const issue of unknown) {
      const holder = valueAtPath(doc, issue.path);
      if (holder === null || typeof holder !== "object") continue;
      for (const key of issue.keys) {
        warn(issue.path, formatStrayKey(issue.path, key, doc));
        const at = strayPathKey(issue.path);
        strays.set(at, [...(strays.get(at) ?? []), key]);
        delete (holder as Record<string, unknown>)[key];
      }
    }
  }
}

/**
 * `envPath = [...]` written below `[provider]` lands in the provider table (TOML has no way back to the top level
 * after a table header). Perstack's own files do this; the intent is plain, so it is honoured, with a warning.
 */
function relocateProviderEnvPath(doc: Record<string, unknown>, warnings: string[]): void {
  const provider = doc.provider;
  if (provider === null || typeof provider !== "object" || !("envPath" in provider)) return;
  const table = provider as Record<string, unknown>;
  if (doc.envPath === undefined) {
    doc.envPath = table.envPath;
    warnings.push("provider.envPath: envPath belongs at the top level, above [provider] (a key written after a table header belongs to that table); honoured as the top-level envPath");
  } else {
    warnings.push("provider.envPath: ignored, because the top-level envPath is set; envPath belongs at the top level, above [provider]");
  }
  delete table.envPath;
}

function valueAtPath(doc: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node = doc;
  for (const segment of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[segment];
  }
  return node;
}

function notePerstackOnlyKeys(file: PerstackConfigFile, warn: (path: PropertyKey[], message: string) => void): void {
  const note = (keyPath: PropertyKey[]) =>
    warn(keyPath, `${formatKeyPath(keyPath)}: accepted for Perstack compatibility but not used by this version`);
  for (const key of PERSTACK_ONLY_KEYS.top) if (file[key] !== undefined) note([key]);
  const setting = (file.provider?.setting ?? {}) as Record<string, unknown>;
  for (const key of PERSTACK_ONLY_KEYS.setting) if (setting[key] !== undefined) note(["provider", "setting", key]);
  for (const [expertKey, expert] of Object.entries(file.experts ?? {})) {
    for (const key of PERSTACK_ONLY_KEYS.expert) if (expert[key] !== undefined) note(["experts", expertKey, key]);
    for (const [skillName, skill] of Object.entries(expert.skills ?? {})) {
      if (skill.type === "mcpStdioSkill" && skill.lazyInit !== undefined) {
        note(["experts", expertKey, "skills", skillName, "lazyInit"]);
      }
    }
  }
}

// Reading perstack.toml: find it, parse it (smol-toml), validate it (zod) and check what a schema cannot see
// (delegates naming experts). Every failure is one line naming file, key path or value.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigNotFoundError, ConfigSchemaError, ConfigSyntaxError } from "../errors.js";
import { formatIssue, formatKeyPath } from "./issue-path.js";
import { PERSTACK_ONLY_KEYS, perstackConfigSchema, type PerstackConfigFile } from "./schema.js";

export const CONFIG_FILE_NAME = "perstack.toml";

export interface LoadedConfig {
  /** Absolute path of the file read. */
  path: string;
  /** Directory of the file: relative paths in it (envPath) resolve from here. */
  dir: string;
  file: PerstackConfigFile;
  /** Keys Perstack accepts that this project does not act on yet, one line each. */
  warnings: string[];
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
  const parsed = perstackConfigSchema.safeParse(raw);
  if (!parsed.success) {
    // A misspelt key usually explains the "is required" that comes with it, so unknown keys are reported first.
    const issues = [...parsed.error.issues].sort(
      (a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"),
    );
    const lines = issues.map((issue) => formatIssue(issue, raw));
    // Report the first problem on one line; the rest would usually follow from fixing it.
    const more = lines.length > 1 ? ` (and ${lines.length - 1} more problem${lines.length > 2 ? "s" : ""})` : "";
    throw new ConfigSchemaError(`${path}: ${lines[0]}${more}`);
  }
  const file = parsed.data;
  checkDelegates(file, path);
  return { path, dir: dirname(path), file, warnings: collectWarnings(file) };
}

function checkDelegates(file: PerstackConfigFile, path: string): void {
  const experts = file.experts ?? {};
  const keys = Object.keys(experts);
  for (const [key, expert] of Object.entries(experts)) {
    (expert.delegates ?? []).forEach((delegate, i) => {
      if (!(delegate in experts)) {
        const where = formatKeyPath(["experts", key, "delegates", i]);
        throw new ConfigSchemaError(
          `${path}: ${where}: "${delegate}" names no expert; define [experts."${delegate}"] or use one of: ${keys.join(", ")}`,
        );
      }
      if (delegate === key) {
        const where = formatKeyPath(["experts", key, "delegates", i]);
        throw new ConfigSchemaError(`${path}: ${where}: an expert cannot delegate to itself; remove "${delegate}"`);
      }
    });
  }
}

function collectWarnings(file: PerstackConfigFile): string[] {
  const warnings: string[] = [];
  const note = (keyPath: PropertyKey[]) =>
    warnings.push(`${formatKeyPath(keyPath)}: accepted for Perstack compatibility but not used by this version`);
  for (const key of PERSTACK_ONLY_KEYS.top) if (file[key] !== undefined) note([key]);
  for (const [expertKey, expert] of Object.entries(file.experts ?? {})) {
    for (const key of PERSTACK_ONLY_KEYS.expert) if (expert[key] !== undefined) note(["experts", expertKey, key]);
    for (const [skillName, skill] of Object.entries(expert.skills ?? {})) {
      if (skill.type === "mcpStdioSkill" && skill.lazyInit !== undefined) {
        note(["experts", expertKey, "skills", skillName, "lazyInit"]);
      }
    }
  }
  return warnings;
}

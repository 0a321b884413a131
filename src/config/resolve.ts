// Resolving what a run uses from the validated file: the runtime (flag > file > default), the expert and every
// expert reachable from it through delegates, and the environment values (process env > envPath files).
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { ConfigSchemaError, UnknownExpertError, UnknownRuntimeError } from "../errors.js";
import { closestKey, formatKeyPath } from "./issue-path.js";
import type { LoadedConfig } from "./load.js";
import { DEFAULTS, RUNTIME_NAMES, type ExpertConfig, type RuntimeName } from "./schema.js";

export interface RuntimeChoice {
  name: RuntimeName;
  /** Where the choice came from, for --dry-run output and messages. */
  source: "flag" | "config" | "default";
}

export function resolveRuntime(flag: string | undefined, fromConfig: string | undefined): RuntimeChoice {
  const pick = (value: string, source: RuntimeChoice["source"], where: string): RuntimeChoice => {
    if ((RUNTIME_NAMES as readonly string[]).includes(value)) return { name: value as RuntimeName, source };
    const suggestion = closestKey(value, RUNTIME_NAMES);
    throw new UnknownRuntimeError(
      `${where} "${value}" is not a runtime${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; valid runtimes: ${RUNTIME_NAMES.join(", ")}`,
    );
  };
  if (flag !== undefined) return pick(flag, "flag", "--runtime");
  if (fromConfig !== undefined) return pick(fromConfig, "config", "runtime in perstack.toml:");
  return { name: DEFAULTS.runtime, source: "default" };
}

export interface ResolvedExpert {
  key: string;
  config: ExpertConfig;
}

export function findExpert(loaded: LoadedConfig, key: string): ResolvedExpert {
  const experts = loaded.file.experts ?? {};
  const config = experts[key];
  if (!config) {
    const keys = Object.keys(experts);
    const suggestion = closestKey(key, keys);
    throw new UnknownExpertError(
      keys.length === 0
        ? `expert "${key}" not found: ${loaded.path} defines no experts; add an [experts."${key}"] table`
        : `expert "${key}" not found in ${loaded.path}${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; defined experts: ${keys.join(", ")}`,
    );
  }
  return { key, config };
}

/**
 * The expert and every expert reachable through delegates, breadth-first, each once. A delegate that names no
 * expert, or the expert itself, is an error of the file, named by its key path.
 */
export function reachableExperts(loaded: LoadedConfig, rootKey: string): ResolvedExpert[] {
  const experts = loaded.file.experts ?? {};
  const out: ResolvedExpert[] = [];
  const seen = new Set<string>();
  const queue = [rootKey];
  while (queue.length > 0) {
    const key = queue.shift()!;
    if (seen.has(key)) continue;
    seen.add(key);
    const expert = findExpert(loaded, key);
    out.push(expert);
    (expert.config.delegates ?? []).forEach((delegate, i) => {
      const where = formatKeyPath(["experts", key, "delegates", i]);
      if (delegate === key) {
        throw new ConfigSchemaError(`${loaded.path}: ${where}: an expert cannot delegate to itself; remove "${delegate}"`);
      }
      if (!(delegate in experts)) {
        const suggestion = closestKey(delegate, Object.keys(experts));
        throw new ConfigSchemaError(
          `${loaded.path}: ${where}: "${delegate}" names no expert${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; define [experts."${delegate}"] or use one of: ${Object.keys(experts).join(", ")}`,
        );
      }
      queue.push(delegate);
    });
  }
  return out;
}

/**
 * Values from the envPath files (later files override earlier ones), overridden by the process environment.
 * Only looked up by name later: nothing here is passed on wholesale.
 */
export function readEnvSources(loaded: LoadedConfig, processEnv: NodeJS.ProcessEnv): Map<string, string> {
  const values = new Map<string, string>();
  for (const relative of loaded.file.envPath ?? DEFAULTS.envPath) {
    const path = resolve(loaded.dir, relative);
    if (!existsSync(path)) continue;
    let parsed: NodeJS.Dict<string>;
    try {
      parsed = parseEnv(readFileSync(path, "utf8"));
    } catch (error) {
      throw new ConfigSchemaError(`${path}: cannot read env file (${(error as Error).message}); fix or remove it`);
    }
    for (const [name, value] of Object.entries(parsed)) if (value !== undefined) values.set(name, value);
  }
  for (const [name, value] of Object.entries(processEnv)) if (value !== undefined) values.set(name, value);
  return values;
}

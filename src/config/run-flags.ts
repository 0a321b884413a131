// Perstack's run flags that override perstack.toml: the flag, then the file, then the default (schema.ts DEFAULTS).
// Applied to the loaded file once, so every later stage (plan, runtimes, job records) sees one set of settings.
import { isAbsolute, resolve } from "node:path";
import { InvalidOptionError } from "../errors.js";
import { closestKey } from "./issue-path.js";
import type { LoadedConfig } from "./load.js";
import { PROVIDER_NAMES, type PerstackConfigFile, type ProviderConfig, type ProviderName } from "./schema.js";

export interface RunFlagOverrides {
  provider?: string;
  reasoningBudget?: string | number;
  maxSteps?: number;
  maxRetries?: number;
  /** Milliseconds per generation. */
  timeout?: number;
  /** --env-path, relative to the directory the command runs in (as a user typing it expects). */
  envPath?: string[];
}

export const REASONING_LEVELS = ["none", "minimal", "low", "medium", "high"] as const;

/** --reasoning-budget: a level or a token count, as reasoningBudget in perstack.toml. */
export function parseReasoningBudget(value: string): string | number {
  const trimmed = value.trim();
  if ((REASONING_LEVELS as readonly string[]).includes(trimmed)) return trimmed;
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  throw new InvalidOptionError(`--reasoning-budget "${value}": give one of ${REASONING_LEVELS.join(", ")} or a token count like 8000`);
}

export function parseProviderName(value: string): ProviderName {
  if ((PROVIDER_NAMES as readonly string[]).includes(value)) return value as ProviderName;
  const suggestion = closestKey(value, PROVIDER_NAMES);
  throw new InvalidOptionError(
    `--provider "${value}" is not a provider${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; one of ${PROVIDER_NAMES.join(", ")}`,
  );
}

/** The loaded config with the flags applied, and a warning for each setting of the file a flag made unusable. */
export function applyRunFlags(loaded: LoadedConfig, flags: RunFlagOverrides, cwd: string): { loaded: LoadedConfig; warnings: string[] } {
  const warnings: string[] = [];
  const file: PerstackConfigFile = { ...loaded.file };
  if (flags.provider !== undefined) {
    const name = parseProviderName(flags.provider);
    const current = loaded.file.provider;
    if (current?.providerName !== name) {
      // The file's [provider.setting] belongs to its own provider (a baseUrl, a region): not carried over.
      if (current?.setting && Object.keys(current.setting).length > 0) {
        warnings.push(`--provider ${name}: [provider.setting] in ${loaded.path} belongs to provider ${current.providerName} and is not used`);
      }
      file.provider = { providerName: name } as ProviderConfig;
    }
  }
  if (flags.reasoningBudget !== undefined) file.reasoningBudget = flags.reasoningBudget as PerstackConfigFile["reasoningBudget"];
  if (flags.maxSteps !== undefined) file.maxSteps = flags.maxSteps;
  if (flags.maxRetries !== undefined) file.maxRetries = flags.maxRetries;
  if (flags.timeout !== undefined) file.timeout = flags.timeout;
  // The file's envPath is relative to the file; the flag's to where the command runs. Both end up absolute-safe.
  if (flags.envPath !== undefined && flags.envPath.length > 0) file.envPath = flags.envPath.map((p) => (isAbsolute(p) ? p : resolve(cwd, p)));
  return { loaded: { ...loaded, file }, warnings };
}

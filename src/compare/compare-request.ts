// PURE: what `perstack compare` was asked, checked, and what each runtime's runs are given. The same Expert, query,
// skills, env names, limits and budgets go to every runtime; only what a runtime cannot take differs, and says so:
// a CLI that talks to one vendor gets that vendor's provider when perstack.toml names another, and its own default
// model when the file's (or --model's) belongs to another vendor. `--model runtime=model,...` chooses per runtime.
import { RUNTIME_NAMES, type ProviderName, type RuntimeName } from "../config/schema.js";
import { InvalidOptionError } from "../errors.js";
import { modelVendor } from "../runtimes/model-vendor.js";
import { runtimeAdapter } from "../runtimes/registry.js";
import { closestKey } from "../text/did-you-mean.js";

export const MAX_REPEAT = 20;
export const MAX_CONCURRENCY = 16;

/** `--runtimes a,b,c`: known names, each once, in the order given. */
export function parseRuntimes(value: string): string[] {
  const names = value.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (names.length === 0) throw new InvalidOptionError("--runtimes: name at least one runtime, e.g. --runtimes perstack,claude-code,gemini,codex");
  const seen = new Set<string>();
  for (const name of names) {
    if (!(RUNTIME_NAMES as readonly string[]).includes(name)) {
      const guess = closestKey(name, RUNTIME_NAMES);
      throw new InvalidOptionError(`--runtimes: "${name}" is not a runtime;${guess ? ` did you mean ${guess}?` : ""} choose from ${RUNTIME_NAMES.join(", ")}`);
    }
    // local and docker are perstack: the same runtime twice would only be compared with itself.
    const canonical = runtimeAdapter(name as RuntimeName).name;
    if (seen.has(canonical)) throw new InvalidOptionError(`--runtimes: ${name === canonical ? name : `${name} (${canonical})`} is named twice; use --repeat to run a runtime more than once`);
    seen.add(canonical);
  }
  return [...seen];
}

/** `--model m` or `--model runtime=m,runtime=m`. */
export function parseModels(value: string | undefined, runtimes: readonly string[]): { model?: string; perRuntime: Record<string, string> } {
  if (value === undefined) return { perRuntime: {} };
  if (!value.includes("=")) return { model: value.trim(), perRuntime: {} };
  const perRuntime: Record<string, string> = {};
  for (const pair of value.split(",")) {
    const [rawRuntime, ...rest] = pair.split("=");
    const runtime = rawRuntime!.trim();
    const model = rest.join("=").trim();
    if (!runtime || !model) throw new InvalidOptionError(`--model "${pair}": give runtime=model pairs, e.g. --model claude-code=claude-sonnet-4-5,gemini=gemini-2.5-pro`);
    const canonical = (RUNTIME_NAMES as readonly string[]).includes(runtime) ? runtimeAdapter(runtime as RuntimeName).name : runtime;
    if (!runtimes.includes(canonical)) throw new InvalidOptionError(`--model ${runtime}=${model}: ${runtime} is not among --runtimes (${runtimes.join(", ")})`);
    perRuntime[canonical] = model;
  }
  return { perRuntime };
}

export function checkCounts(repeat: number, concurrency: number | undefined, runs: number): { repeat: number; concurrency: number } {
  if (repeat > MAX_REPEAT) throw new InvalidOptionError(`--repeat ${repeat}: at most ${MAX_REPEAT}`);
  const chosen = concurrency ?? Math.min(4, runs);
  if (chosen > MAX_CONCURRENCY) throw new InvalidOptionError(`--concurrency ${chosen}: at most ${MAX_CONCURRENCY} runs at once`);
  return { repeat, concurrency: chosen };
}

export interface RuntimeChoice {
  runtime: string;
  /** --provider for this runtime's runs, when perstack.toml's cannot be used by it. */
  provider?: string;
  model?: string;
  /** Why this runtime's runs differ from the others' (shown in the report). */
  notes: string[];
}

/**
 * The provider and model one runtime's runs use. `fileProvider` and `fileModel` are perstack.toml's after the
 * run flags; undefined means the runtime's default.
 */
export function runtimeChoice(runtime: string, options: { fileProvider?: ProviderName; fileModel?: string; model?: string; perRuntime: Record<string, string> }): RuntimeChoice {
  const adapter = runtimeAdapter(runtime as RuntimeName);
  const notes: string[] = [];
  let provider: string | undefined;
  if (options.fileProvider && !adapter.ownService && !(adapter.providers as readonly string[]).includes(options.fileProvider)) {
    provider = adapter.defaultProvider;
    notes.push(`${runtime} cannot use provider ${options.fileProvider}, so its runs use ${adapter.defaultProvider}`);
  }
  const explicit = options.perRuntime[adapter.name];
  if (explicit !== undefined) return { runtime: adapter.name, ...(provider ? { provider } : {}), model: explicit, notes };
  const model = options.model ?? options.fileModel;
  if (model === undefined) return { runtime: adapter.name, ...(provider ? { provider } : {}), notes };
  const vendor = modelVendor(model);
  // A model no vendor table places belongs to the file's provider: fine unless that provider was replaced.
  const fits = vendor ? adapter.modelVendors.includes(vendor) : provider === undefined;
  if (fits) return { runtime: adapter.name, ...(provider ? { provider } : {}), model, notes };
  notes.push(`${runtime} cannot run ${model}, so its runs use its default model ${adapter.defaultModel} (choose with --model ${adapter.name}=<model>)`);
  return { runtime: adapter.name, ...(provider ? { provider } : {}), model: adapter.defaultModel, notes };
}

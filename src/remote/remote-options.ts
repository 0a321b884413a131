// PURE: what `perstack run` and `perstack compare` flags mean with --server. Those the server's API has a field for
// map to it; those that only make sense on this machine are refused, one line naming the flag and what to do instead.
import { InvalidOptionError } from "../errors.js";
import type { CompareOptions } from "../cli/compare-command.js";
import type { RunOptions } from "../cli/run-options.js";
import type { RunSubmission } from "./server-client.js";

type Refusal = readonly [option: keyof CompareOptions, flag: string, instead: string];

const IN_PERSTACK_TOML = "set it in perstack.toml, which is sent to the server";

/** Flags of both commands that have no meaning for a server's run. */
const LOCAL_ONLY: readonly Refusal[] = [
  ["env", "--env", "a server's runs see the tenant's secrets only (perstack tenants secret set)"],
  ["envPath", "--env-path", "env files are never sent to a server; its runs use the tenant's secrets (perstack tenants secret set)"],
  ["caCert", "--ca-cert", "images are built on the server, with its own CA certificates"],
  ["dryRun", "--dry-run", "the sandbox is planned on the server; try the plan here without --server"],
  ["cpus", "--cpus", "the server sets CPU limits; it takes --memory, --max-duration and --max-output"],
  ["pidsLimit", "--pids-limit", "the server sets process limits; it takes --memory, --max-duration and --max-output"],
  ["user", "--user", "the server decides who the agent runs as"],
  ["workspaceMode", "--workspace-mode", "the server decides how its sandbox gets the workspace; yours gets the run's changes once it ends"],
  ["pricing", "--pricing", "the server prices runs with its own price table"],
  ["provider", "--provider", IN_PERSTACK_TOML],
  ["reasoningBudget", "--reasoning-budget", IN_PERSTACK_TOML],
  ["maxSteps", "--max-steps", IN_PERSTACK_TOML],
  ["maxRetries", "--max-retries", IN_PERSTACK_TOML],
  ["timeout", "--timeout", IN_PERSTACK_TOML],
];

const RUN_ONLY_HERE: readonly Refusal[] = [
  ["jobId", "--job-id", "the server names its jobs (the id is printed as the run starts)"],
  ["continue", "--continue", "name the job: --continue-job <jobId> (perstack jobs --server lists them)"],
];

/** A comparison on a server is one run per runtime, with no limits or budgets of its own (POST /v1/comparisons). */
const COMPARE_ONLY_HERE: readonly Refusal[] = [
  ["from", "--from", "a server builds comparisons from the runs it makes; run --from here, on jobs recorded here"],
  ["check", "--check", "a server's comparison runs no checks; run it here to check each workspace"],
  ["concurrency", "--concurrency", "the server starts runs as its slots allow"],
  ["memory", "--memory", "a server's comparison takes no limits"],
  ["maxDuration", "--max-duration", "a server's comparison takes no limits"],
  ["maxOutput", "--max-output", "a server's comparison takes no limits"],
  ["maxCost", "--max-cost", "a server's comparison takes no budgets; the tenant's daily budget applies"],
  ["maxTokens", "--max-tokens", "a server's comparison takes no budgets"],
  ["copyLimit", "--copy-limit", "a server's comparison does not change your workspace"],
];

function given(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  return value !== undefined && value !== false;
}

function refuseGiven(options: Partial<CompareOptions>, refusals: readonly Refusal[]): void {
  for (const [option, flag, instead] of refusals) {
    if (given(options[option])) throw new InvalidOptionError(`${flag} does not go with --server: ${instead}`);
  }
}

/** Refuses what a server's run cannot do; the fields of POST /v1/runs the rest maps to (config and query aside). */
export function remoteRunFields(options: RunOptions): Pick<RunSubmission, "runtime" | "model" | "limits" | "budgets"> {
  refuseGiven(options, [...LOCAL_ONLY, ...RUN_ONLY_HERE]);
  const limits = {
    ...(options.maxDuration !== undefined ? { maxDurationMs: options.maxDuration } : {}),
    ...(options.maxOutput !== undefined ? { maxOutputBytes: options.maxOutput } : {}),
    ...(options.memory !== undefined ? { memoryBytes: options.memory } : {}),
  };
  const budgets = {
    ...(options.maxCost !== undefined ? { maxCostUsd: options.maxCost } : {}),
    ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
  };
  return {
    ...(options.runtime !== undefined ? { runtime: options.runtime } : {}),
    ...(options.model !== undefined ? { model: options.model } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(Object.keys(budgets).length > 0 ? { budgets } : {}),
  };
}

/**
 * A continuation's body (POST /v1/runs/{jobId}/continue): the new query, or -i's answer, and --resume-from's
 * checkpoint. The server continues a job with the config and limits it was submitted with: flags that would change
 * them are refused, not silently dropped (--config still says which perstack.toml here the agent may not change).
 */
export function remoteContinueBody(options: RunOptions, query: string | undefined): { query?: string; interactiveAnswer?: string; checkpointId?: string } {
  refuseGiven(options, [...LOCAL_ONLY, ...RUN_ONLY_HERE]);
  const changes: readonly Refusal[] = [
    ["runtime", "--runtime", "a continued job stays on the runtime it ran on"],
    ["model", "--model", "a job on a server is continued with the model it was submitted with"],
    ["memory", "--memory", "a job on a server is continued with the limits it was submitted with"],
    ["maxDuration", "--max-duration", "a job on a server is continued with the limits it was submitted with"],
    ["maxOutput", "--max-output", "a job on a server is continued with the limits it was submitted with"],
    ["maxCost", "--max-cost", "a job on a server is continued with the budgets it was submitted with"],
    ["maxTokens", "--max-tokens", "a job on a server is continued with the budgets it was submitted with"],
  ];
  refuseGiven(options, changes);
  if (query === undefined) {
    throw new InvalidOptionError(`--resume-from with --server needs a query: perstack run <expert> --continue-job ${options.continueJob ?? "<jobId>"} --resume-from <checkpointId> "<query>"`);
  }
  return {
    ...(options.interactiveToolCallResult ? { interactiveAnswer: query } : { query }),
    ...(options.resumeFrom !== undefined ? { checkpointId: options.resumeFrom } : {}),
  };
}

/** Refuses what a server's comparison cannot do; the model it runs every runtime with, if one was given. */
export function remoteCompareFields(options: CompareOptions): { model?: string } {
  refuseGiven(options, [...LOCAL_ONLY, ...COMPARE_ONLY_HERE]);
  if (options.repeat > 1) throw new InvalidOptionError("--repeat does not go with --server: a server's comparison runs each runtime once");
  if (options.model !== undefined && options.model.includes("=")) {
    throw new InvalidOptionError("--model runtime=model pairs do not go with --server: a server's comparison takes one model for every runtime");
  }
  return options.model !== undefined ? { model: options.model } : {};
}

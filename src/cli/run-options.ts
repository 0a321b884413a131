// The options `perstack run`, `export` and `compare` share, their parsers, and the RunRequest they make. Commander
// wiring only: what the values mean is decided in src/job and src/config.
import { InvalidArgumentError, Option, type Command } from "commander";
import { parseReasoningBudget, REASONING_LEVELS } from "../config/run-flags.js";
import type { RunRequest } from "../job/prepare-run.js";
import type { ResourceLimits } from "../plan/sandbox-plan.js";
import type { ServerFlags } from "../remote/server-target.js";

export const collect = (value: string, previous: string[]) => [...previous, value];

export function parseBytes(value: string): number {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)b?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError("give a size like 512m or 4g");
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Math.round(Number(match[1]) * unit);
}

export function parseCpus(value: string): number {
  const cpus = Number(value);
  if (!Number.isFinite(cpus) || cpus <= 0) throw new InvalidArgumentError("give a positive number of CPUs, e.g. 1.5");
  return Math.round(cpus * 1e9);
}

export function parseDuration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError("give a duration like 90s, 30m or 2h");
  return Math.round(Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as "s" | "m" | "h"]);
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("give a positive whole number");
  return n;
}

export function parseUsd(value: string): number {
  const usd = Number(value.trim().replace(/^\$/, ""));
  if (!Number.isFinite(usd) || usd <= 0) throw new InvalidArgumentError("give an amount in US dollars, e.g. 0.50");
  return usd;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("give a whole number, 0 or more");
  return n;
}

export function parseReasoningBudgetFlag(value: string): string | number {
  try {
    return parseReasoningBudget(value);
  } catch {
    throw new InvalidArgumentError(`give one of ${REASONING_LEVELS.join(", ")} or a token count like 8000`);
  }
}

export function parseUser(value: string): { uid: number; gid: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(value);
  if (!match) throw new InvalidArgumentError("give UID or UID:GID, e.g. 1000:1000");
  return { uid: Number(match[1]), gid: Number(match[2] ?? match[1]) };
}

/** `server`, `token`, `allowHttp`: --server and its options (run and compare; see server-options.ts). */
export interface RunOptions extends ServerFlags {
  runtime?: string;
  config?: string;
  model?: string;
  workspace?: string;
  env: string[];
  caCert: string[];
  memory?: number;
  cpus?: number;
  pidsLimit?: number;
  maxDuration?: number;
  user?: { uid: number; gid: number };
  workspaceMode?: "auto" | "bind" | "copy";
  maxOutput?: number;
  copyLimit?: number;
  provider?: string;
  reasoningBudget?: string | number;
  maxSteps?: number;
  maxRetries?: number;
  timeout?: number;
  envPath: string[];
  jobId?: string;
  maxCost?: number;
  maxTokens?: number;
  pricing?: string;
  dryRun?: boolean;
  json?: boolean;
  continue?: boolean;
  continueJob?: string;
  resumeFrom?: string;
  interactiveToolCallResult?: boolean;
}


export function runRequest(expertKey: string, query: string, options: RunOptions): RunRequest {
  const limits: Partial<ResourceLimits> = {
    ...(options.memory ? { memoryBytes: options.memory } : {}),
    ...(options.cpus ? { nanoCpus: options.cpus } : {}),
    ...(options.pidsLimit ? { pidsLimit: options.pidsLimit } : {}),
    ...(options.maxDuration ? { maxDurationMs: options.maxDuration } : {}),
    ...(options.maxOutput ? { maxOutputBytes: options.maxOutput } : {}),
    ...(options.copyLimit ? { maxCopyBytes: options.copyLimit } : {}),
  };
  return {
    expertKey,
    query,
    cwd: process.cwd(),
    ...(options.config ? { configPath: options.config } : {}),
    ...(options.runtime ? { runtime: options.runtime } : {}),
    ...(options.model ? { model: options.model } : {}),
    ...(options.workspace ? { workspace: options.workspace } : {}),
    envNames: options.env,
    caCertFiles: options.caCert,
    limits,
    ...(options.maxCost !== undefined || options.maxTokens !== undefined
      ? { budgets: { ...(options.maxCost !== undefined ? { maxCostUsd: options.maxCost } : {}), ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}) } }
      : {}),
    ...(options.pricing !== undefined ? { pricingPath: options.pricing } : {}),
    flags: {
      ...(options.provider !== undefined ? { provider: options.provider } : {}),
      ...(options.reasoningBudget !== undefined ? { reasoningBudget: options.reasoningBudget } : {}),
      ...(options.maxSteps !== undefined ? { maxSteps: options.maxSteps } : {}),
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
      ...(options.envPath.length > 0 ? { envPath: options.envPath } : {}),
    },
    ...(options.user ? { user: options.user } : {}),
    ...(options.workspaceMode ? { workspaceMode: options.workspaceMode } : {}),
    processEnv: process.env,
  };
}

export function addRunOptions(command: Command): Command {
  return command
    .option("--runtime <name>", "perstack (also local, docker) | claude-code | gemini | codex | cursor (beats runtime in perstack.toml)")
    .option("--config <file>", "perstack.toml to use (default: found by walking up from the current directory)")
    .option("--provider <name>", "provider: anthropic, openai, google, azure-openai, amazon-bedrock, google-vertex, deepseek, ollama (beats [provider] in perstack.toml)")
    .option("--model <model>", "model name (beats model in perstack.toml)")
    .addOption(new Option("--reasoning-budget <budget>", "none, minimal, low, medium, high or a token count (beats reasoningBudget)").argParser(parseReasoningBudgetFlag))
    .addOption(new Option("--max-steps <n>", "most steps the job may take (beats maxSteps; default 100)").argParser(parsePositiveInt))
    .addOption(new Option("--max-retries <n>", "retries of a failed generation (beats maxRetries; default 5)").argParser(parseNonNegativeInt))
    .addOption(new Option("--timeout <ms>", "milliseconds per generation (beats timeout; default 300000)").argParser(parsePositiveInt))
    .option("--env-path <file>", "env file to read variable values from, relative to here (repeatable; beats envPath; default .env and .env.local next to perstack.toml)", collect, [])
    .option("--workspace <dir>", "directory mounted at /workspace (default: the current directory)")
    .option("--env <NAME>", "pass this host variable into the sandbox (repeatable)", collect, [])
    .option("--ca-cert <file>", "PEM CA certificate image builds trust (repeatable; default: $PERSTACK_EXTRA_CA_CERTS, then $NODE_EXTRA_CA_CERTS)", collect, [])
    .addOption(new Option("--memory <size>", "agent memory limit, e.g. 4g (default 4g)").argParser(parseBytes))
    .addOption(new Option("--cpus <n>", "agent CPU limit (default 2)").argParser(parseCpus))
    .addOption(new Option("--pids-limit <n>", "agent process limit (default 512)").argParser(parsePositiveInt))
    .addOption(new Option("--max-duration <time>", "stop the agent after this long, e.g. 30m (default 60m)").argParser(parseDuration))
    .addOption(new Option("--user <uid[:gid]>", "uid:gid the agent runs as (default: yours, or 1000 when you are root)").argParser(parseUser))
    .addOption(
      new Option("--workspace-mode <mode>", "bind: mount the workspace; copy: copy it in and the agent's changes back; auto (default): bind when the agent's uid can write it, else copy").choices(["auto", "bind", "copy"]),
    )
    .addOption(new Option("--max-output <size>", "stop the run when the agent's output passes this size, e.g. 200m (default 1g)").argParser(parseBytes))
    .addOption(new Option("--max-cost <usd>", "stop the run once its model calls cost this much (metered by the provider gateway), e.g. 0.50").argParser(parseUsd))
    .option("--pricing <file>", "price table for metered costs instead of the shipped pricing/prices.json (same format)")
    .addOption(new Option("--max-tokens <n>", "stop the run once its model calls used this many input + output tokens").argParser(parsePositiveInt))
    .addOption(new Option("--copy-limit <size>", "copy mode: the most the workspace, and the agent's copy of it, may hold (default 8g)").argParser(parseBytes));
}


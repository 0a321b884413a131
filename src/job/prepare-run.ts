// Everything a run needs decided before anything is built or started: the config, the runtime, the values of
// the variables it passes in (a missing one fails here), the CA bundle, ids, and the SandboxPlan.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { caCertFiles, readCaBundle } from "../config/ca-certs.js";
import { engineSharingFromEnv, type EngineSharing } from "../config/engine-env.js";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { readEnvSources, resolveRuntime } from "../config/resolve.js";
import { applyRunFlags, type RunFlagOverrides } from "../config/run-flags.js";
import { InvalidOptionError, MissingEnvError } from "../errors.js";
import { isSafeId, newId } from "../model/ids.js";
import { loadPriceTable } from "../gateway/pricing.js";
import { GOOGLE_CREDENTIALS_ENV } from "../gateway/gateway-config.js";
import { providerSettingEnvNames } from "../engine/provider-env.js";
import { readGoogleCredentials } from "./google-credentials.js";
import { perstackStorageDir } from "../storage/storage-dir.js";
import {
  buildSandboxPlan,
  DEFAULT_LIMITS,
  type BaseImage,
  type BaseImageRole,
  type ResourceLimits,
  type SandboxPlan,
  type WorkspaceMode,
} from "../plan/sandbox-plan.js";
import { policyPaths } from "../plan/policy-files.js";
import { DEFAULTS } from "../config/schema.js";
import { runtimeAdapter } from "../runtimes/registry.js";
import type { RuntimeAdapter } from "../runtimes/types.js";
import type { Continuation } from "./continuation.js";

export interface RunRequest {
  expertKey: string;
  query: string;
  cwd: string;
  configPath?: string;
  runtime?: string;
  model?: string;
  workspace?: string;
  envNames: string[];
  caCertFiles: string[];
  limits?: Partial<ResourceLimits>;
  user?: { uid: number; gid: number };
  /** --workspace-mode; default auto: bind when the agent's uid can write the workspace, else copy. */
  workspaceMode?: "auto" | WorkspaceMode;
  processEnv: NodeJS.ProcessEnv;
  /** Perstack's run flags that beat perstack.toml (--provider, --max-steps, --env-path, ...). */
  flags?: RunFlagOverrides;
  /** --max-cost / --max-tokens, enforced by the provider gateway. */
  budgets?: { maxCostUsd?: number; maxTokens?: number };
  /** --pricing <file>: a price table instead of the shipped one (relative to cwd). */
  pricingPath?: string;
  /** --job-id: the id of the new job, instead of a generated one. */
  jobId?: string;
  /** perstack serve: the gateway refuses non-public upstream addresses but these host[:port] (sandbox-plan.ts). */
  upstreamPolicy?: { allow: string[] };
  /**
   * What a variable the run needs but cannot find does: "require" (a run: bad input), "warn" (--dry-run: the plan
   * is still printed, with the names only) or "skip" (export: only names are written). Default "require".
   */
  secrets?: "require" | "warn" | "skip";
  /**
   * --continue / --continue-job / --resume-from, already read from disk (job/load-continuation.ts): the run
   * records into that job, on its runtime, starting from its checkpoint.
   */
  continuation?: Continuation;
}

export interface PreparedRun {
  loaded: LoadedConfig;
  adapter: RuntimeAdapter;
  plan: SandboxPlan;
  /** Values for the plan's host-sourced variables. Never printed. */
  envValues: Record<string, string>;
  /** The gateway container's secrets: the real provider credentials and the run's token. Never printed. */
  gatewayEnv: Record<string, string>;
  /** --pricing, absolute: the table the run is priced with (else the shipped one). */
  pricingPath?: string;
  perstackDir: string;
  workspace: string;
  /** Owner of the workspace directory: files the agent creates in copy mode are given to it. */
  workspaceOwner: { uid: number; gid: number };
  warnings: string[];
  continuation?: Continuation;
  /** PERSTACK_SUBNET_POOL and PERSTACK_MAX_CONCURRENT_RUNS: how this run shares the engine with others. */
  sharing: EngineSharing;
}

/** Where runs started in `cwd` record their jobs: ./perstack, or $PERSTACK_STORAGE_PATH as in Perstack. */
export function perstackDirOf(cwd: string, env: NodeJS.ProcessEnv = {}): string {
  return perstackStorageDir(cwd, env);
}

/** Ids of jobs, runs, events and checkpoints: model/ids.ts. */
export { newId };

/** --job-id: a new job's id must be usable as a directory name and must not be taken. */
function newJobId(jobId: string, perstackDir: string): string {
  if (!isSafeId(jobId)) {
    throw new InvalidOptionError(`--job-id "${jobId}": use 1 to 128 letters, digits, '-' and '_', starting with a letter or digit`);
  }
  if (existsSync(join(perstackDir, "jobs", jobId))) {
    throw new InvalidOptionError(`--job-id ${jobId}: that job already exists in ${join(perstackDir, "jobs")}; continue it with --continue-job ${jobId}, or choose another id`);
  }
  return jobId;
}

/** The host user when not root (files the agent writes stay the user's), else the image's uid 1000. */
export function defaultAgentUser(): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  return uid === 0 ? { uid: 1000, gid: 1000 } : { uid, gid };
}

export function prepareRun(request: RunRequest, baseImages: Record<BaseImageRole, BaseImage>): PreparedRun {
  // Checked first: a bad value is bad input even for --dry-run and export, which do not use it.
  const sharing = engineSharingFromEnv(request.processEnv);
  const fromFile = loadConfig({ cwd: request.cwd, ...(request.configPath ? { configPath: request.configPath } : {}) });
  const { loaded, warnings: flagWarnings } = applyRunFlags(fromFile, request.flags ?? {}, request.cwd);
  const continuation = request.continuation;
  // A continued job stays on the built-in runtime it ran on, whatever perstack.toml says now.
  const runtime = resolveRuntime(continuation ? continuation.runtime : request.runtime, loaded.file.runtime);
  const adapter = runtimeAdapter(runtime.name);
  const workspace = resolve(request.cwd, request.workspace ?? ".");
  let workspaceStat;
  try {
    workspaceStat = statSync(workspace);
  } catch {
    throw new InvalidOptionError(`--workspace ${workspace}: no such directory; create it or pass another path`);
  }
  if (!workspaceStat.isDirectory()) throw new InvalidOptionError(`--workspace ${workspace}: not a directory`);
  const perstackDir = perstackDirOf(request.cwd, request.processEnv);
  const user = request.user ?? defaultAgentUser();
  if (user.uid === 0) throw new InvalidOptionError("--user: the agent never runs as root; give a non-zero uid");
  const limits = { ...DEFAULT_LIMITS, ...request.limits };
  const jobId = continuation ? continuation.job.id : request.jobId !== undefined ? newJobId(request.jobId, perstackDir) : newId();
  const writable = workspaceStat.uid === user.uid || (workspaceStat.mode & 0o002) !== 0 || (workspaceStat.gid === user.gid && (workspaceStat.mode & 0o020) !== 0);
  const workspaceMode: WorkspaceMode = request.workspaceMode === undefined || request.workspaceMode === "auto" ? (writable ? "bind" : "copy") : request.workspaceMode;
  const policy = policyPaths({
    workspace,
    cwd: request.cwd,
    configPath: loaded.path,
    configExplicit: request.configPath !== undefined,
    envPath: loaded.file.envPath ?? DEFAULTS.envPath,
    perstackDir,
  });
  const sources = readEnvSources(loaded, request.processEnv);
  // A bad table is bad input before anything starts; the gateway and the host price with the same file.
  const pricingPath = request.pricingPath !== undefined ? resolve(request.cwd, request.pricingPath) : undefined;
  if (pricingPath) loadPriceTable(pricingPath);
  const baseUrlEnv = adapter.baseUrlEnv?.(loaded.file.provider ?? { providerName: adapter.defaultProvider });
  const baseUrlFromEnv = baseUrlEnv ? sources.get(baseUrlEnv) : undefined;
  const providerEnv = Object.fromEntries(
    providerSettingEnvNames(loaded.file.provider ?? { providerName: adapter.defaultProvider }).flatMap((name) => {
      const value = sources.get(name);
      return value ? [[name, value]] : [];
    }),
  );
  const plan = buildSandboxPlan({
    loaded,
    expertKey: request.expertKey,
    runtime,
    adapter,
    query: request.query,
    ...(request.model ? { model: request.model } : {}),
    ...(baseUrlFromEnv ? { baseUrlFromEnv } : {}),
    providerEnv,
    ...(request.budgets ? { budgets: request.budgets } : {}),
    ...(request.upstreamPolicy ? { upstreamPolicy: request.upstreamPolicy } : {}),
    ...(pricingPath ? { pricingTable: readFileSync(pricingPath, "utf8") } : {}),
    workspace,
    workspaceMode,
    policy,
    perstackDir,
    envNames: request.envNames,
    baseImages,
    caBundle: readCaBundle(caCertFiles(request.caCertFiles, request.processEnv), request.cwd),
    limits,
    user,
    jobId,
    runId: newId(),
    ...(continuation ? { session: { start: continuation.start, stepsBefore: continuation.stepsBefore } } : {}),
  });

  // Provider headers may carry tokens: with a gateway they are its to add (PERSTACK_GATEWAY_HEADERS below).
  const envValues: Record<string, string> = plan.gateway ? {} : { ...adapter.configEnv(loaded.file.provider ?? { providerName: "anthropic" }) };
  const secrets = request.secrets ?? "require";
  const missing: string[] = [];
  /** The first value set among `from`; a missing required one is bad input (a warning for --dry-run). */
  const valueOf = (from: string[], reason: string, optional: boolean | undefined): string | undefined => {
    if (secrets === "skip") return undefined;
    const value = from.map((name) => sources.get(name)).find((v) => v !== undefined && v !== "");
    if (value !== undefined || optional) return value;
    const files = (loaded.file.envPath ?? DEFAULTS.envPath).join(", ");
    const problem = `${from.join(" or ")} is not set (needed as ${reason})`;
    if (secrets === "warn") {
      missing.push(`${problem}; a real run would stop here: export it or put it in ${files} next to ${loaded.path}`);
      return undefined;
    }
    throw new MissingEnvError(`${problem}; export it or put it in ${files} next to ${loaded.path}`);
  };
  // The token the agent holds instead of the provider key: random per run, useless to anyone after it.
  const token = randomBytes(32).toString("hex");
  for (const entry of plan.agent.env) {
    if (entry.source === "token") envValues[entry.name] = token;
    if (entry.source !== "host") continue;
    const value = valueOf(entry.from, entry.reason, entry.optional);
    if (value !== undefined) envValues[entry.name] = value;
  }
  const gatewayEnv: Record<string, string> = {};
  if (plan.gateway) {
    gatewayEnv.PERSTACK_GATEWAY_TOKEN = token;
    const headers = loaded.file.provider?.setting?.headers;
    if (headers && Object.keys(headers).length > 0) gatewayEnv.PERSTACK_GATEWAY_HEADERS = JSON.stringify(headers);
    for (const key of plan.gateway.credentials) {
      const value = valueOf(key.from, `provider ${plan.provider} key, held by the provider gateway`, key.optional);
      if (value !== undefined) gatewayEnv[key.name] = value;
    }
    if (plan.gateway.googleCredentials && secrets !== "skip") {
      try {
        gatewayEnv[GOOGLE_CREDENTIALS_ENV] = readGoogleCredentials(sources.get("GOOGLE_APPLICATION_CREDENTIALS"), request.cwd, request.processEnv);
      } catch (error) {
        if (secrets !== "warn" || !(error instanceof MissingEnvError)) throw error;
        missing.push(`${error.message}; a real run would stop here`);
      }
    }
  }

  const warnings = [...flagWarnings, ...plan.warnings, ...missing];
  if (workspaceMode === "bind" && !writable) {
    warnings.push(
      `--workspace ${workspace}: owned by uid ${workspaceStat.uid}, the agent runs as uid ${user.uid} and cannot write it with --workspace-mode bind; use --workspace-mode copy (the default when this happens)`,
    );
  }
  return { loaded, adapter, plan, envValues, gatewayEnv, ...(pricingPath ? { pricingPath } : {}), perstackDir, workspace, workspaceOwner: { uid: workspaceStat.uid, gid: workspaceStat.gid }, warnings, ...(continuation ? { continuation } : {}), sharing };
}

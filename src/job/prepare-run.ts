// Everything a run needs decided before anything is built or started: the config, the runtime, the values of
// the variables it passes in (a missing one fails here), the CA bundle, ids, and the SandboxPlan.
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { caCertFiles, readCaBundle } from "../config/ca-certs.js";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { readEnvSources, resolveRuntime } from "../config/resolve.js";
import { InvalidOptionError, MissingEnvError } from "../errors.js";
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
  /** false for export: variables are only named, so missing values are fine. Default true. */
  resolveSecrets?: boolean;
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
  perstackDir: string;
  workspace: string;
  /** Owner of the workspace directory: files the agent creates in copy mode are given to it. */
  workspaceOwner: { uid: number; gid: number };
  warnings: string[];
  continuation?: Continuation;
}

/** Where runs started in `cwd` record their jobs. */
export function perstackDirOf(cwd: string): string {
  return join(cwd, "perstack");
}

export function newId(): string {
  // Sortable by creation time, short enough for container names and directories.
  return `${Date.now().toString(36)}${randomBytes(6).toString("hex")}`;
}

/** The host user when not root (files the agent writes stay the user's), else the image's uid 1000. */
export function defaultAgentUser(): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  return uid === 0 ? { uid: 1000, gid: 1000 } : { uid, gid };
}

export function prepareRun(request: RunRequest, baseImages: Record<BaseImageRole, BaseImage>): PreparedRun {
  const loaded = loadConfig({ cwd: request.cwd, ...(request.configPath ? { configPath: request.configPath } : {}) });
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
  const perstackDir = perstackDirOf(request.cwd);
  const user = request.user ?? defaultAgentUser();
  if (user.uid === 0) throw new InvalidOptionError("--user: the agent never runs as root; give a non-zero uid");
  const limits = { ...DEFAULT_LIMITS, ...request.limits };
  const jobId = continuation ? continuation.job.id : newId();
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
  const baseUrlEnv = adapter.baseUrlEnv?.(loaded.file.provider ?? { providerName: adapter.defaultProvider });
  const baseUrlFromEnv = baseUrlEnv ? sources.get(baseUrlEnv) : undefined;
  const plan = buildSandboxPlan({
    loaded,
    expertKey: request.expertKey,
    runtime,
    adapter,
    query: request.query,
    ...(request.model ? { model: request.model } : {}),
    ...(baseUrlFromEnv ? { baseUrlFromEnv } : {}),
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

  const envValues: Record<string, string> = { ...adapter.configEnv(loaded.file.provider ?? { providerName: "anthropic" }) };
  for (const entry of plan.agent.env) {
    if (entry.source !== "host" || request.resolveSecrets === false) continue;
    const value = entry.from.map((name) => sources.get(name)).find((v) => v !== undefined && v !== "");
    if (value === undefined) {
      if (entry.optional) continue;
      const files = (loaded.file.envPath ?? [".env", ".env.local"]).join(", ");
      const names = entry.from.join(" or ");
      throw new MissingEnvError(
        `${names} is not set (needed as ${entry.reason}); export it or put it in ${files} next to ${loaded.path}`,
      );
    }
    envValues[entry.name] = value;
  }

  const warnings = [...plan.warnings];
  if (workspaceMode === "bind" && !writable) {
    warnings.push(
      `--workspace ${workspace}: owned by uid ${workspaceStat.uid}, the agent runs as uid ${user.uid} and cannot write it with --workspace-mode bind; use --workspace-mode copy (the default when this happens)`,
    );
  }
  return { loaded, adapter, plan, envValues, perstackDir, workspace, workspaceOwner: { uid: workspaceStat.uid, gid: workspaceStat.gid }, warnings, ...(continuation ? { continuation } : {}) };
}

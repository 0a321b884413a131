// One interface every runtime implements. Adding a runtime = one module here, its Dockerfile partial in
// templates/runtimes/, and recorded stream fixtures in test/fixtures/.
import type { ProviderConfig, ProviderName, RuntimeName } from "../config/schema.js";
import type { ExpertRef, PerstackEvent } from "../model/perstack.js";
import type { EngineExpert, EngineStart } from "../engine/engine-input.js";
import type { ContextFile } from "../plan/context-file.js";
import type { MessageLogs } from "./message-log.js";
import type { RecorderContext } from "./run-recorder.js";

/** An MCP stdio skill as it exists inside the agent image. */
export interface InstalledSkill {
  name: string;
  description?: string;
  rule?: string;
  /** For an SSE skill: its endpoint; command and args are then unused. */
  url?: string;
  /** Absolute program path inside the image, and its arguments. */
  command: string;
  args: string[];
  /** Names of the variables this skill server receives (values never appear in generated files). */
  envNames: string[];
  pick?: string[];
  omit?: string[];
}

export interface DelegateSummary {
  key: string;
  description?: string;
}

/** Everything a runtime needs to produce its command line and native configuration. */
export interface RuntimeInvocation {
  expert: ExpertRef & { instruction: string; description?: string };
  delegates: DelegateSummary[];
  skills: InstalledSkill[];
  model: string;
  provider: ProviderConfig;
  query: string;
  /** The provider endpoint in force: perstack.toml's baseUrl, else the runtime's conventional variable. */
  baseUrl?: string;
  maxSteps: number;
  maxRetries: number;
  /** Milliseconds per generation. */
  timeout: number;
  reasoningBudget?: string | number;
  /** The job and the run this invocation records into. */
  jobId: string;
  runId: string;
  /**
   * The built-in engine only: every reachable expert (coordinator first) with its skills as installed, since it
   * runs delegates natively; how the invocation begins; and the steps earlier invocations of the job used.
   * CLI runtimes always start a fresh query.
   */
  experts: EngineExpert[];
  start: EngineStart;
  stepsBefore: number;
}

/**
 * Turns one runtime's stdout into events. Its events carry checkpoints by reference (CheckpointRef); the messages
 * they point to are in the parser's MessageLogs, from which the collector writes each checkpoint file whole.
 */
export interface StreamParser extends MessageLogs {
  /** One line of the agent's stdout (without its newline). Unknown lines yield no events. */
  line(text: string): PerstackEvent[];
  /** The container exited; emits a final event if the stream did not already end the run. */
  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[];
}

/** A secret the CLI reads from a variable, and the host variables its value may come from, in order. */
export interface KeyVariable {
  name: string;
  from: string[];
  /** Passed when set on the host, not demanded (e.g. AWS_SESSION_TOKEN, or a value a setting may give instead). */
  optional?: boolean;
}

/** A file the CLI reads from its home directory (native settings, MCP config, instructions). Never secrets. */
export interface HomeFile {
  /** Relative to the agent's HOME. */
  path: string;
  content: string;
}

export type ModelVendor = "anthropic" | "google" | "openai";

export interface RuntimeAdapter {
  name: RuntimeName;
  /** The npm package of the CLI and the version pinned in its image. */
  cliPackage: string;
  cliVersion: string;
  providers: readonly ProviderName[];
  /** The provider used when perstack.toml has no [provider], and the model when none is given. */
  defaultProvider: ProviderName;
  defaultModel: string;
  /** Vendors whose models the CLI runs; a model that plainly belongs to another is refused. */
  modelVendors: readonly ModelVendor[];
  /**
   * The variable users already set to point this CLI (for this provider) at another endpoint. Used when
   * perstack.toml sets no baseUrl, so one perstack.toml serves every runtime.
   */
  baseUrlEnv?(provider: ProviderConfig): string | undefined;
  /**
   * The runtime runs every reachable expert itself (the built-in engine): RuntimeInvocation.experts holds them all
   * with their skills, and the image gets all their skills. CLI runtimes get only the coordinator's skills.
   */
  runsExperts?: boolean;
  /** The CLI reaches models through its vendor's own service: perstack's provider endpoint settings do not apply. */
  ownService?: boolean;
  /** File under templates/runtimes/ rendered into the agent Dockerfile. */
  dockerfilePartial: string;
  /** Values that partial uses besides the common ones (e.g. an installer URL); validated by the runtime. */
  dockerfileValues?: Record<string, string>;
  /** Extra files for the agent image's build context (hashed into its tag like the Dockerfile). */
  contextFiles?(): ContextFile[];
  /** The secret variables the provider needs with this runtime. */
  keyEnv(provider: ProviderConfig): KeyVariable[];
  /** Hosts the CLI must reach for this provider when no baseUrl is configured. */
  apiHosts(provider: ProviderConfig): string[];
  /**
   * Variables whose values come from perstack.toml but may carry secrets (provider headers): they reach the
   * container like host variables, by name in the plan and in exports, with values supplied at run time.
   */
  configEnv(provider: ProviderConfig): Record<string, string>;
  /** Non-secret variables the runtime sets itself (telemetry off, base URL, ...). */
  fixedEnv(invocation: RuntimeInvocation): Record<string, string>;
  /** Files copied into the agent's HOME before the CLI starts. */
  homeFiles(invocation: RuntimeInvocation): HomeFile[];
  /** Start-up warnings about configuration the runtime cannot honour. */
  warnings?(invocation: RuntimeInvocation): string[];
  /** The agent container's argv. */
  command(invocation: RuntimeInvocation): string[];
  createParser(context: RecorderContext): StreamParser;
}

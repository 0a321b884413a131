// One interface every runtime implements. Adding a runtime = one module here, its Dockerfile partial in
// templates/runtimes/, and recorded stream fixtures in test/fixtures/.
import type { ProviderConfig, ProviderName, RuntimeName } from "../config/schema.js";
import type { ExpertRef, PerstackEvent } from "../model/perstack.js";
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
  maxSteps: number;
  maxRetries: number;
  /** Milliseconds per generation. */
  timeout: number;
  reasoningBudget?: string | number;
}

export interface StreamParser {
  /** One line of the agent's stdout (without its newline). Unknown lines yield no events. */
  line(text: string): PerstackEvent[];
  /** The container exited; emits a final event if the stream did not already end the run. */
  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[];
}

export interface RuntimeAdapter {
  name: RuntimeName;
  /** The npm package of the CLI and the version pinned in its image. */
  cliPackage: string;
  cliVersion: string;
  providers: readonly ProviderName[];
  /** File under templates/runtimes/ rendered into the agent Dockerfile. */
  dockerfilePartial: string;
  /** Names of the secret variables the provider needs with this runtime. */
  keyEnv(provider: ProviderConfig): string[];
  /** Hosts the CLI must reach for this provider when no baseUrl is configured. */
  apiHosts(provider: ProviderConfig): string[];
  /**
   * Variables whose values come from perstack.toml but may carry secrets (provider headers): they reach the
   * container like host variables, by name in the plan and in exports, with values supplied at run time.
   */
  configEnv(provider: ProviderConfig): Record<string, string>;
  /** Non-secret variables the runtime sets itself (telemetry off, base URL, ...). */
  fixedEnv(invocation: RuntimeInvocation): Record<string, string>;
  /** The agent container's argv. */
  command(invocation: RuntimeInvocation): string[];
  createParser(context: RecorderContext): StreamParser;
}

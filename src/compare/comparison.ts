// The record of one `perstack compare` (issue 11): what comparison.json holds, what the terminal table and
// report.html are drawn from. Built only from what the runs recorded (their jobs under perstack/jobs/, and the
// workspace changes and check results compare wrote beside them), so `--from <jobId>,...` rebuilds the same one.
// Everything in it that came out of a sandbox (answers, tool arguments, file contents, domains) is hostile text: it
// is clipped here and escaped wherever it is shown.

export const COMPARISON_VERSION = 1;

/** Where a run's cost comes from: the provider gateway's meter, or the CLI's own report (cursor, older jobs). */
export type CostSource = "metered" | "self-reported" | "none";

export interface ComparisonUsage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  reasoningTokens: number;
  totalTokens: number;
}

/** One tool call, in order, by its normalized name (exec, writeTextFile, ...; a skill's own tools keep theirs). */
export interface TimelineCall {
  /** Milliseconds since the run started. */
  atMs: number;
  /** The normalized name when the runtime's built-in tool has one, else the tool's own name. */
  name: string;
  /** The runtime's own name, when it differs from `name`. */
  nativeName?: string;
  skillName?: string;
  /** The arguments as JSON, clipped (see MAX_ARGS_CHARS). */
  args: string;
  /** Whether its result was an error, when the result was recorded. */
  failed?: boolean;
}

export interface EgressDecision {
  action: "allowed" | "blocked";
  domain: string;
  port: number;
  /** How many times the same decision was made. */
  count: number;
}

export interface FileChange {
  /** POSIX path relative to the workspace. */
  path: string;
  status: "added" | "modified" | "deleted";
  /** Not shown as text: binary, too large, or not a regular file (a symlink the agent left). */
  kind: "text" | "binary" | "too-large" | "special";
  bytesBefore?: number;
  bytesAfter?: number;
  /** Lines added and removed (text only). */
  added?: number;
  removed?: number;
}

export interface WorkspaceChanges {
  files: FileChange[];
  /** Every text change as one unified diff (git-style headers, a/ and b/ paths), clipped at MAX_PATCH_BYTES. */
  patch: string;
  patchTruncated: boolean;
  /** Why the comparison is incomplete (a tree over the entry or depth limits, unreadable paths); absent when it is not. */
  note?: string;
}

export interface CheckResult {
  command: string;
  passed: boolean;
  exitCode: number | null;
  /** The check did not finish within its time limit. */
  timedOut: boolean;
  durationMs: number;
  /** The last lines of its combined stdout and stderr (at most MAX_OUTPUT_TAIL characters). */
  outputTail: string;
}

export interface ComparisonRun {
  runtime: string;
  /** 0-based repeat index. */
  repeat: number;
  jobId: string;
  /** The job's status (completed, stoppedByError, ...); "failedToStart" when it never got a job. */
  status: string;
  /** The error the run stopped with, if any (one line). */
  error?: string;
  model: string;
  provider: string;
  wallTimeMs: number;
  steps: number;
  /** Calls by normalized name. */
  toolCalls: Record<string, number>;
  toolCallCount: number;
  /** The gateway's meter, when the run went through it. */
  metered?: { requests: number; usage: ComparisonUsage & { cacheWriteTokens: number }; costUsd: number | null };
  /** What the runtime said about itself (job.json's usage; CLIs' own cost where they report one). */
  selfReported: { usage: ComparisonUsage; costUsd?: number };
  /** The cost the table shows, and where it came from. */
  costUsd: number | null;
  costSource: CostSource;
  retries: number;
  blockedEgress: number;
  egress: EgressDecision[];
  timeline: TimelineCall[];
  /** Calls beyond the timeline's cap are only counted. */
  timelineTruncated: number;
  /** The run's final answer (completeRun's text), clipped. */
  finalAnswer?: string;
  check?: CheckResult;
  /** Undefined when the job was not run by compare (e.g. `--from` a plain `perstack run`): unknown, not "none". */
  changes?: WorkspaceChanges;
  /** The run's final workspace, relative to the comparison's directory (absent for --from). */
  workspaceDir?: string;
}

export interface SkippedRuntime {
  runtime: string;
  /** One line: why it cannot run here (no key, no installer, a provider or model it cannot use). */
  reason: string;
}

/** One row of the terminal table: a runtime's runs summed up (median, min, max over repeats). */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface RuntimeSummary {
  runtime: string;
  runs: number;
  /** Runs whose job completed. */
  completed: number;
  /** Runs whose check passed, when there was a check. */
  checksPassed?: number;
  wallTimeMs: Spread;
  steps: Spread;
  toolCalls: Spread;
  inputTokens: Spread;
  outputTokens: Spread;
  cachedInputTokens: Spread;
  /** Undefined when no run of the runtime has a cost. */
  costUsd?: Spread;
  costSource: CostSource;
  retries: Spread;
  blockedEgress: Spread;
}

export interface Provenance {
  perstackVersion: string;
  /** Per runtime: the CLI package and version, and the agent image. */
  runtimes: Array<{ runtime: string; cliPackage?: string; cliVersion?: string; image?: string }>;
  models: string[];
  /** The price table the gateway metered with. */
  pricing?: { source: string; date?: string; sha256: string };
}

export interface Comparison {
  version: typeof COMPARISON_VERSION;
  id: string;
  createdAt: number;
  expertKey: string;
  query: string;
  runtimes: string[];
  repeat: number;
  concurrency: number;
  check?: string;
  /** Built from recorded jobs (`--from`) rather than by running them. */
  fromJobs: boolean;
  runs: ComparisonRun[];
  skipped: SkippedRuntime[];
  summary: RuntimeSummary[];
  provenance: Provenance;
  warnings: string[];
}

export const MAX_ARGS_CHARS = 2000;
export const MAX_ANSWER_CHARS = 20_000;
export const MAX_TIMELINE_CALLS = 500;
export const MAX_PATCH_BYTES = 1_000_000;
export const MAX_OUTPUT_TAIL = 4000;

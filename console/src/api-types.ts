// The API's responses as the console reads them (src/server/api-schemas.ts has their schemas). Run events and
// checkpoints are not typed here: they carry what agents wrote and are read field by field (event-fields.ts).

export interface Session {
  tenant: string;
  /** "local": `perstack ui`, read-only over this machine's jobs. */
  mode: "server" | "local";
  readOnly: boolean;
}

export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  reasoningTokens?: number;
  totalTokens?: number;
  cachedInputTokens?: number;
}

export type RunStatus = "queued" | "running" | "completed" | "stoppedByError" | "stoppedByMaxSteps" | "stoppedByInteractiveTool" | "cancelled";

export interface RunRecord {
  jobId: string;
  status: RunStatus;
  position?: number;
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  expert?: string;
  runtime?: string;
  totalSteps?: number;
  usage?: Usage;
  metered?: { requests?: number; usage?: Record<string, number>; costUsd?: number | null };
  latestCheckpointId?: string;
  reason?: string;
  allocatedUsd?: number;
  costUsd?: number;
}

export interface RunList {
  runs: RunRecord[];
  next?: string;
}

export interface CheckpointSummary {
  id: string;
  runId: string;
  stepNumber?: number;
  status?: string;
}

export interface ComparisonRun {
  runtime: string;
  jobId: string;
  status: string;
}

export interface ComparisonSummary {
  id: string;
  status: "running" | "done";
  runs: ComparisonRun[];
  createdAt?: number;
}

export interface Comparison extends ComparisonSummary {
  comparison?: Record<string, unknown>;
}

export const RUN_STATUSES: readonly RunStatus[] = ["queued", "running", "completed", "stoppedByError", "stoppedByMaxSteps", "stoppedByInteractiveTool", "cancelled"];

/** The runtimes a run may ask for (src/config/schema.ts RUNTIME_NAMES, without the aliases local and docker). */
export const RUNTIMES = ["perstack", "claude-code", "gemini", "codex", "cursor"] as const;

export const RUNTIME_LABELS: Readonly<Record<string, string>> = {
  perstack: "perstack (built-in)",
  "claude-code": "claude-code (Claude Code)",
  gemini: "gemini (Gemini CLI)",
  codex: "codex (Codex CLI)",
  cursor: "cursor (Cursor CLI)",
};

export const isActive = (status: string | undefined): boolean => status === "queued" || status === "running";

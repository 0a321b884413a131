// Runs the built CLI (dist/) the way a user does, in a workspace directory.
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { readCheckpoint } from "../../src/storage/job-reader.js";

// entry.js, the package's bin: what users run (its Node check, its compile cache), not main.js behind it.
export const CLI = fileURLToPath(new URL("../../dist/src/cli/entry.js", import.meta.url));

/** A fresh workspace holding perstack.toml, writable by the agent's default uid when the tests run as root. */
export function makeWorkspace(toml: string, prefix = "perstack-e2e-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, "perstack.toml"), toml);
  if (process.getuid?.() === 0) chownSync(dir, 1000, 1000);
  return dir;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** The environment a run sees: the test process's, minus anything named like a provider key. */
export function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(env)) if (/API_KEY$/.test(name)) delete env[name];
  return { ...env, ...extra };
}

export function runCli(args: string[], options: CliOptions): ResultPromise<{ reject: false; all: true }> {
  return execa(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env),
    extendEnv: false,
    reject: false,
    all: true,
    timeout: options.timeoutMs ?? 300_000,
  });
}

export type EventOnDisk = { type: string; runId?: string; timestamp?: number; [key: string]: unknown };

export interface CheckpointOnDisk {
  id: string;
  runId: string;
  status: string;
  stepNumber: number;
  messages: unknown[];
  expert: { key: string; name: string; version: string };
  delegateTo?: Array<{ expert: { key: string }; toolCallId: string; toolName: string; query?: string }>;
  delegatedBy?: { expert: { key: string }; toolCallId: string; toolName: string; checkpointId: string; runId: string };
  usage: { inputTokens: number; outputTokens: number; totalTokens: number };
  pendingToolCalls?: Array<{ id: string; toolName: string; args: unknown }>;
  [key: string]: unknown;
}

export interface RunOnDisk {
  runId: string;
  /** run-setting.json, when the run has one. */
  setting: Record<string, unknown> | undefined;
  events: EventOnDisk[];
  raw: string;
  /** The ids of the step checkpoints in its checkpoints.jsonl. */
  loggedCheckpointIds: string[];
}

export interface JobOnDisk {
  jobId: string;
  job: {
    status: string;
    usage: { totalTokens: number; inputTokens: number; outputTokens: number };
    totalSteps: number;
    coordinatorExpertKey?: string;
    [key: string]: unknown;
  };
  runIds: string[];
  /** The events of the first run directory listed (the only run of a single-run job). */
  events: EventOnDisk[];
  /** Every run of the job: events, run-setting.json and raw.log (each may be missing). */
  runs: RunOnDisk[];
  /** Every run's events, in file order per run, runs in directory order. */
  allEvents: EventOnDisk[];
  /**
   * Every checkpoint read back whole, as `--continue` reads it: the files (checkpoints a run stopped on), then the
   * step checkpoints of each run's checkpoints.jsonl.
   */
  checkpoints: CheckpointOnDisk[];
  /** checkpoints/*.json file names. */
  checkpointFiles: string[];
  raw: string;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function readRun(dir: string, runId: string): RunOnDisk {
  const runDir = join(dir, "runs", runId);
  const setting = readOptional(join(runDir, "run-setting.json"));
  const events = readOptional(join(runDir, "events.jsonl")) ?? "";
  return {
    runId,
    setting: setting === undefined ? undefined : (JSON.parse(setting) as Record<string, unknown>),
    events: events.split("\n").filter(Boolean).map((l) => JSON.parse(l) as EventOnDisk),
    raw: readOptional(join(runDir, "raw.log")) ?? "",
    loggedCheckpointIds: (readOptional(join(runDir, "checkpoints.jsonl")) ?? "").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id),
  };
}

export function readJobs(workspace: string): JobOnDisk[] {
  const jobsDir = join(workspace, "perstack", "jobs");
  let ids: string[];
  try {
    ids = readdirSync(jobsDir).sort();
  } catch {
    return [];
  }
  return ids.map((jobId) => {
    const dir = join(jobsDir, jobId);
    const runIds = readdirSync(join(dir, "runs"));
    const runDir = join(dir, "runs", runIds[0]!);
    const runs = runIds.map((runId) => readRun(dir, runId));
    const checkpointFiles = existsSync(join(dir, "checkpoints")) ? readdirSync(join(dir, "checkpoints")).sort() : [];
    return {
      jobId,
      job: JSON.parse(readFileSync(join(dir, "job.json"), "utf8")),
      runIds,
      events: readFileSync(join(runDir, "events.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
      runs,
      allEvents: runs.flatMap((r) => r.events),
      checkpoints: [...checkpointFiles.map((f) => f.replace(/\.json$/, "")), ...runs.flatMap((r) => r.loggedCheckpointIds)].map(
        (id) => readCheckpoint(join(workspace, "perstack"), jobId, id) as unknown as CheckpointOnDisk,
      ),
      checkpointFiles,
      raw: readFileSync(join(runDir, "raw.log"), "utf8"),
    };
  });
}
